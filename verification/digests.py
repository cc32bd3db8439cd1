"""sha256 digests of files and of a trial directory's contents (its run manifest)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_files(root: str | os.PathLike, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Every regular file under ``root`` as a POSIX path relative to it, sorted; names in
    ``exclude`` (at the top level) are left out. Symlinks are listed, never followed."""
    root = Path(root)
    found = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        rel = Path(directory).relative_to(root)
        for name in files:
            path = (rel / name).as_posix()
            if path not in exclude:
                found.append(path)
    return sorted(found)


def manifest(root: str | os.PathLike, exclude: frozenset[str] = frozenset(),
             known: dict[str, str] | None = None) -> dict[str, str]:
    """relative path -> sha256 for every file under ``root`` (see `tree_files`); digests
    already computed (``known``) are reused rather than read again."""
    known = known or {}
    root = Path(root)
    return {rel: known[rel] if rel in known else file_sha256(root / rel)
            for rel in tree_files(root, exclude)}
