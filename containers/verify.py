"""``algoperf docker verify-image``: an image's Python environments against its lockfile.

What is checked, with no code from the image trusted for the file hashes (they are read from
an exported archive on the host):

- the image's lockfile label equals the checkout's lockfile of its variant;
- the distributions in ``/opt/algoperf`` are exactly the lockfile's (no more, no fewer, same
  versions), and ``/opt/algoperf-project`` holds the project's wheel;
- every file a wheel installs has the sha256 the wheel's RECORD gives, where the wheel itself
  matched the lockfile's hash; files pip writes at install time (RECORD, INSTALLER, REQUESTED,
  entry-point scripts) match the installed RECORD; nothing else is there;
- each byte-code file holds exactly the compiled code of its source (checked by the image's
  base interpreter, run isolated from site-packages);
- the base image's layers, when that image is on this engine, are the bottom of the image.

A passing image is remembered by its id (which is a digest of its content), so `docker run`
checks an image once.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
from docker.models.images import Image

from algoperf.containers import build, source, wheelhouse
from algoperf.containers.lockfiles import PYTHON_VERSION, Lockfile, parse_lockfile
from algoperf.errors import UserError

VENV = "/opt/algoperf"
PROJECT = "/opt/algoperf-project"
SUBMISSION_DEPS = "/opt/submission-deps"
SITE = f"lib/python{PYTHON_VERSION}/site-packages"
PIP_WRITTEN = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
VENV_OWN = {"pyvenv.cfg", "lib64", "bin/python", "bin/python3", f"bin/python{PYTHON_VERSION}",
            "bin/activate", "bin/activate.csh", "bin/activate.fish", "bin/Activate.ps1"}


@dataclasses.dataclass
class Installed:
    """What an environment folder of the image holds: path -> sha256 (files) or '-> target'
    (symbolic links)."""

    files: dict[str, str]


class _ChunkReader(io.RawIOBase):
    """A file object over the byte chunks docker-py's get_archive yields."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n


def read_folder(container, path: str) -> tuple[Installed, dict[str, bytes]]:
    """Hashes every file under ``path`` of a (created, not started) container; also returns
    the bytes of the RECORD files."""
    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return Installed({}), {}
    files, records = {}, {}
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(iter(chunks)), 1 << 20),
                      mode="r|") as tar:
        for member in tar:
            rel = member.name.split("/", 1)[1] if "/" in member.name else ""
            if member.issym() or member.islnk():
                files[rel] = "-> " + member.linkname
            elif member.isfile():
                data = tar.extractfile(member)
                digest = hashlib.sha256()
                content = b""
                keep = rel.endswith(".dist-info/RECORD")
                while block := data.read(1 << 20):
                    digest.update(block)
                    if keep:
                        content += block
                files[rel] = digest.hexdigest()
                if keep:
                    records[rel] = content
    return Installed(files), records


def _record_hashes(text: str) -> dict[str, str]:
    """path -> sha256 hex from a RECORD (entries without a hash are left out)."""
    out = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(row[1][7:] + "=" * (-len(row[1][7:]) % 4))
            out[row[0]] = raw.hex()
    return out


def wheel_files(wheel: Path, site: str, scripts: str) -> tuple[str, dict[str, str]]:
    """The dist-info folder a wheel installs and path -> sha256 of the files it installs
    (relative to the environment's root). Scripts are left out: pip rewrites their
    ``#!python`` line, so they are checked against the installed RECORD instead."""
    with zipfile.ZipFile(wheel) as z:
        record_name = next(n for n in z.namelist()
                           if n.endswith(".dist-info/RECORD") and n.count("/") == 1)
        record = _record_hashes(z.read(record_name).decode())
    dist_info = record_name.split("/")[0]
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    files = {}
    for path, digest in record.items():
        if path.startswith(data_dir + "/"):
            kind, _, rest = path[len(data_dir) + 1:].partition("/")
            if kind == "scripts":
                continue
            target = {"purelib": f"{site}{rest}", "platlib": f"{site}{rest}",
                      "data": rest}.get(kind, f"include/site/python{PYTHON_VERSION}/{rest}")
            files[target] = digest
        else:
            files[f"{site}{path}"] = digest
    return f"{site}{dist_info}", files


def compare(installed: Installed, records: dict[str, bytes],
            wheels: dict[str, Path], site: str, own: set[str], label: str) -> list[str]:
    """Every difference between an environment folder and the wheels it should hold."""
    problems, expected, accounted = [], {}, set(own)
    expected_dists = {}
    for name, wheel in wheels.items():
        dist_info, files = wheel_files(wheel, site, "bin/")
        expected_dists[dist_info] = name
        expected.update(files)
    # Only the environment's own distributions: wheels may vendor others (setuptools/_vendor).
    records = {path: content for path, content in records.items()
               if path.rpartition("/")[0].rpartition("/")[0] == site.rstrip("/")}
    present_dists = {path.rpartition("/")[0] for path in records}
    for dist in sorted(present_dists - set(expected_dists)):
        problems.append(f"{label}: distribution {dist.rpartition('/')[2]} is not in the lock")
    for dist in sorted(set(expected_dists) - present_dists):
        problems.append(f"{label}: locked {dist.rpartition('/')[2]} is not installed")
    for path, digest in sorted(expected.items()):
        accounted.add(path)
        actual = installed.files.get(path)
        if actual is None:
            problems.append(f"{label}: missing {path}")
        elif actual != digest:
            problems.append(f"{label}: changed {path} (sha256 {actual[:12]}, locked "
                            f"{digest[:12]})")
    # What pip wrote at install time is held to the installed RECORD.
    for record_path, content in records.items():
        dist_info = record_path.rpartition("/")[0]
        accounted.update(f"{dist_info}/{n}" for n in PIP_WRITTEN)
        for rel, digest in _record_hashes(content.decode()).items():
            path = _installed_path(site, rel)
            if path in expected:
                continue
            accounted.add(path)
            actual = installed.files.get(path)
            if actual is not None and actual != digest:
                problems.append(f"{label}: changed {path} (against the installed RECORD)")
    for path in sorted(installed.files):
        if path in accounted or "/__pycache__/" in f"/{path}":
            continue
        problems.append(f"{label}: unexpected file {path}")
    return problems


def _installed_path(site: str, rel: str) -> str:
    """Where an installed RECORD's path lies, relative to the environment's root. A ``pip
    install --target`` RECORD keeps the paths of pip's temporary ``lib/python`` folder, so its
    scripts (``../../bin/x``) climb above the root; they live in ``bin/`` beside the packages."""
    parts: list[str] = []
    for part in f"{site}{rel}".split("/"):
        if part == "..":
            if not parts:
                return "bin/" + rel.rpartition("/")[2]
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


# Run by the image's base interpreter with -I -S (site-packages not imported): each .pyc must
# be a checked-hash byte-code file of its source holding exactly the source's compiled code.
_PYC_CHECK = r"""
import importlib.util, json, marshal, os, re, sys
from concurrent.futures import ProcessPoolExecutor
def check(pyc):
    folder, name = os.path.split(pyc)
    m = re.match(r"(.+?)\.[a-z]+-\d+(?:\.opt-(\d))?\.pyc$", name)
    if not m or os.path.basename(folder) != "__pycache__":
        return pyc + ": not a byte-code file of a module"
    src = os.path.join(os.path.dirname(folder), m.group(1) + ".py")
    if not os.path.isfile(src):
        return pyc + ": has no source"
    with open(pyc, "rb") as f:
        data = f.read()
    with open(src, "rb") as f:
        source = f.read()
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return pyc + ": is for another interpreter"
    if int.from_bytes(data[4:8], "little") != 3 or data[8:16] != importlib.util.source_hash(source):
        return pyc + ": is not a checked-hash byte-code file of its source"
    try:
        code = compile(source, src, "exec", dont_inherit=True, optimize=int(m.group(2) or 0))
        if marshal.loads(data[16:]) != code:
            return pyc + ": byte code differs from its source"
    except Exception as e:
        return pyc + ": " + type(e).__name__
    return None
pycs = [os.path.join(d, f) for root in sys.argv[1:] for d, _, fs in os.walk(root)
        for f in fs if f.endswith(".pyc")]
with ProcessPoolExecutor(os.cpu_count()) as pool:
    bad = [r for r in pool.map(check, pycs, chunksize=64) if r]
print(json.dumps({"checked": len(pycs), "bad": bad}))
"""


def check_bytecode(client: docker.DockerClient, image: Image, roots: list[str]) -> list[str]:
    """Differences between byte code and sources in ``roots``, checked inside ``image``."""
    container = client.containers.create(
        image.id, entrypoint=[f"{VENV}/bin/python", "-I", "-S", "-c", _PYC_CHECK],
        command=roots, network_mode="none", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], user=build.DEFAULT_UID)
    try:
        container.start()
        status = container.wait()["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    if status != 0:
        return [f"byte code: the check could not run ({(err.strip().splitlines() or ['?'])[-1]})"]
    return [f"byte code: {line}" for line in json.loads(out.strip().splitlines()[-1])["bad"]]


def check_base_layers(client: docker.DockerClient, image: Image) -> list[str]:
    """The image must sit on the base image its label names, when that base is here."""
    base_id = (image.labels or {}).get(build.LABEL + "base-image-id")
    try:
        base = client.images.get(base_id) if base_id else None
    except docker.errors.ImageNotFound:
        return []
    if base is None:
        return []
    ours, theirs = image.attrs["RootFS"]["Layers"], base.attrs["RootFS"]["Layers"]
    if ours[: len(theirs)] != theirs:
        return [f"base: the image's bottom layers are not those of its base {base_id[:19]}"]
    return []


def project_wheel(sha: str | None) -> Path | None:
    """The project's wheel with sha256 ``sha``: kept by the build, or rebuilt from this
    checkout (the build is reproducible, so the same source gives the same wheel)."""
    if not sha:
        return None
    kept = sorted((build.project_wheel_cache() / sha).glob("*.whl"))
    if kept:
        return kept[0]
    import tempfile

    from algoperf.hashing import file_sha256

    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheelhouse.build_project_wheel(source.source_root(), Path(tmp))
        if file_sha256(wheel) == sha:
            build._keep_project_wheel(wheel, sha)
            return sorted((build.project_wheel_cache() / sha).glob("*.whl"))[0]
    return None


def verified_marker(image_id: str) -> Path:
    return wheelhouse.cache_dir() / "verified" / image_id.replace("sha256:", "")


def verify_image(client: docker.DockerClient, image: Image, submission_dir: Path | None = None,
                 find_links: tuple[str, ...] = (), echo: Callable[[str], None] = print
                 ) -> list[str]:
    """Every difference between ``image`` and its lockfile(s); empty when it matches."""
    lockfile = build.locked_for(image)
    labels = image.labels or {}
    wheels = wheelhouse.ensure_wheels(lockfile, find_links, echo)
    problems = check_base_layers(client, image)
    sub_wheels: dict[str, Path] = {}
    if build.LABEL + "submission-lock-sha256" in labels:
        if submission_dir is None:
            raise UserError(f"image {image.short_id} holds the packages of submission "
                            f"{labels.get(build.LABEL + 'submission')}; pass --submission DIR "
                            "to check them against its requirements.txt")
        sub, added = build.submission_packages(client.images.get(
            labels[build.LABEL + "parent-image-id"]), submission_dir.resolve())
        if sub.sha256 != labels[build.LABEL + "submission-lock-sha256"]:
            problems.append(f"submission: {sub.path} changed since the image was built")
        found = wheelhouse.ensure_wheels(sub, find_links, echo)
        sub_wheels = {n: found[n] for n in added}
    project = project_wheel(labels.get(build.LABEL + "project-wheel-sha256"))
    echo(f"reading the image's environments ({image.short_id})")
    container = client.containers.create(image.id, entrypoint=["/bin/true"],
                                         network_mode="none")
    try:
        venv, venv_records = read_folder(container, VENV)
        proj, proj_records = read_folder(container, PROJECT)
        subs, sub_records = read_folder(container, SUBMISSION_DEPS)
    finally:
        container.remove(force=True)
    problems += compare(venv, venv_records, wheels, f"{SITE}/", VENV_OWN, VENV)
    if project is None:
        problems.append(f"{PROJECT}: the project's wheel (sha256 "
                        f"{str(labels.get(build.LABEL + 'project-wheel-sha256'))[:12]}) is "
                        "neither kept here nor built by this checkout; check out the image's "
                        "source revision")
    else:
        problems += compare(proj, proj_records, {"algoperf": project}, "", set(), PROJECT)
    if sub_wheels or subs.files:
        problems += compare(subs, sub_records, sub_wheels, "", set(), SUBMISSION_DEPS)
    echo("checking byte code against sources inside the image")
    roots = [VENV, PROJECT] + ([SUBMISSION_DEPS] if subs.files else [])
    problems += check_bytecode(client, image, roots)
    if not problems:
        marker = verified_marker(image.id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"lockfile_sha256": lockfile.sha256}))
    return problems


def already_verified(image: Image) -> bool:
    return verified_marker(image.id).exists()


__all__ = ["verify_image", "already_verified", "parse_lockfile", "Lockfile"]
