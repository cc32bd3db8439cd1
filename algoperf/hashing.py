"""sha256 of files and of folders: the one scheme every recorded hash follows.

A file's hash is the sha256 of its bytes. A folder's (a prepared dataset's root, a submission
package's hash) is the sha256 of its listing, one line ``"<sha256>  <size>  <path>\\n"`` per
file in sorted path order (``/`` separators, UTF-8): it changes when any byte, name or file
changes, and anyone can recompute it with ``sha256sum`` and ``sort``. Submissions, datasets,
containers, sweeps and verification all hash through these functions.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex of a file's bytes (read in blocks; hashlib releases the GIL meanwhile)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tree_files(root: str | os.PathLike, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Every regular file under ``root`` as a POSIX path relative to it, sorted; paths in
    ``exclude`` (relative to ``root``) are left out. Symlinks are listed, never followed."""
    root = Path(root)
    found = []
    for directory, _, files in os.walk(root):
        rel = Path(directory).relative_to(root)
        for name in files:
            path = (rel / name).as_posix()
            if path not in exclude:
                found.append(path)
    return sorted(found)


def listing_sha256(entries: Iterable[tuple[str, int, str]]) -> str:
    """The folder hash of ``(path, size, sha256)`` entries: sha256 of their sorted listing."""
    digest = hashlib.sha256()
    for path, size, sha256 in sorted(entries):
        digest.update(f"{sha256}  {size}  {path}\n".encode())
    return digest.hexdigest()
