"""Content manifests: what a prepared dataset holds, file by file, and one root hash over it.

Every prepared dataset directory ``<data_dir>/<name>/`` carries ``MANIFEST.json``: the
relative path, size and sha256 of every other file in it, and a root hash. The root is the
sha256 of the listing, one line ``"<sha256>  <size>  <path>\\n"`` per file in sorted path order
(paths with ``/`` separators, UTF-8), so it changes when any byte, name or file changes, and
anyone can recompute it with ``sha256sum`` and ``sort``. Runs record the root; ``verify``
recomputes every file hash and compares.

The manifest is written last, after every prepared file is in place, so a directory without
one is never mistaken for a complete dataset.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path

from algoperf.errors import UserError
from algoperf.hashing import file_sha256, listing_sha256, tree_files

MANIFEST_NAME = "MANIFEST.json"
FORMAT = "algoperf-content-manifest/1"
HASH_WORKERS = 4  # hashlib releases the GIL, so threads hash files in parallel


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class ContentManifest:
    dataset: str
    files: tuple[FileEntry, ...]
    source: dict  # what it was prepared from: the dataset manifest's sha256, file hashes

    @property
    def root(self) -> str:
        return root_hash(self.files)

    def to_json(self) -> dict:
        return {"format": FORMAT, "dataset": self.dataset, "root": self.root,
                "source": self.source,
                "files": [dataclasses.asdict(entry) for entry in self.files]}


def root_hash(files: Iterable[FileEntry]) -> str:
    """The dataset's root: `algoperf.hashing.listing_sha256` of its files."""
    return listing_sha256((e.path, e.size, e.sha256) for e in files)


def scan(directory: Path, dataset: str, source: dict | None = None) -> ContentManifest:
    """Hashes every file under ``directory`` (except the manifest itself)."""
    paths = tree_files(directory, exclude=frozenset({MANIFEST_NAME}))

    def entry(relative: str) -> FileEntry:
        path = directory / relative
        return FileEntry(relative, path.stat().st_size, file_sha256(path))

    with concurrent.futures.ThreadPoolExecutor(HASH_WORKERS) as pool:
        files = tuple(pool.map(entry, paths))
    return ContentManifest(dataset, files, source or {})


def write(directory: Path, manifest: ContentManifest) -> Path:
    """Writes ``MANIFEST.json`` into ``directory`` (through a temporary name, then fsync)."""
    path = directory / MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest.to_json(), f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read(directory: Path) -> ContentManifest:
    """The manifest stored in ``directory``; UserError if it is missing or malformed."""
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
        files = tuple(FileEntry(f["path"], int(f["size"]), f["sha256"]) for f in data["files"])
        manifest = ContentManifest(data["dataset"], files, data.get("source", {}))
        stored_root = data["root"]
    except FileNotFoundError:
        raise UserError(f"{directory} has no {MANIFEST_NAME}: it is not a prepared dataset"
                        " (or its preparation did not finish); prepare it again") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is malformed ({e}); prepare the dataset again") from None
    if stored_root != manifest.root:
        raise UserError(f"{path} is inconsistent: its root does not match its file list; "
                        "prepare the dataset again")
    return manifest


def recorded_root(data_dir: Path | str, dataset: str) -> str | None:
    """The root hash recorded for ``<data_dir>/<dataset>``, or None if it has no manifest
    (e.g. digits, which ships with scikit-learn). What a run logs in run_start."""
    directory = Path(os.path.expanduser(data_dir)) / dataset
    if not (directory / MANIFEST_NAME).is_file():
        return None
    return read(directory).root


@dataclasses.dataclass(frozen=True)
class Differences:
    """How a directory's files differ from its manifest."""

    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.changed or self.missing or self.extra)

    def summary(self) -> str:
        parts = []
        for label, paths in (("changed", self.changed), ("missing", self.missing),
                             ("unexpected", self.extra)):
            if paths:
                shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more"
                                                 if len(paths) > 3 else "")
                parts.append(f"{len(paths)} {label} ({shown})")
        return "; ".join(parts)


def compare(stored: ContentManifest, actual: ContentManifest) -> Differences:
    want = {e.path: e for e in stored.files}
    have = {e.path: e for e in actual.files}
    return Differences(
        changed=tuple(sorted(p for p in want.keys() & have.keys() if want[p] != have[p])),
        missing=tuple(sorted(want.keys() - have.keys())),
        extra=tuple(sorted(have.keys() - want.keys())))
