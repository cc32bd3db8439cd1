"""Dataset manifests: where a dataset's files come from and what they must be.

Each AlgoPerf dataset has one JSON file in ``manifests/`` (package data): the files to fetch
(name, size in bytes, sha256), the mirrors they can be fetched from (tried in order; a file's
URL is a mirror plus its name), the license or the gate in front of the data, and the
approximate sizes of the download, the prepared result and the scratch space preparation
needs. ``implemented`` says whether this project can prepare it yet (the large datasets arrive
with their workloads). A mirror's base URL may be ``https://``, ``http://`` or ``gs://``.

A user can pass a manifest file of their own (``--manifest``), e.g. for a private mirror that
repackaged the data; the hashes in it are then the ones checked, and its sha256 is recorded in
the prepared dataset's content manifest, so such a dataset is never mistaken for the official
one.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from importlib import resources
from pathlib import Path

from algoperf.errors import UserError

_SHA256_HEX = set("0123456789abcdef")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    workloads: tuple[str, ...]
    homepage: str
    license: str
    gating: str | None
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    download_bytes: int | None
    prepared_bytes: int | None
    scratch_bytes: int
    prepared_root: str | None  # the official prepared root, where known
    implemented: bool
    notes: str
    sha256: str  # of the manifest file's bytes: recorded with what it prepared
    builtin: bool  # shipped with this package (not a user's --manifest)


def _parse(text: bytes, origin: str, builtin: bool) -> Manifest:
    try:
        data = json.loads(text)
        files = tuple(RemoteFile(str(f["name"]), int(f["size"]), str(f["sha256"]).lower())
                      for f in data["files"])
        manifest = Manifest(
            name=str(data["name"]), title=str(data.get("title", data["name"])),
            workloads=tuple(data.get("workloads", ())), homepage=data.get("homepage", ""),
            license=data.get("license", "unknown"), gating=data.get("gating"),
            mirrors=tuple(str(m) for m in data.get("mirrors", ())), files=files,
            download_bytes=data.get("download_bytes"), prepared_bytes=data.get("prepared_bytes"),
            scratch_bytes=int(data.get("scratch_bytes", 0)),
            prepared_root=data.get("prepared_root"),
            implemented=bool(data.get("implemented", False)), notes=data.get("notes", ""),
            sha256=hashlib.sha256(text).hexdigest(), builtin=builtin)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"dataset manifest {origin} is malformed ({type(e).__name__}: {e}); "
                        "fix it or use the built-in manifest") from None
    for f in files:
        if len(f.sha256) != 64 or not set(f.sha256) <= _SHA256_HEX:
            raise UserError(f"dataset manifest {origin}: {f.name} has no valid sha256 "
                            "(64 hex digits)")
        if "/" in f.name or f.name in ("", ".", ".."):
            raise UserError(f"dataset manifest {origin}: file name {f.name!r} must be a plain "
                            "name without '/'")
    if manifest.download_bytes is None and files:
        manifest = dataclasses.replace(manifest, download_bytes=sum(f.size for f in files))
    return manifest


def builtin_names() -> list[str]:
    """Every dataset with a built-in manifest, sorted."""
    folder = resources.files("algoperf.datasets") / "manifests"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


def load(name: str) -> Manifest:
    """The built-in manifest of dataset ``name``; UserError with a suggestion if unknown."""
    names = builtin_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else f" Known: {', '.join(names)}."
        raise UserError(f"unknown dataset {name!r}.{hint}")
    path = resources.files("algoperf.datasets") / "manifests" / f"{name}.json"
    return _parse(path.read_bytes(), f"{name}.json (built in)", builtin=True)


def load_file(path: Path) -> Manifest:
    """A user's manifest file (``--manifest``)."""
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read dataset manifest {path}: {e.strerror}") from None
    return _parse(text, str(path), builtin=False)
