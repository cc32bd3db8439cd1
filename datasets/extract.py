"""Safe extraction of downloaded archives.

Every member is checked before it is written: no absolute paths, no ``..`` that climbs out,
no symbolic or hard links that point outside the target, no devices or FIFOs. Python's
``data`` extraction filter (PEP 706) then enforces the same rules again and drops set-uid bits
and foreign ownership. A refused archive leaves nothing behind: the target directory, with
anything extracted before the refused member, is removed.
"""

from __future__ import annotations

import errno
import posixpath
import shutil
import tarfile
from pathlib import Path

from algoperf.errors import UserError


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith("../"):
        return "path leaves the target directory"
    if member.issym() or member.islnk():
        target = member.linkname
        if target.startswith("/"):
            return f"link to absolute path {target}"
        base = posixpath.dirname(normal) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            return f"link to {target} leaves the target directory"
    if member.isdev() or member.isfifo():
        return "device or FIFO"
    return None


def check_member(member: tarfile.TarInfo, origin: Path) -> tarfile.TarInfo:
    """``member``, or a UserError if extracting it could write outside the target."""
    reason = _unsafe_reason(member)
    if reason is not None:
        raise UserError(f"refusing to extract {origin}: member {member.name!r} is unsafe "
                        f"({reason}); the archive is not the expected one")
    return member


def safe_extract(archive_path: Path, target: Path) -> list[str]:
    """Extracts the tar archive (any compression tarfile reads) into the new directory
    ``target``; returns the names of the regular files extracted.

    The archive is read as a stream, once (a compressed archive is decompressed once): each
    member is checked before it is written. If any member is refused or the archive is
    broken, ``target`` is removed with whatever was extracted so far.
    """
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"extraction target {target} must be new or empty")
    target.mkdir(parents=True, exist_ok=True)
    names = []
    try:
        with tarfile.open(archive_path, "r|*") as archive:
            for member in archive:
                archive.extract(check_member(member, archive_path), target, filter="data")
                if member.isfile():
                    names.append(member.name)
    except BaseException as e:
        shutil.rmtree(target, ignore_errors=True)
        if isinstance(e, tarfile.FilterError):
            raise UserError(f"refusing to extract {archive_path}: {e}") from None
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UserError(f"disk full while extracting {archive_path} into {target}; free "
                            "space and run the same command again") from None
        if isinstance(e, tarfile.TarError | EOFError | OSError):
            raise UserError(f"{archive_path} is not a readable tar archive ({e}); download it "
                            "again") from None
        raise
    return names
