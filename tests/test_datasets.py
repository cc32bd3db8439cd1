"""Dataset machinery against a real HTTP server on 127.0.0.1 (tests/dataset_fixtures.py):
resumed, retried and hash-checked downloads, safe extraction, content manifests, disk space,
the `algoperf datasets` commands, and MNIST prepared from downloaded fixture files.

Fixtures are in the real formats but not the real data, so each test passes a manifest of
the fixture's own hashes (as `--manifest` would).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import (
    CIFAR_FOLDER,
    Fault,
    FixtureServer,
    cifar_archive,
    mnist_files,
    write_manifest,
)

from algoperf.datasets import content, extract, fetch, manifest, operations
from algoperf.errors import UserError
from algoperf.workloads import registry

FAST = fetch.Options(retries=3, backoff=0.01, timeout=10, jobs=4)
ALGOPERF = [sys.executable, "-m", "algoperf"]


def quiet(_: str) -> None:
    pass


def job_for(server: FixtureServer, tmp_path: Path, data: bytes, name: str = "blob.bin",
            mirrors: tuple[str, ...] | None = None) -> fetch.Job:
    server.files[f"/files/{name}"] = data
    urls = mirrors or (f"{server.url}/files/{name}",)
    return fetch.Job(urls, tmp_path / name, len(data), hashlib.sha256(data).hexdigest())


@pytest.fixture
def server():
    with FixtureServer() as s:
        yield s


@pytest.fixture
def payload() -> bytes:
    return np.random.RandomState(0).bytes(3 * fetch.CHUNK + 12345)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# Manifests.


def test_every_registry_dataset_has_a_manifest_and_the_dev_ones_are_implemented():
    names = manifest.builtin_names()
    datasets = {info.dataset for info in registry.WORKLOADS.values()} - {"digits"}
    assert datasets <= set(names)
    for name in names:
        m = manifest.load(name)
        assert m.name == name and m.license and m.workloads
        assert m.implemented == (name in ("mnist", "cifar10", "mnist1d", "python_docs",
                                          "imagenet", "ogbg", "fastmri", "librispeech",
                                          "criteo1tb"))
    for name in ("mnist", "cifar10"):
        m = manifest.load(name)
        assert m.files and m.mirrors and all(u.startswith("https://") for u in m.mirrors)


def test_mnist_official_prepared_root_is_the_root_of_its_four_files():
    m = manifest.load("mnist")
    entries = [content.FileEntry(f.name, f.size, f.sha256) for f in m.files]
    assert m.prepared_root == content.root_hash(entries)
    assert m.download_bytes == 11_594_722


def test_unknown_dataset_suggests_the_right_name():
    with pytest.raises(UserError, match="Did you mean 'cifar10'"):
        manifest.load("cifar")


# Downloads.


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload)
    server.add_fault("/files/blob.bin", Fault(cut_after=fetch.CHUNK + 100))
    assert fetch.Fetcher(FAST).fetch(job) == "downloaded"
    assert job.dest.read_bytes() == payload
    ranges = [r[2] for r in server.requests_for("/files/blob.bin")]
    assert ranges == [None, f"bytes={fetch.CHUNK + 100}-"]
    assert not list(tmp_path.glob("*.partial"))


def test_partial_file_left_by_an_earlier_run_is_resumed(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload)
    Path(f"{job.dest}.partial").write_bytes(payload[:5000])
    fetch.Fetcher(FAST).fetch(job)
    assert job.dest.read_bytes() == payload
    assert [r[2] for r in server.requests_for("/files/blob.bin")] == ["bytes=5000-"]


def test_server_ignoring_range_sends_the_file_again_from_the_start(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload)
    Path(f"{job.dest}.partial").write_bytes(payload[:5000])
    server.add_fault("/files/blob.bin", Fault(ignore_range=True))
    fetch.Fetcher(FAST).fetch(job)
    assert job.dest.read_bytes() == payload


def test_corrupted_bytes_are_rejected_and_fetched_again(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload)
    server.add_fault("/files/blob.bin", Fault(corrupt=True))
    fetch.Fetcher(FAST).fetch(job)
    assert job.dest.read_bytes() == payload
    assert [r[2] for r in server.requests_for("/files/blob.bin")] == [None, None]


def test_persistent_corruption_is_a_checksum_mismatch_that_keeps_nothing(server, tmp_path,
                                                                          payload):
    job = job_for(server, tmp_path, payload)
    for _ in range(2):
        server.add_fault("/files/blob.bin", Fault(corrupt=True))
    with pytest.raises(UserError) as error:
        fetch.Fetcher(FAST).fetch(job)
    assert "checksum mismatch for blob.bin" in one_line(error)
    assert list(tmp_path.iterdir()) == []


def test_server_errors_are_retried_with_backoff(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload)
    for status in (503, 500):
        server.add_fault("/files/blob.bin", Fault(status=status))
    fetch.Fetcher(FAST).fetch(job)
    assert job.dest.read_bytes() == payload
    assert len(server.requests_for("/files/blob.bin")) == 3


def test_a_dead_mirror_falls_through_to_the_next(server, tmp_path, payload):
    server.files["/b/blob.bin"] = payload
    job = job_for(server, tmp_path, payload, mirrors=(f"{server.url}/a/blob.bin",
                                                      f"{server.url}/b/blob.bin"))
    fetch.Fetcher(FAST).fetch(job)
    assert job.dest.read_bytes() == payload


def test_unreachable_source_is_one_clear_line(tmp_path, payload):
    with FixtureServer() as dead:
        url = dead.url
    job = fetch.Job((f"{url}/blob.bin",), tmp_path / "blob.bin", len(payload),
                    hashlib.sha256(payload).hexdigest())
    with pytest.raises(UserError) as error:
        fetch.Fetcher(FAST).fetch(job)
    message = one_line(error)
    assert "could not download blob.bin" in message and "cannot connect" in message
    assert "--source" in message


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


UNRESOLVABLE = "http://nonexistent.invalid"  # RFC 6761: .invalid names never resolve


@pytest.mark.parametrize(("base", "reason"), [
    (None, "connection refused"), (UNRESOLVABLE, "name resolution failed")])
def test_an_unreachable_host_is_offline_in_one_line_within_seconds(tmp_path, payload, base,
                                                                    reason):
    base = base or closed_port_url()
    job = fetch.Job((f"{base}/blob.bin",), tmp_path / "blob.bin", len(payload),
                    hashlib.sha256(payload).hexdigest())
    started = time.monotonic()
    with pytest.raises(fetch.Offline) as error:
        fetch.Fetcher(fetch.Options()).fetch(job)  # the default retries and backoff
    assert time.monotonic() - started < 3
    message = one_line(error)
    host = base.removeprefix("http://")
    assert f"cannot connect to {host} ({reason})" in message
    assert "seems to be offline" in message and "--raw-dir" in message
    assert not list(tmp_path.iterdir())


def test_an_unreachable_mirror_falls_through_to_the_next_quickly(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload, mirrors=(f"{UNRESOLVABLE}/blob.bin",
                                                      f"{closed_port_url()}/blob.bin",
                                                      f"{server.url}/files/blob.bin"))
    server.files["/files/blob.bin"] = payload
    started = time.monotonic()
    assert fetch.Fetcher(fetch.Options()).fetch(job) == "downloaded"
    assert time.monotonic() - started < 3
    assert job.dest.read_bytes() == payload


def test_a_server_gone_mid_file_is_retried_with_backoff_and_resumed(tmp_path, payload):
    # The transfer breaks off, then the host refuses connections for a while (it restarts):
    # having answered in this transfer, it is retried with backoff, not given up as offline.
    first = FixtureServer({"/files/blob.bin": payload}).__enter__()
    first.add_fault("/files/blob.bin", Fault(cut_after=fetch.CHUNK + 100))
    port = int(first.url.rsplit(":", 1)[1])
    job = fetch.Job((f"{first.url}/files/blob.bin",), tmp_path / "blob.bin", len(payload),
                    hashlib.sha256(payload).hexdigest())
    backoffs, second = [], []

    def sleep(seconds: float) -> None:  # the backoff: the server goes away, then comes back
        backoffs.append(seconds)
        if len(backoffs) == 1:
            first.__exit__()
        elif len(backoffs) == 2:
            second.append(FixtureServer({"/files/blob.bin": payload}, port=port).__enter__())

    try:
        fetch.Fetcher(FAST, sleep=sleep).fetch(job)
    finally:
        for s in second:
            s.__exit__()
    assert job.dest.read_bytes() == payload
    assert backoffs == [fetch._delay(FAST, 0), fetch._delay(FAST, 1)]  # doubling, not quick
    (resumed,) = second[0].requests_for("/files/blob.bin")
    assert resumed[2] == f"bytes={fetch.CHUNK + 100}-"


def test_cli_without_network_says_so_in_one_line_within_seconds(tmp_path, mnist_fixture):
    fixture = write_manifest(tmp_path / "offline.json", "mnist", mnist_fixture,
                             [f"{closed_port_url()}/mnist/", f"{UNRESOLVABLE}/mnist/"])
    started = time.monotonic()
    result = algoperf("datasets", "download", "mnist", "--data-dir", str(tmp_path / "data"),
                      "--manifest", str(fixture), check=False)
    assert time.monotonic() - started < 5
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("mnist: downloading 4 file(s)"), lines
    assert "WARNING" not in result.stderr and "Retrying" not in result.stderr
    error = lines[1]
    assert error.startswith("error: mnist: cannot connect to 127.0.0.1:")
    assert "(connection refused), nonexistent.invalid (name resolution failed)" in error
    assert "seems to be offline" in error
    assert "algoperf datasets prepare mnist" in error and "--raw-dir DIR" in error
    assert "--source URL" in error


def test_a_verified_file_is_not_fetched_again(server, tmp_path, payload):
    job = job_for(server, tmp_path, payload)
    fetcher = fetch.Fetcher(FAST)
    assert fetcher.fetch(job) == "downloaded"
    assert fetcher.fetch(job) == "present"
    assert len(server.requests) == 1


def test_gs_sources_are_read_through_gcsfs(server, tmp_path, payload, monkeypatch):
    pytest.importorskip("gcsfs")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    monkeypatch.setenv("ALGOPERF_GCS_TOKEN", "anon")
    server.files["/gs/bucket/data/blob.bin"] = payload
    job = fetch.Job(("gs://bucket/data/blob.bin",), tmp_path / "blob.bin", len(payload),
                    hashlib.sha256(payload).hexdigest())
    Path(f"{job.dest}.partial").write_bytes(payload[:7000])
    fetch.Fetcher(FAST).fetch(job)
    assert job.dest.read_bytes() == payload
    media = [r for r in server.requests if r[1].startswith("/download/storage/v1/b/bucket")]
    assert media and media[0][2].startswith("bytes=7000-")


# Disk space.


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "1m"):
    """A tmpfs of ``size`` at ``path``; skips the test (saying why) if it cannot mount."""
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill ({result.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def mnist_manifest(tmp_path: Path, server: FixtureServer, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        server.files[f"/mnist/{name}"] = data
    return write_manifest(tmp_path / "mnist-fixture.json", "mnist", files,
                          [f"{server.url}/mnist/"],
                          prepared_bytes=sum(len(d) for d in files.values()))


@pytest.fixture(scope="module")
def mnist_fixture() -> dict[str, bytes]:
    """Full-size MNIST files (the workload checks the counts), about 1 MB compressed."""
    return mnist_files()


def test_too_little_disk_is_reported_before_anything_is_written(server, tmp_path, mnist_fixture):
    for name, data in mnist_fixture.items():
        server.files[f"/mnist/{name}"] = data
    m = manifest.load_file(write_manifest(tmp_path / "m.json", "mnist", mnist_fixture,
                                          [f"{server.url}/mnist/"], prepared_bytes=2_000_000))
    with tiny_disk(tmp_path / "disk") as disk:
        with pytest.raises(UserError) as error:
            operations.download(disk, "mnist", m, options=FAST, echo=quiet)
        assert "not enough free disk space" in one_line(error)
        assert not server.requests
        assert sorted(p.name for p in disk.iterdir()) == [".mnist.lock", "downloads"]


def test_disk_full_during_a_download_is_one_line_and_resumable(server, tmp_path, payload):
    with tiny_disk(tmp_path / "disk", size="4m") as disk:
        job = job_for(server, disk, payload[:3 * fetch.CHUNK])
        filler = disk / "filler"
        # Once the transfer has started, something else takes most of the disk.
        server.add_fault("/files/blob.bin", Fault(before=lambda: filler.write_bytes(
            bytes(int(2.5 * fetch.CHUNK)))))
        with pytest.raises(UserError) as error:
            fetch.Fetcher(FAST).fetch(job)
        message = one_line(error)
        assert "disk full while downloading blob.bin" in message and "resume" in message
        assert not job.dest.exists()
        filler.unlink()
        fetch.Fetcher(FAST).fetch(job)
        assert job.dest.read_bytes() == payload[:3 * fetch.CHUNK]
        assert server.requests_for("/files/blob.bin")[-1][2].startswith("bytes=")


# Safe extraction.


def tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return path


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize("member,reason", [
    (tarfile.TarInfo("../escape.txt"), "leaves the target"),
    (tarfile.TarInfo("a/../../escape.txt"), "leaves the target"),
    (tarfile.TarInfo("/tmp/absolute.txt"), "absolute path"),
    (symlink("link", "/etc/passwd"), "absolute path"),
    (symlink("a/link", "../../outside"), "leaves the target"),
])
def test_path_traversal_archives_are_refused_and_nothing_is_written(tmp_path, member, reason):
    archive = tar_with(tmp_path / "evil.tar.gz", member)
    target = tmp_path / "out" / "target"
    with pytest.raises(UserError) as error:
        extract.safe_extract(archive, target)
    message = one_line(error)
    assert "refusing to extract" in message and reason in message
    assert not target.exists()  # removed, with fine.txt extracted before the bad member
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz", "out"]
    assert list((tmp_path / "out").iterdir()) == []


def test_safe_archives_extract_with_links_inside_the_target(tmp_path):
    archive = tar_with(tmp_path / "ok.tar.gz", symlink("alias.txt", "fine.txt"))
    names = extract.safe_extract(archive, tmp_path / "out")
    assert names == ["fine.txt"]
    assert (tmp_path / "out" / "alias.txt").read_text() == "ok"


# Content manifests.


def test_root_hash_is_sha256sum_style_listing_in_path_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.bin").write_bytes(b"yy")
    (tmp_path / "a.txt").write_bytes(b"a")
    scanned = content.scan(tmp_path, "demo")
    listing = "".join(f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {path}\n"
                      for path, data in (("a.txt", b"a"), ("b/y.bin", b"yy")))
    assert scanned.root == hashlib.sha256(listing.encode()).hexdigest()
    content.write(tmp_path, scanned)
    assert content.read(tmp_path).root == scanned.root
    assert content.scan(tmp_path, "demo").root == scanned.root  # the manifest is not listed


# MNIST end to end through the operations and the CLI.


def download_mnist(tmp_path, server, files, data_dir=None, **kwargs):
    m = manifest.load_file(mnist_manifest(tmp_path, server, files))
    data_dir = data_dir or tmp_path / "data"
    return data_dir, operations.download(data_dir, "mnist", m, options=FAST, echo=quiet,
                                         **kwargs)


def test_download_prepares_mnist_in_the_layout_the_workload_reads(server, tmp_path,
                                                                  mnist_fixture):
    data_dir, prepared = download_mnist(tmp_path, server, mnist_fixture)
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(
        [*mnist_fixture, content.MANIFEST_NAME])
    assert content.recorded_root(data_dir, "mnist") == prepared.root
    assert prepared.source["examples"] == {"train": 60_000, "test": 10_000}
    assert prepared.source["builtin_manifest"] is False
    assert not list(data_dir.glob(".mnist.staging-*"))
    # A second download finds it prepared and fetches nothing.
    before = len(server.requests)
    download_mnist(tmp_path, server, mnist_fixture, data_dir=data_dir)
    assert len(server.requests) == before


def test_verify_reports_changed_missing_and_extra_files(server, tmp_path, mnist_fixture):
    data_dir, prepared = download_mnist(tmp_path, server, mnist_fixture)
    assert operations.verify(data_dir, "mnist").manifest.root == prepared.root
    folder = data_dir / "mnist"
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "notes.txt").write_text("extra")
    with pytest.raises(UserError) as error:
        operations.verify(data_dir, "mnist")
    message = one_line(error)
    assert "1 changed (t10k-labels-idx1-ubyte.gz)" in message
    assert "1 missing (train-labels-idx1-ubyte.gz)" in message
    assert "1 unexpected (notes.txt)" in message


def test_prepare_from_a_raw_dir_checks_every_file(server, tmp_path, mnist_fixture):
    m = manifest.load_file(mnist_manifest(tmp_path, server, mnist_fixture))
    raw = tmp_path / "raw"
    raw.mkdir()
    data_dir = tmp_path / "data"
    with pytest.raises(UserError) as error:
        operations.prepare(data_dir, "mnist", m, raw_dir=raw, echo=quiet)
    message = one_line(error)
    assert "mnist needs" in message and "train-images-idx3-ubyte.gz" in message
    assert "algoperf datasets download mnist" in message
    for name, data in mnist_fixture.items():
        (raw / name).write_bytes(data)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(
        mnist_fixture["t10k-labels-idx1-ubyte.gz"][::-1])
    with pytest.raises(UserError) as error:
        operations.prepare(data_dir, "mnist", m, raw_dir=raw, echo=quiet)
    assert "checksum mismatch for" in one_line(error)
    assert not (data_dir / "mnist").exists()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(mnist_fixture["t10k-labels-idx1-ubyte.gz"])
    operations.prepare(data_dir, "mnist", m, raw_dir=raw, echo=quiet)
    assert content.recorded_root(data_dir, "mnist") is not None
    assert not server.requests


def test_a_failing_preparation_leaves_nothing_that_looks_complete(server, tmp_path):
    # Right hashes (the manifest is the fixture's), wrong content: not MNIST images.
    files = {name: b"not a gzip file" for name in mnist_files(10, 10)}
    with pytest.raises(UserError, match="not a readable gzip"):
        download_mnist(tmp_path, server, files)
    data_dir = tmp_path / "data"
    assert not (data_dir / "mnist").exists()
    assert not list(data_dir.glob(".mnist.staging-*"))
    # The verified downloads stay, for a next attempt (e.g. with a corrected manifest).
    assert sorted(p.name for p in (data_dir / "downloads" / "mnist").iterdir()) == sorted(files)


def test_another_process_holding_the_dataset_lock_is_reported(server, tmp_path, mnist_fixture):
    import fcntl

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with open(data_dir / ".mnist.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        code = ("from pathlib import Path; from algoperf.datasets import operations, manifest;"
                f"operations.prepare(Path({str(data_dir)!r}), 'mnist')")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "another process is downloading or preparing mnist" in result.stderr


def algoperf(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*ALGOPERF, *args], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_cli_downloads_lists_and_verifies_mnist(server, tmp_path, mnist_fixture):
    fixture = mnist_manifest(tmp_path, server, mnist_fixture)
    data_dir = tmp_path / "data"
    source = f"{server.url}/mnist"
    algoperf("datasets", "download", "mnist", "--data-dir", str(data_dir), "--manifest",
             str(fixture), "--source", source, "--backoff", "0.01")
    listed = {d["name"]: d for d in json.loads(algoperf(
        "datasets", "list", "--data-dir", str(data_dir), "--json").stdout)}
    assert listed["mnist"]["status"] == "prepared"
    assert listed["mnist"]["root"] == content.recorded_root(data_dir, "mnist")
    assert listed["cifar10"]["status"] == "missing"
    assert listed["imagenet"]["status"] == "missing"
    assert listed["wmt"]["status"] == "not implemented"
    verified = algoperf("datasets", "verify", "mnist", "--data-dir", str(data_dir)).stdout
    assert "mnist: ok, 4 files" in verified and "NOT the official prepared root" in verified


@pytest.mark.parametrize("args,expected", [
    (("download", "mnsit"), "unknown dataset 'mnsit'. Did you mean 'mnist'?"),
    (("download", "wmt"), "preparing wmt is not implemented yet"),
    (("prepare", "mnist"), "mnist needs"),
    (("verify", "cifar10"), "cifar10 is not prepared in"),
    (("download", "mnist", "cifar10", "--source", "http://127.0.0.1:9/"),
     "--source applies to one dataset"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, expected):
    result = algoperf("datasets", *args, "--data-dir", str(tmp_path / "d"), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def test_cli_checksum_mismatch_from_a_source_keeps_nothing(server, tmp_path, mnist_fixture):
    server.files.update({f"/bad/{name}": data[::-1] for name, data in mnist_fixture.items()})
    fixture = mnist_manifest(tmp_path, server, mnist_fixture)
    data_dir = tmp_path / "data"
    result = algoperf("datasets", "download", "mnist", "--data-dir", str(data_dir),
                      "--manifest", str(fixture), "--source", f"{server.url}/bad/",
                      "--backoff", "0", check=False)
    assert result.returncode == 2 and "checksum mismatch" in result.stderr
    assert result.stderr.strip().count("\n") == 1
    downloads = data_dir / "downloads" / "mnist"
    assert not [p for p in downloads.iterdir() if p.name.endswith(".gz")]
    assert not (data_dir / "mnist").exists()


# Runs on prepared data.


def test_mnist_runs_on_downloaded_data_and_records_its_root(server, tmp_path, mnist_fixture):
    fixture = mnist_manifest(tmp_path, server, mnist_fixture)
    data_dir = tmp_path / "data"
    algoperf("datasets", "download", "mnist", "--data-dir", str(data_dir), "--manifest",
             str(fixture))
    root = content.recorded_root(data_dir, "mnist")
    submission = Path(__file__).resolve().parent.parent / "submissions" / "nadamw_self_tuning"
    for framework in ("pytorch", "jax"):
        algoperf("run", "--submission", str(submission / f"submission_{framework}.py"),
                 "--workload", "mnist", "--framework", framework, "--tuning-ruleset", "self",
                 "--experiment-dir", str(tmp_path / "runs"), "--experiment-name", framework,
                 "--data-dir", str(data_dir), "--max-global-steps", "3", "--seed", "1")
        (events,) = (tmp_path / "runs" / framework).rglob("events.jsonl")
        records = [json.loads(line) for line in events.read_text().splitlines()]
        start = next(r for r in records if r["type"] == "run_start")
        assert start["data"]["dataset_manifest_root"] == root
        assert records[-1]["type"] == "run_end"
        assert records[-1]["data"]["status"] == "completed"
        assert records[-1]["data"]["global_step"] == 3


def test_digits_runs_record_no_dataset_root(tmp_path):
    assert content.recorded_root(tmp_path, "digits") is None
    os.makedirs(tmp_path / "digits")
    assert content.recorded_root(tmp_path, "digits") is None


# CIFAR-10 preparation (the cifar workload's runs are in test_cifar.py).


def cifar_fixture(tmp_path: Path, server: FixtureServer, per_batch: int = 20, num_test: int = 30,
                  extra=None) -> tuple[Path, Path]:
    archive = tmp_path / "cifar-10-python.tar.gz"
    cifar_archive(archive, per_batch, num_test, extra=extra)
    server.files["/cifar/cifar-10-python.tar.gz"] = archive
    fixture = write_manifest(tmp_path / "cifar-fixture.json", "cifar10",
                             {archive.name: archive}, [f"{server.url}/cifar/"])
    return archive, fixture


def test_cifar10_is_prepared_into_hwc_arrays(server, tmp_path):
    from algoperf.datasets import cifar10

    _, fixture = cifar_fixture(tmp_path, server)
    data_dir = tmp_path / "data"
    prepared = operations.download(data_dir, "cifar10", manifest.load_file(fixture),
                                   options=FAST, echo=quiet)
    folder = data_dir / "cifar10"
    assert sorted(f.path for f in prepared.files) == sorted(
        ["meta.json", "test_images.npy", "test_labels.npy", "train_images.npy",
         "train_labels.npy"])
    images, labels = cifar10.load(folder, "train")
    assert images.shape == (100, 32, 32, 3) and labels.shape == (100,)
    assert (images[::20, 0, 1, 0] == [1, 2, 3, 4, 5]).all()  # batches 1..5 in order
    # Pixel (row 0, col 0) of plane R holds the index's low byte, planes became channels.
    assert (images[:20, 0, 0, 0] == np.arange(20)).all()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["label_names"][0] == "airplane" and meta["examples"] == {"train": 100,
                                                                           "test": 30}
    assert not (folder / ".extract").exists()


def test_cifar10_archive_with_a_traversal_member_is_refused(server, tmp_path):
    _, fixture = cifar_fixture(tmp_path, server, extra={"../../escape.txt": b"x"})
    data_dir = tmp_path / "data"
    with pytest.raises(UserError) as error:
        operations.download(data_dir, "cifar10", manifest.load_file(fixture), options=FAST,
                            echo=quiet)
    assert "refusing to extract" in one_line(error) and "escape.txt" in str(error.value)
    assert not (data_dir / "cifar10").exists() and not list(data_dir.glob(".cifar10.*-*"))
    assert not list(tmp_path.rglob("escape.txt"))


def test_cifar10_pickles_that_would_run_code_are_refused(server, tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    evil = pickle.dumps({b"data": Exploit()}, protocol=2)
    _, fixture = cifar_fixture(tmp_path, server, extra={f"{CIFAR_FOLDER}/data_batch_3": evil})
    with pytest.raises(UserError) as error:
        operations.download(tmp_path / "data", "cifar10", manifest.load_file(fixture),
                            options=FAST, echo=quiet)
    assert "refusing to load posix.system" in one_line(error)
    assert not (Path.cwd() / "pwned").exists()
