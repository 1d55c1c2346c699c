"""The storage step: fetch a model URI into a directory (the pods' `fetch-model` init container).

Schemes: file:// (and plain paths), pvc://CLAIM/PATH (read from the claim's mount), http(s)://,
s3:// and gs://, all through fsspec. Credentials come from the environment the operator maps from
the user's Secret (AWS_*, GOOGLE_APPLICATION_CREDENTIALS_JSON, HTTP_AUTHORIZATION) and are never
logged.

Guarantees: a sha256 (URI fragment `#sha256=<hex>` or MODELPILOT_MODEL_SHA256) is checked before
anything reaches the target directory; everything is staged in a hidden folder inside the target
(same filesystem, so moving it in is a rename) and removed on any failure, so a failed fetch
leaves the target as it was; archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip) are
extracted, refusing members that would land outside the target.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

log = logging.getLogger("modelpilot.fetch")

MARKER = ".modelpilot-fetched.json"
STAGING_PREFIX = ".modelpilot-staging-"
PVC_ROOT_ENV = "MODELPILOT_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
SHA256_ENV = "MODELPILOT_MODEL_SHA256"
S3_ANONYMOUS_ENV = "MODELPILOT_S3_ANONYMOUS"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FetchError(Exception):
    """The model could not be fetched; the message says why (and never holds credentials)."""


def split_sha256(uri: str, sha256: str | None = None) -> tuple[str, str | None]:
    """`uri#sha256=<hex>` -> (uri without fragment, hex). An explicit sha256 must agree with it."""
    base, fragment = urldefrag(uri)
    from_uri = None
    if fragment:
        key, _, value = fragment.partition("=")
        if key != "sha256":
            raise FetchError(f"unsupported URI fragment {fragment!r}; only #sha256=<hex> is understood")
        from_uri = value.lower()
    given = sha256.lower() if sha256 else None
    if from_uri and given and from_uri != given:
        raise FetchError("the sha256 in the URI fragment and the one given separately differ")
    digest = from_uri or given
    if digest is not None and not _HEX64.match(digest):
        raise FetchError(f"sha256 must be 64 hex digits, got {digest!r}")
    return base, digest


def fetch(
    uri: str,
    target: Path,
    *,
    sha256: str | None = None,
    force: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Fetch `uri` into `target` and return `target`. Idempotent: a second call with the same URI
    and digest is a no-op (an init container re-runs when its pod restarts)."""
    env = os.environ if environ is None else environ
    base, digest = split_sha256(uri, sha256 or env.get(SHA256_ENV) or None)
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a fetch that was killed
    wanted = {"uri": base, "sha256": digest}
    marker = target / MARKER
    if marker.is_file() and _read_marker(marker) == wanted and not force:
        log.info("%s is already in %s", _redact(base), target)
        return target
    existing = [p for p in target.iterdir() if p.name != MARKER]
    if existing and not force:
        raise FetchError(f"{target} is not empty; pass --force to replace its contents")
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
    try:
        downloaded = staging / "download"
        downloaded.mkdir()
        _download(base, downloaded, env)
        files = [p for p in downloaded.rglob("*") if p.is_file()]
        if digest is not None:
            if len(files) != 1 or files[0].parent != downloaded:
                raise FetchError(f"a sha256 needs a single file, but {_redact(base)} is a directory")
            actual = file_sha256(files[0])
            if actual != digest:
                raise FetchError(f"sha256 mismatch for {_redact(base)}: expected {digest}, got {actual}; refused")
        tree = downloaded
        if len(files) == 1 and files[0].parent == downloaded and is_archive(files[0].name):
            tree = staging / "tree"
            tree.mkdir()
            extract_archive(files[0], tree)
        if force:
            for old in existing:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                else:
                    old.unlink()
            marker.unlink(missing_ok=True)
        for entry in sorted(tree.iterdir()):
            os.replace(entry, target / entry.name)
        marker.write_text(json.dumps(wanted))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched %s into %s", _redact(base), target)
    return target


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _redact(uri: str) -> str:
    # user:password@ in a URL must not reach the logs.
    parts = urlsplit(uri)
    if parts.username or parts.password:
        return uri.replace(parts.netloc, parts.hostname or "", 1)
    return uri


# --- downloads -----------------------------------------------------------------------------------
def _download(uri: str, into: Path, env: Mapping[str, str]) -> None:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        if scheme in ("", "file"):
            _copy_local(Path(unquote(parts.path) if scheme else uri), into)
        elif scheme == "pvc":
            root = Path(env.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))
            _copy_local(root / unquote(parts.path).lstrip("/"), into)
        elif scheme in ("http", "https"):
            _download_http(uri, into, env)
        elif scheme in ("s3", "s3a"):
            _download_fs(_s3_filesystem(env), f"{parts.netloc}{parts.path}", into, uri)
        elif scheme in ("gs", "gcs"):
            _download_fs(_gcs_filesystem(env), f"{parts.netloc}{parts.path}", into, uri)
        else:
            raise FetchError(f"unsupported URI scheme {scheme!r}: use file, pvc, http(s), s3 or gs")
    except FetchError:
        raise
    except FileNotFoundError as err:
        raise FetchError(f"{_redact(uri)} does not exist ({err})") from None
    except ImportError as err:
        raise FetchError(f"{scheme}:// needs a package this image lacks: {err}") from None
    except Exception as err:
        raise FetchError(f"cannot fetch {_redact(uri)}: {type(err).__name__}: {err}") from None


def _copy_local(source: Path, into: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, into, dirs_exist_ok=True, symlinks=False)
    elif source.is_file():
        shutil.copy2(source, into / source.name)
    else:
        raise FileNotFoundError(str(source))


def _file_name(path: str) -> str:
    name = PurePosixPath(unquote(path)).name
    return name or "model"


def _download_http(uri: str, into: Path, env: Mapping[str, str]) -> None:
    import fsspec

    headers = {}
    if env.get("HTTP_AUTHORIZATION"):
        headers["Authorization"] = env["HTTP_AUTHORIZATION"]
    fs = fsspec.filesystem("http", client_kwargs={"headers": headers} if headers else {})
    fs.get_file(uri, str(into / _file_name(urlsplit(uri).path)))


def _s3_filesystem(env: Mapping[str, str]) -> Any:
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if env.get("AWS_ENDPOINT_URL"):
        client_kwargs["endpoint_url"] = env["AWS_ENDPOINT_URL"]
    if env.get("AWS_REGION"):
        client_kwargs["region_name"] = env["AWS_REGION"]
    # Keys from the Secret when given; otherwise botocore's usual chain (web identity, instance
    # role). Public buckets need MODELPILOT_S3_ANONYMOUS=true: unsigned requests are opt-in.
    anonymous = env.get(S3_ANONYMOUS_ENV, "").lower() in ("1", "true", "yes")
    return s3fs.S3FileSystem(
        key=env.get("AWS_ACCESS_KEY_ID") or None,
        secret=env.get("AWS_SECRET_ACCESS_KEY") or None,
        token=env.get("AWS_SESSION_TOKEN") or None,
        anon=anonymous,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
    )


def _gcs_filesystem(env: Mapping[str, str]) -> Any:
    import gcsfs

    raw = env.get("GOOGLE_APPLICATION_CREDENTIALS_JSON")
    token: Any = json.loads(raw) if raw else "google_default"
    return gcsfs.GCSFileSystem(token=token, skip_instance_cache=True)


def _download_fs(fs: Any, path: str, into: Path, uri: str) -> None:
    path = path.rstrip("/")
    if fs.isdir(path):
        # Everything under the prefix, keeping its layout relative to the prefix.
        remote_files = [p for p in fs.find(path) if not p.endswith("/")]
        if not remote_files:
            raise FetchError(f"{_redact(uri)} is an empty prefix")
        for remote in remote_files:
            relative = PurePosixPath(remote).relative_to(PurePosixPath(path))
            local = _inside(into, str(relative))
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))
    else:
        fs.get_file(path, str(into / _file_name(path)))


# --- archives ------------------------------------------------------------------------------------
def is_archive(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(TAR_SUFFIXES) or lower.endswith(ZIP_SUFFIXES)


def _inside(root: Path, member: str) -> Path:
    """The path of archive member `member` under `root`, or FetchError if it would escape."""
    normal = posixpath.normpath(member.replace("\\", "/"))
    first = normal.split("/", 1)[0]
    if normal.startswith("/") or first == ".." or ":" in first:
        raise FetchError(f"archive member {member!r} points outside the target directory; refused")
    resolved = (root / normal).resolve()
    base = root.resolve()
    if resolved != base and base not in resolved.parents:
        raise FetchError(f"archive member {member!r} points outside the target directory; refused")
    return resolved


def extract_archive(archive: Path, into: Path) -> None:
    """Extract a tar or zip archive into `into`, refusing absolute paths, `..`, links that leave
    the directory and device files. Checks every member before writing any."""
    if archive.name.lower().endswith(ZIP_SUFFIXES):
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _inside(into, info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise FetchError(f"archive member {info.filename!r} is a symbolic link; refused")
                zf.extractall(into)
        except zipfile.BadZipFile as err:
            raise FetchError(f"{archive.name} is not a valid archive: {err}") from None
        return
    try:
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
                    raise FetchError(f"archive member {member.name!r} is a device or fifo; refused")
            # The "data" filter re-checks all of the above inside tarfile itself.
            tf.extractall(into, members=members, filter="data")
    except tarfile.TarError as err:
        raise FetchError(f"{archive.name} is not a valid archive: {err}") from None
