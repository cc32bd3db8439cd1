"""Hash-pinned lockfiles for the image variants (``algoperf env lock``).

The locking tool is uv (``uv pip compile --generate-hashes``): it resolves for a target Python
and platform other than the host's (the image's CPython 3.11 on x86_64 Linux), takes every hash
from the index's metadata instead of downloading each wheel (the CUDA variants name several GB
of wheels), and writes pip's requirements format, which pip installs in hash-checking mode
(``--require-hashes``) in the image. pip-tools would resolve with the host's interpreter and
pip configuration, which is the wrong target for an image.

A lockfile starts with a header that records its input, the variant's requirement lines from
pyproject.toml; `drift` compares that record and the pins against pyproject as it is now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from algoperf.containers.variants import Variant
from algoperf.errors import UserError
from algoperf.hashing import file_sha256

# The image's interpreter and platform (the Dockerfile's base images are CPython 3.11 on Debian
# bookworm, glibc 2.36).
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
TARGET_ENVIRONMENT = {
    **default_environment(),
    "python_version": PYTHON_VERSION, "python_full_version": f"{PYTHON_VERSION}.2",
    "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
    "os_name": "posix", "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
INPUT_PREFIX = "#   input: "


@dataclasses.dataclass(frozen=True)
class LockEntry:
    """One pinned distribution: ``name==version`` with the sha256 of each accepted file."""

    name: str  # canonical (PEP 503) name
    version: str
    hashes: frozenset[str]  # hex digests
    marker: str | None = None

    def applies(self) -> bool:
        """Whether the image installs it (its environment marker holds in the image)."""
        return self.marker is None or Requirement(f"x; {self.marker}").marker.evaluate(
            TARGET_ENVIRONMENT)

    def requirement_line(self) -> str:
        """The entry as pip reads it in hash-checking mode."""
        return f"{self.name}=={self.version} " + " ".join(
            f"--hash=sha256:{h}" for h in sorted(self.hashes))


@dataclasses.dataclass(frozen=True)
class Lockfile:
    path: Path
    sha256: str
    inputs: tuple[str, ...]
    entries: tuple[LockEntry, ...]

    def installed(self) -> dict[str, LockEntry]:
        """The entries the image installs, by canonical name."""
        return {e.name: e for e in self.entries if e.applies()}


def _logical_lines(text: str) -> list[str]:
    """Requirement lines with their backslash continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse_lockfile(path: Path) -> Lockfile:
    """Reads a lockfile; one clear line if it is missing or not a hash-pinned lockfile."""
    if not path.is_file():
        raise UserError(f"lockfile {path} does not exist; write it with `algoperf env lock`")
    text = path.read_text()
    inputs = tuple(line[len(INPUT_PREFIX):] for line in text.splitlines()
                   if line.startswith(INPUT_PREFIX))
    entries = []
    for line in _logical_lines(text):
        spec, *options = re.split(r"\s+(?=--)", line)
        hashes = {o.split("sha256:", 1)[1] for o in options if o.startswith("--hash=sha256:")}
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            raise UserError(f"{path}: cannot read the line {line[:60]!r}; rewrite the lockfile "
                            "with `algoperf env lock`") from None
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if len(pins) != 1 or not hashes:
            raise UserError(f"{path}: {spec} is not pinned with == and --hash; rewrite the "
                            "lockfile with `algoperf env lock`")
        entries.append(LockEntry(canonicalize_name(req.name), pins[0], frozenset(hashes),
                                 str(req.marker) if req.marker else None))
    return Lockfile(path, file_sha256(path), inputs, tuple(entries))


def _header(variant: Variant) -> str:
    joined = "\n".join(variant.requirements)
    lines = [
        f"# algoperf image lockfile, variant {variant.name}: {variant.description}.",
        "# Written by `algoperf env lock` (uv pip compile --generate-hashes) from pyproject.toml;",
        "# do not edit: change pyproject.toml and lock again.",
        f"# Target: CPython {PYTHON_VERSION}, {PYTHON_PLATFORM}. "
        f"Input sha256 {hashlib.sha256(joined.encode()).hexdigest()}:",
    ]
    return "\n".join(lines + [INPUT_PREFIX + r for r in variant.requirements]) + "\n"


def uv_binary() -> str:
    """The uv executable: the one the `uv` package ships, else one on PATH."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise UserError("`algoperf env lock` needs uv: pip install uv (it is in the "
                            "project's dev extra)") from None
        return found


def lock(variant: Variant, find_links: tuple[str, ...] | None = None,
         upgrade: bool = False) -> Path:
    """Resolves ``variant`` with uv and writes its lockfile; returns the lockfile's path.

    ``find_links`` replaces the variant's own (for a local copy of PyTorch's CPU wheels); it
    applies only to variants that declare find-links, so a CUDA variant never picks up a CPU
    build from it. Pins already in the lockfile are kept unless ``upgrade``.
    """
    links = variant.find_links if not find_links or not variant.find_links else find_links
    variant.lockfile.parent.mkdir(parents=True, exist_ok=True)
    out = variant.lockfile.with_suffix(".tmp")
    if variant.lockfile.exists() and not upgrade:
        shutil.copyfile(variant.lockfile, out)  # uv keeps the pins it finds in the output file
    cmd = [uv_binary(), "pip", "compile", "-", "--generate-hashes", "--no-header",
           "--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM,
           "--output-file", str(out), "--quiet"]
    if upgrade:
        cmd.append("--upgrade")
    for link in links:
        cmd += ["--find-links", link]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    proc = subprocess.run(cmd, input="\n".join(variant.requirements) + "\n", text=True,
                          capture_output=True, env=env)
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"locking variant {variant.name} failed: {reason}")
    body = out.read_text()
    out.write_text(_header(variant) + body)
    os.replace(out, variant.lockfile)
    return variant.lockfile


def drift(variant: Variant) -> list[str]:
    """How ``variant``'s lockfile and pyproject.toml disagree; empty when they agree.

    Reports requirement lines added to or removed from pyproject since the lock, and any
    requirement the pins do not satisfy.
    """
    lockfile = parse_lockfile(variant.lockfile)
    problems = []
    for line in variant.requirements:
        if line not in lockfile.inputs:
            problems.append(f"{variant.name}: pyproject requires {line!r}, not in the lock's "
                            "input")
    for line in lockfile.inputs:
        if line not in variant.requirements:
            problems.append(f"{variant.name}: the lock's input {line!r} is no longer in "
                            "pyproject")
    pins = lockfile.installed()
    for line in variant.requirements:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate(TARGET_ENVIRONMENT):
            continue
        entry = pins.get(canonicalize_name(req.name))
        if entry is None:
            problems.append(f"{variant.name}: {req.name} is required but not locked")
        elif not req.specifier.contains(entry.version, prereleases=True):
            problems.append(f"{variant.name}: {req.name}=={entry.version} is locked but "
                            f"pyproject requires {req.specifier}")
    return problems
