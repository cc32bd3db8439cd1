"""The wheels a lockfile names, downloaded on the host and checked against its hashes.

The wheelhouse is a cache folder shared by every variant (``$ALGOPERF_CACHE`` or
``~/.cache/algoperf``). A lockfile entry is satisfied by a wheel whose sha256 is one of the
entry's hashes and which installs on the image's interpreter and platform; the missing ones are
fetched by ``pip download --require-hashes`` for that target (pip checks each hash as it
downloads). Hashing is remembered per (file, size, mtime), so a second build hashes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from algoperf.containers.lockfiles import PYTHON_VERSION, LockEntry, Lockfile
from algoperf.errors import UserError
from algoperf.hashing import file_sha256

MANYLINUX = "manylinux_2_28_x86_64"


def cache_dir() -> Path:
    root = os.environ.get("ALGOPERF_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "algoperf"
    return Path(root)


def wheelhouse_dir() -> Path:
    path = cache_dir() / "wheelhouse"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _target_platforms() -> list[str]:
    """manylinux_2_28 down to 2_5, the aliases manylinux2014/2010/1, linux: what glibc 2.28+
    on x86_64 accepts."""
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
                   "linux_x86_64"]


def target_tags() -> set[Tag]:
    """The wheel tags the image's CPython installs."""
    version = tuple(int(p) for p in PYTHON_VERSION.split("."))
    platforms = _target_platforms()
    return set(cpython_tags(version, platforms=platforms)) | set(
        compatible_tags(version, f"cp{version[0]}{version[1]}", platforms=platforms))


class HashIndex:
    """sha256 of the wheelhouse's files, recomputed only for files that changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / ".sha256-index.json"
        try:
            self._index = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._index = {}

    def digests(self) -> dict[str, Path]:
        """sha256 -> wheel, for every wheel in the folder."""
        out, changed = {}, False
        for wheel in self.folder.glob("*.whl"):
            st = wheel.stat()
            key = [st.st_size, st.st_mtime_ns]
            known = self._index.get(wheel.name)
            if known is None or known[:2] != key:
                known = key + [file_sha256(wheel)]
                self._index[wheel.name] = known
                changed = True
            out[known[2]] = wheel
        if changed:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._index, sort_keys=True))
            os.replace(tmp, self.path)
        return out


def _match(entries: dict[str, LockEntry], digests: dict[str, Path]) -> dict[str, Path]:
    tags = target_tags()
    found = {}
    for name, entry in entries.items():
        for digest in entry.hashes:
            wheel = digests.get(digest)
            if wheel is None:
                continue
            try:
                _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
            except InvalidWheelFilename:
                continue
            if wheel_tags & tags:
                found[name] = wheel
                break
    return found


def _pip_download(entries: list[LockEntry], dest: Path, find_links: tuple[str, ...]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(e.requirement_line() for e in entries) + "\n")
        requirements = f.name
    major, minor = PYTHON_VERSION.split(".")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
           "--only-binary", ":all:", "--python-version", PYTHON_VERSION,
           "--implementation", "cp", "--abi", f"cp{major}{minor}", "--abi", "abi3",
           "--abi", "none", "--dest", str(dest), "--progress-bar", "off",
           "--disable-pip-version-check", "-r", requirements]
    for platform in _target_platforms():
        cmd += ["--platform", platform]
    for link in find_links:
        cmd += ["--find-links", link]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        os.unlink(requirements)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")] or \
            proc.stderr.strip().splitlines()[-1:]
        raise UserError(f"downloading the locked wheels failed: {' '.join(lines)[:400]} "
                        "(PyTorch's CPU build may need --find-links DIR-or-URL)")


def ensure_wheels(lockfile: Lockfile, find_links: tuple[str, ...] = (),
                  echo=print) -> dict[str, Path]:
    """name -> wheel for every entry the image installs, downloading the missing ones."""
    folder = wheelhouse_dir()
    index = HashIndex(folder)
    entries = lockfile.installed()
    found = _match(entries, index.digests())
    missing = [e for n, e in sorted(entries.items()) if n not in found]
    if missing:
        echo(f"downloading {len(missing)} of {len(entries)} locked wheels into {folder}")
        _pip_download(missing, folder, find_links)
        found = _match(entries, index.digests())
    still = sorted(set(entries) - set(found))
    if still:
        raise UserError(f"no wheel for the image's platform matches the lockfile's hashes for "
                        f"{', '.join(still)}; lock again with `algoperf env lock`")
    return found


def build_project_wheel(root: Path, dest: Path) -> Path:
    """The project's own wheel, built with fixed timestamps so the same source gives the same
    bytes (and so the same image layer)."""
    dest.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_NO_INPUT": "1"}
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--disable-pip-version-check", "--quiet", "--wheel-dir", str(dest), str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wheels = sorted(dest.glob("algoperf-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise UserError(f"building the project's wheel failed: "
                        f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return wheels[-1]
