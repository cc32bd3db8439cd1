"""Safe extraction of downloaded archives.

Every member is checked before anything is written: no absolute paths, no ``..`` that climbs
out, no symbolic or hard links that point outside the target, no devices or FIFOs. Then the
archive is extracted with Python's ``data`` filter (PEP 706), which enforces the same rules
again and drops set-uid bits and foreign ownership. A refused archive leaves nothing behind
(the caller extracts into a staging directory that it removes on failure).
"""

from __future__ import annotations

import errno
import posixpath
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


def check_members(archive: tarfile.TarFile, origin: Path) -> list[tarfile.TarInfo]:
    """The archive's members, or a UserError naming the first unsafe one."""
    members = archive.getmembers()
    for member in members:
        reason = _unsafe_reason(member)
        if reason is not None:
            raise UserError(f"refusing to extract {origin}: member {member.name!r} is unsafe "
                            f"({reason}); the archive is not the expected one")
    return members


def safe_extract(archive_path: Path, target: Path) -> list[str]:
    """Extracts the tar archive (any compression tarfile reads) into ``target``; returns the
    names of the regular files extracted."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path) as archive:
            members = check_members(archive, archive_path)
            archive.extractall(target, members=members, filter="data")
    except tarfile.FilterError as e:
        raise UserError(f"refusing to extract {archive_path}: {e}") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UserError(f"disk full while extracting {archive_path} into {target}; free "
                            "space and run the same command again") from None
        raise UserError(f"{archive_path} is not a readable tar archive ({e}); download it "
                        "again") from None
    return [m.name for m in members if m.isfile()]
