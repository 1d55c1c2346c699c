"""Archive extraction for `modelpilot fetch`: tar (plain, gzip, bzip2, xz) and zip.

Every member is checked before any is written: absolute paths, `..` and links that would leave the
target, device files and fifos are refused, and so is an archive whose members add up to more
than the bytes the fetch may still write (the size limit; a zip bomb or a tar of zeros is refused
from its listing, never by filling the volume). Tar extraction also uses Python's `data` filter
as a second guard.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
MAX_BYTES_ENV = "MODELPILOT_MAX_MODEL_BYTES"


class ArchiveError(Exception):
    """The archive is refused; the message says why."""


def is_archive(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(TAR_SUFFIXES) or lower.endswith(ZIP_SUFFIXES)


def _inside(root: Path, member: str) -> Path:
    """The path of archive member `member` under `root`, or ArchiveError if it would escape."""
    normal = posixpath.normpath(member.replace("\\", "/"))
    first = normal.split("/", 1)[0]
    if normal.startswith("/") or first == ".." or ":" in first:
        raise ArchiveError(f"archive member {member!r} points outside the target directory; refused")
    resolved = (root / normal).resolve()
    base = root.resolve()
    if resolved != base and base not in resolved.parents:
        raise ArchiveError(f"archive member {member!r} points outside the target directory; refused")
    return resolved


def _check_size(archive: Path, total: int, max_bytes: int | None, limit: int | None) -> None:
    if max_bytes is not None and total > max_bytes:
        raise ArchiveError(
            f"{archive.name} expands past the limit of {limit if limit is not None else max_bytes} bytes "
            f"({MAX_BYTES_ENV}): its members take {total} bytes and {max_bytes} are left; refused"
        )


def extract_archive(archive: Path, into: Path, max_bytes: int | None = None, limit: int | None = None) -> None:
    """Extract a tar or zip archive into `into`, refusing absolute paths, `..`, links that leave
    the directory, device files, and members adding up to more than `max_bytes` (what is left of
    the size limit `limit`). Checks every member before writing any."""
    try:
        if archive.name.lower().endswith(ZIP_SUFFIXES):
            _extract_zip(archive, into, max_bytes, limit)
        else:
            _extract_tar(archive, into, max_bytes, limit)
    except (zipfile.BadZipFile, tarfile.TarError) as err:
        raise ArchiveError(f"{archive.name} is not a valid archive: {err}") from None


def _extract_zip(archive: Path, into: Path, max_bytes: int | None, limit: int | None) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _inside(into, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"archive member {info.filename!r} is a symbolic link; refused")
        # zipfile stops each member at its declared size (and then fails its CRC check), so
        # the declared sizes bound what extraction writes.
        _check_size(archive, sum(info.file_size for info in infos), max_bytes, limit)
        zf.extractall(into)


def _extract_tar(archive: Path, into: Path, max_bytes: int | None, limit: int | None) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _inside(into, member.name)
            if member.issym() or member.islnk():
                # A symlink is relative to its own folder, a hard link to the archive root.
                base = posixpath.dirname(member.name) if member.issym() else ""
                _inside(into, member.linkname if member.linkname.startswith("/") else
                        posixpath.join(base, member.linkname))
            elif not (member.isfile() or member.isdir()):
                raise ArchiveError(f"archive member {member.name!r} is a device or fifo; refused")
        _check_size(archive, sum(m.size for m in members if m.isfile()), max_bytes, limit)
        # The "data" filter re-checks all of the above inside tarfile itself.
        tf.extractall(into, members=members, filter="data")
