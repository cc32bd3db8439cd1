"""What `algoperf datasets` does: status, download, prepare and verify of one dataset.

Layout under the data directory (the shared volume)::

    <data_dir>/<name>/                 the prepared dataset, with MANIFEST.json (content.py)
    <data_dir>/downloads/<name>/       verified downloads (and *.partial files in transfer)
    <data_dir>/.<name>.staging-<pid>/  a preparation in progress; renamed to <name> when done
    <data_dir>/.<name>.lock            held while a process downloads or prepares <name>

A prepared dataset appears under its name only once complete, manifest included, so a crash
at any point leaves either the previous state or a staging directory that the next attempt
removes. Free disk space is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import importlib
import inspect
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from algoperf.datasets import content, fetch
from algoperf.datasets.manifest import Manifest, load
from algoperf.errors import UserError
from algoperf.hashing import file_sha256

Echo = Callable[[str], None]


def prepared_dir(data_dir: Path, name: str) -> Path:
    return data_dir / name


def downloads_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "downloads" / name


def human_bytes(n: int | None, approx: bool = False) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return ("~" if approx else "") + text
        value /= 1000
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _locked(data_dir: Path, name: str) -> Iterator[None]:
    """One process at a time downloads or prepares ``name`` in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f".{name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another process is downloading or preparing {name} in "
                            f"{data_dir}; wait for it to finish") from None
        yield


def _module(manifest: Manifest):
    if not manifest.implemented:
        gate = f" ({manifest.gating})" if manifest.gating else ""
        raise UserError(f"preparing {manifest.name} is not implemented yet; it comes with the "
                        f"{', '.join(manifest.workloads)} workload{gate}")
    return importlib.import_module(f"algoperf.datasets.{manifest.name}")


def _check_space(data_dir: Path, need: int, what: str) -> None:
    free = shutil.disk_usage(data_dir).free
    if need > free:
        raise UserError(f"not enough free disk space in {data_dir}: {what} needs about "
                        f"{human_bytes(need)}, {human_bytes(free)} are free; free space or "
                        "use another --data-dir")


# Status.

@dataclasses.dataclass(frozen=True)
class Status:
    manifest: Manifest
    state: str  # prepared, downloaded, partial, missing, unprepared, not implemented
    detail: str = ""
    root: str | None = None


def status(data_dir: Path, name: str, manifest: Manifest | None = None) -> Status:
    """What ``data_dir`` holds of dataset ``name``, without hashing anything."""
    m = manifest or load(name)
    target = prepared_dir(data_dir, name)
    if (target / content.MANIFEST_NAME).is_file():
        try:
            stored = content.read(target)
        except UserError as e:
            return Status(m, "damaged", str(e))
        return Status(m, "prepared", f"{len(stored.files)} files", stored.root)
    if not m.implemented:
        return Status(m, "not implemented", m.gating or "")
    if target.exists():
        return Status(m, "unprepared", f"{target} exists without {content.MANIFEST_NAME}")
    downloads = downloads_dir(data_dir, name)
    complete = [f for f in m.files if (downloads / f.name).is_file()
                and (downloads / f.name).stat().st_size == f.size]
    partial = list(downloads.glob(f"*{fetch.PARTIAL_SUFFIX}")) if downloads.is_dir() else []
    if complete and len(complete) == len(m.files):
        return Status(m, "downloaded", "not prepared yet")
    if complete or partial:
        return Status(m, "partial", f"{len(complete)} of {len(m.files)} files downloaded")
    return Status(m, "missing")


# Download.

def download(data_dir: Path, name: str, manifest: Manifest | None = None,
             source: str | None = None, options: fetch.Options | None = None,
             force: bool = False, keep_downloads: bool = True,
             echo: Echo = print) -> content.ContentManifest:
    """Fetches the dataset's files into ``downloads/<name>`` and prepares them."""
    m = manifest or load(name)
    _module(m)
    target = prepared_dir(data_dir, name)
    with _locked(data_dir, name):
        if (target / content.MANIFEST_NAME).is_file() and not force:
            stored = content.read(target)
            echo(f"{name}: already prepared in {target} (root {stored.root}); "
                 "`verify` checks it, --force prepares it again")
            return stored
        bases = (source,) if source else m.mirrors
        if not bases:
            gate = m.gating or "it has no public mirror"
            raise UserError(f"{name} cannot be downloaded directly: {gate}. Put the files in a "
                            f"folder and run: algoperf datasets prepare {name} --raw-dir DIR")
        downloads = downloads_dir(data_dir, name)
        downloads.mkdir(parents=True, exist_ok=True)
        jobs = [fetch.Job(tuple(_join(base, f.name) for base in bases), downloads / f.name,
                          f.size, f.sha256) for f in m.files]
        _check_space(data_dir, _remaining_bytes(jobs) + (m.prepared_bytes or 0)
                     + m.scratch_bytes, f"downloading and preparing {name}")
        echo(f"{name}: downloading {len(jobs)} file(s), {human_bytes(m.download_bytes)}, "
             f"from {bases[0]}{' (and mirrors)' if len(bases) > 1 else ''}")
        try:
            fetch.fetch_all(jobs, options or fetch.Options(), name)
        except fetch.Offline as e:
            files = " ".join(f.name for f in m.files)
            raise UserError(
                f"{name}: cannot connect to {fetch.describe_hosts(e.hosts)}; this machine "
                f"seems to be offline. Fetch {files} elsewhere, copy them into a folder and run "
                f"`algoperf datasets prepare {name} --data-dir {data_dir} --raw-dir DIR`, or "
                "pass --source URL of a mirror this machine can reach") from None
        result = _prepare_locked(data_dir, m, downloads, force=True, echo=echo,
                                 options=options)
        if not keep_downloads:
            shutil.rmtree(downloads, ignore_errors=True)
        return result


def _join(base: str, filename: str) -> str:
    return base if base.endswith("/" + filename) else base.rstrip("/") + "/" + filename


def _remaining_bytes(jobs: list[fetch.Job]) -> int:
    total = 0
    for job in jobs:
        partial = job.dest.with_name(job.dest.name + fetch.PARTIAL_SUFFIX)
        if job.dest.is_file() and job.dest.stat().st_size == job.size:
            continue
        total += job.size - (partial.stat().st_size if partial.is_file() else 0)
    return max(total, 0)


# Prepare.

def prepare(data_dir: Path, name: str, manifest: Manifest | None = None,
            raw_dir: Path | None = None, force: bool = False,
            echo: Echo = print) -> content.ContentManifest:
    """Prepares the dataset from ``raw_dir`` (default: its downloads folder)."""
    m = manifest or load(name)
    _module(m)
    with _locked(data_dir, name):
        return _prepare_locked(data_dir, m, raw_dir or downloads_dir(data_dir, name), force,
                               echo)


def _check_raw_files(m: Manifest, raw_dir: Path, data_dir: Path) -> None:
    missing = [f.name for f in m.files if not (raw_dir / f.name).is_file()]
    if missing:
        where = (f"get them from {m.homepage}" if not m.gating else m.gating)
        raise UserError(
            f"{m.name} needs {', '.join(missing)} in {raw_dir}; run `algoperf datasets download "
            f"{m.name} --data-dir {data_dir}` or put the file(s) there ({where})")
    for f in m.files:
        path = raw_dir / f.name
        size = path.stat().st_size
        if size != f.size:
            raise UserError(f"{path} has {size:,} bytes, the {m.name} manifest says {f.size:,}; "
                            "it is not the expected file (an interrupted copy?): get it again")
        digest = file_sha256(path)
        if digest != f.sha256:
            raise UserError(f"checksum mismatch for {path}: sha256 {digest[:16]}..., the "
                            f"{m.name} manifest says {f.sha256[:16]}...; get the file again")


def _prepare_locked(data_dir: Path, m: Manifest, raw_dir: Path, force: bool,
                    echo: Echo, options: fetch.Options | None = None
                    ) -> content.ContentManifest:
    """Prepares ``raw_dir`` into the dataset's folder; ``options`` (the download's --jobs,
    --retries, --backoff) reach a module whose ``prepare`` fetches more files itself
    (finewebedu's shards)."""
    module = _module(m)
    target = prepared_dir(data_dir, m.name)
    if (target / content.MANIFEST_NAME).is_file() and not force:
        stored = content.read(target)
        echo(f"{m.name}: already prepared in {target} (root {stored.root}); --force prepares "
             "it again")
        return stored
    if target.exists() and not force:
        raise UserError(f"{target} exists but was not prepared by algoperf (no "
                        f"{content.MANIFEST_NAME}); move it away or pass --force to replace it")
    _check_raw_files(m, raw_dir, data_dir)
    for stale in data_dir.glob(f".{m.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    _check_space(data_dir, (m.prepared_bytes or 0) + m.scratch_bytes, f"preparing {m.name}")
    staging = data_dir / f".{m.name}.staging-{os.getpid()}"
    staging.mkdir()
    try:
        echo(f"{m.name}: preparing from {raw_dir}")
        fetches = "options" in inspect.signature(module.prepare).parameters
        info = module.prepare(raw_dir, staging, m, **({"options": options} if fetches else {}))
        source = {"manifest_sha256": m.sha256, "builtin_manifest": m.builtin,
                  "files": {f.name: f.sha256 for f in m.files}, **(info or {})}
        result = content.scan(staging, m.name, source)
        content.write(staging, result)
        _replace_dir(staging, target)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise UserError(f"disk full while preparing {m.name} in {data_dir}; nothing was "
                            "kept: free space and run the same command again") from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    echo(f"{m.name}: prepared in {target}: {len(result.files)} files, root {result.root}")
    return result


def _replace_dir(staging: Path, target: Path) -> None:
    """Renames ``staging`` to ``target``; an older ``target`` is moved aside, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# Verify.

@dataclasses.dataclass(frozen=True)
class Verified:
    manifest: content.ContentManifest
    official: bool | None  # matches the built-in prepared root; None where none is known


def verify(data_dir: Path, name: str, manifest: Manifest | None = None) -> Verified:
    """Recomputes every file hash of the prepared dataset; UserError on any difference."""
    m = manifest or load(name)
    target = prepared_dir(data_dir, name)
    if not target.is_dir():
        raise UserError(f"{name} is not prepared in {data_dir}; run: algoperf datasets "
                        f"download {name} --data-dir {data_dir}")
    stored = content.read(target)
    actual = content.scan(target, name, stored.source)
    differences = content.compare(stored, actual)
    if differences:
        raise UserError(f"{name} in {target} does not match its manifest: "
                        f"{differences.summary()}; prepare it again with --force")
    official = None if m.prepared_root is None else stored.root == m.prepared_root
    return Verified(stored, official)
