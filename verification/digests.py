"""A trial directory's contents as relative path -> sha256 (its run manifest), through
`algoperf.hashing`."""

from __future__ import annotations

import os
from pathlib import Path

from algoperf.hashing import file_sha256, tree_files


def manifest(root: str | os.PathLike, exclude: frozenset[str] = frozenset(),
             known: dict[str, str] | None = None) -> dict[str, str]:
    """relative path -> sha256 for every file under ``root`` (see `tree_files`); digests
    already computed (``known``) are reused rather than read again."""
    known = known or {}
    root = Path(root)
    return {rel: known[rel] if rel in known else file_sha256(root / rel)
            for rel in tree_files(root, exclude)}
