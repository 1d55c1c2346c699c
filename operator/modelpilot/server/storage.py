"""The storage step: fetch a model URI into a directory (the pods' `fetch-model` init container).

Schemes: file:// (and plain paths), pvc://CLAIM/PATH (read from the claim's mount), http(s)://,
s3:// and gs://, all through fsspec. Credentials come from the environment the operator maps from
the user's Secret (AWS_*, GOOGLE_APPLICATION_CREDENTIALS_JSON, HTTP_AUTHORIZATION) and are never
logged; HTTP_AUTHORIZATION is only ever sent over https://.

Guarantees: a sha256 (URI fragment `#sha256=<hex>` or MODELPILOT_MODEL_SHA256) is checked before
anything reaches the target directory; everything is staged in a hidden folder inside the target
(same filesystem, so moving it in is a rename) and removed on any failure, so a failed fetch
leaves the target as it was; archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip) are
extracted, refusing members that would land outside the target; a URI naming a single model file
also brings the drift profile beside it (`profile.json`, optional; the sha256 covers the model
file only); what the fetch writes (download and extracted files together) is capped by
MODELPILOT_MAX_MODEL_BYTES (20 GiB by default, the size limit of the pods' model volume);
link-local and cloud-metadata addresses are refused unless MODELPILOT_ALLOW_LINK_LOCAL=true; URLs
in messages lose their credentials and presigned signatures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit, urlunsplit

from modelpilot.fetch_settings import DEFAULT_MAX_MODEL_BYTES
from modelpilot.fetch_settings import parse_size as _parse_size
from modelpilot.monitoring.contract import PROFILE_FILE
from modelpilot.server.archives import MAX_BYTES_ENV, ArchiveError, extract_archive, is_archive
from modelpilot.server.cloudfs import gcs_filesystem, s3_filesystem
from modelpilot.server.netguard import LinkLocalRefused, allowed, check_host, find_refusal, guarded_client
from modelpilot.server.redact import install_log_redaction, redact_text, redact_uri

__all__ = ["DEFAULT_MAX_BYTES", "MARKER", "FetchError", "fetch", "split_sha256"]

log = logging.getLogger("modelpilot.fetch")

MARKER = ".modelpilot-fetched.json"
STAGING_PREFIX = ".modelpilot-staging-"
PVC_ROOT_ENV = "MODELPILOT_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
SHA256_ENV = "MODELPILOT_MODEL_SHA256"
# The sizeLimit of the model emptyDir in the pod template (modelpilot.resources.deployment; the
# operator passes its own cap in MODELPILOT_MAX_MODEL_BYTES when it is not this default): the fetch
# stops with a clear error before the kubelet would evict the pod for filling its volume.
DEFAULT_MAX_BYTES = DEFAULT_MAX_MODEL_BYTES
_SECRET_ENV = ("HTTP_AUTHORIZATION", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FetchError(Exception):
    """The model could not be fetched; the message says why (and never holds credentials)."""


class _Missing(FetchError):
    """The URI names nothing (a 404, no such object or file)."""


def parse_size(value: str) -> int:
    """MODELPILOT_MAX_MODEL_BYTES: bytes, or a quantity such as 20Gi."""
    try:
        return _parse_size(value, MAX_BYTES_ENV)
    except ValueError as err:
        raise FetchError(str(err)) from None


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


class _Budget:
    """What the fetch may still write: the download, then the extracted files."""

    def __init__(self, limit: int, uri: str) -> None:
        self.limit = limit
        self.uri = uri
        self.used = 0

    def _refuse(self) -> FetchError:
        return FetchError(
            f"{redact_uri(self.uri)} is larger than the limit of {self.limit} bytes ({MAX_BYTES_ENV}); refused"
        )

    def ensure(self, more: int) -> None:
        if self.used + more > self.limit:
            raise self._refuse()

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise self._refuse()

    def callback(self, trust_size: bool) -> Any:
        """An fsspec progress callback that stops a download at the limit. With `trust_size` the
        size announced before the transfer (S3, GCS: after the request succeeded) is checked at
        once; over http it is checked with the first chunk (a 404 page announces its size too)."""
        from fsspec.callbacks import Callback

        budget = self

        class BudgetCallback(Callback):
            def set_size(self, size: int | None) -> None:
                super().set_size(size)
                if trust_size and size is not None:
                    budget.ensure(size)

            def relative_update(self, inc: int = 1) -> None:
                if self.size is not None:
                    budget.ensure(int(self.size) - int(self.value))
                super().relative_update(inc)
                budget.charge(inc)

            def absolute_update(self, value: int) -> None:
                budget.charge(value - int(self.value))
                super().absolute_update(value)

        return BudgetCallback()


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
    install_log_redaction()
    secrets = [env[name] for name in _SECRET_ENV if env.get(name)]
    secrets += [value.split(None, 1)[-1] for value in secrets if " " in value]  # "Bearer <token>"
    try:
        return _fetch(uri, target, sha256, force, env)
    except FetchError as err:
        raise FetchError(redact_text(str(err), secrets)) from None


def _fetch(uri: str, target: Path, sha256: str | None, force: bool, env: Mapping[str, str]) -> Path:
    base, digest = split_sha256(uri, sha256 or env.get(SHA256_ENV) or None)
    limit = parse_size(env[MAX_BYTES_ENV]) if env.get(MAX_BYTES_ENV) else DEFAULT_MAX_BYTES
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a fetch that was killed
    wanted = {"uri": base, "sha256": digest}
    marker = target / MARKER
    if marker.is_file() and _read_marker(marker) == wanted and not force:
        log.info("%s is already in %s", redact_uri(base), target)
        return target
    existing = [p for p in target.iterdir() if p.name != MARKER]
    if existing and not force:
        raise FetchError(f"{target} is not empty; pass --force to replace its contents")
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
    try:
        tree = _stage(base, digest, staging, env, _Budget(limit, base))
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
    log.info("fetched %s into %s", redact_uri(base), target)
    return target


def _stage(base: str, digest: str | None, staging: Path, env: Mapping[str, str], budget: _Budget) -> Path:
    """Download (and verify, and extract) into `staging`; returns the folder to move in."""
    downloaded = staging / "download"
    downloaded.mkdir()
    _download(base, downloaded, env, budget)
    files = [p for p in downloaded.rglob("*") if p.is_file()]
    if digest is not None:
        if len(files) != 1 or files[0].parent != downloaded:
            raise FetchError(f"a sha256 needs a single file, but {redact_uri(base)} is a directory")
        actual = file_sha256(files[0])
        if actual != digest:
            raise FetchError(f"sha256 mismatch for {redact_uri(base)}: expected {digest}, got {actual}; refused")
    single = len(files) == 1 and files[0].parent == downloaded
    if single and not is_archive(files[0].name):
        _fetch_profile(base, files[0].name, staging, downloaded, env, budget)
        return downloaded
    if not single:
        return downloaded
    tree = staging / "tree"
    tree.mkdir()
    try:
        extract_archive(files[0], tree, max_bytes=budget.limit - budget.used, limit=budget.limit)
    except ArchiveError as err:
        raise FetchError(str(err)) from None
    return tree


def _sibling(uri: str, name: str) -> str:
    """The URI of the file `name` beside the file `uri` names (same scheme, host and folder; no
    query: a presigned URL's signature is for the one object)."""
    parts = urlsplit(uri)
    folder = parts.path.rsplit("/", 1)[0] if "/" in parts.path else ""
    if not parts.scheme:
        return str(Path(uri).parent / name)
    return urlunsplit((parts.scheme, parts.netloc, f"{folder}/{name}", "", ""))


def _fetch_profile(
    base: str, model_name: str, staging: Path, into: Path, env: Mapping[str, str], budget: _Budget
) -> None:
    """PROFILE_FILE beside a single-file model URI, when there is one (drift monitoring's reference;
    optional: its absence is normal, and any other failure only costs drift monitoring, logged)."""
    if model_name == PROFILE_FILE:
        return
    uri = _sibling(base, PROFILE_FILE)
    landing = staging / "profile"
    landing.mkdir()
    try:
        _download(uri, landing, env, budget)
    except _Missing:
        log.info("no %s beside %s", PROFILE_FILE, redact_uri(base))
        return
    except FetchError as err:
        log.warning("not fetched, drift monitoring will be off: %s", err)
        return
    fetched = [p for p in landing.iterdir() if p.is_file()]
    if len(fetched) == 1:  # a prefix of that name would bring a folder: not a profile
        os.replace(fetched[0], into / PROFILE_FILE)


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


# --- downloads -----------------------------------------------------------------------------------
def _download(uri: str, into: Path, env: Mapping[str, str], budget: _Budget) -> None:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        if scheme in ("", "file"):
            _copy_local(Path(unquote(parts.path) if scheme else uri), into, budget)
        elif scheme == "pvc":
            root = Path(env.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))
            _copy_local(root / unquote(parts.path).lstrip("/"), into, budget)
        elif scheme in ("http", "https"):
            _download_http(uri, into, env, budget)
        elif scheme in ("s3", "s3a"):
            _check_endpoint(env)
            _download_fs(s3_filesystem(env), f"{parts.netloc}{parts.path}", into, budget)
        elif scheme in ("gs", "gcs"):
            _download_fs(gcs_filesystem(env), f"{parts.netloc}{parts.path}", into, budget)
        else:
            raise FetchError(f"unsupported URI scheme {scheme!r}: use file, pvc, http(s), s3 or gs")
    except FetchError:
        raise
    except FileNotFoundError as err:
        raise _Missing(f"{redact_uri(uri)} does not exist ({err})") from None
    except ImportError as err:
        raise FetchError(f"{scheme}:// needs a package this image lacks: {err}") from None
    except Exception as err:
        refused = find_refusal(err)
        if refused is not None:
            raise FetchError(f"cannot fetch {redact_uri(uri)}: {refused}") from None
        raise FetchError(f"cannot fetch {redact_uri(uri)}: {type(err).__name__}: {err}") from None


def _copy_local(source: Path, into: Path, budget: _Budget) -> None:
    if source.is_dir():
        budget.charge(sum(p.stat().st_size for p in source.rglob("*") if p.is_file()))
        shutil.copytree(source, into, dirs_exist_ok=True, symlinks=False)
    elif source.is_file():
        budget.charge(source.stat().st_size)
        shutil.copy2(source, into / source.name)
    else:
        raise FileNotFoundError(str(source))


def _download_http(uri: str, into: Path, env: Mapping[str, str], budget: _Budget) -> None:
    import fsspec

    parts = urlsplit(uri)
    options: dict[str, Any] = {}
    if env.get("HTTP_AUTHORIZATION"):
        if parts.scheme.lower() != "https":
            raise FetchError(
                f"HTTP_AUTHORIZATION is only sent over https://, and {redact_uri(uri)} is plain http: the "
                "credentials would cross the network unencrypted; refused"
            )
        options["client_kwargs"] = {"headers": {"Authorization": env["HTTP_AUTHORIZATION"]}}
    if not allowed(env):
        check_host(parts.hostname or "", parts.port)
        options["get_client"] = guarded_client  # checks redirects and every connection too
    fs = fsspec.filesystem("http", skip_instance_cache=True, **options)
    fs.get_file(uri, str(into / _file_name(parts.path)), callback=budget.callback(trust_size=False))


def _check_endpoint(env: Mapping[str, str]) -> None:
    endpoint = env.get("AWS_ENDPOINT_URL")
    if not endpoint or allowed(env):
        return
    parts = urlsplit(endpoint)
    try:
        check_host(parts.hostname or "", parts.port)
    except LinkLocalRefused as err:
        raise FetchError(f"AWS_ENDPOINT_URL {redact_uri(endpoint)}: {err}") from None


def _file_name(path: str) -> str:
    name = PurePosixPath(unquote(path)).name
    return name or "model"


def _download_fs(fs: Any, path: str, into: Path, budget: _Budget) -> None:
    path = path.rstrip("/")
    if fs.isdir(path):
        # Everything under the prefix, keeping its layout relative to the prefix.
        found = fs.find(path, detail=True)
        remote_files = {name: info for name, info in found.items() if not name.endswith("/")}
        if not remote_files:
            raise FetchError(f"{path} is an empty prefix")
        budget.ensure(sum(int(info.get("size") or 0) for info in remote_files.values()))
        for remote in remote_files:
            relative = PurePosixPath(remote).relative_to(PurePosixPath(path))
            local = into / _relative(str(relative))
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local), callback=budget.callback(trust_size=True))
    else:
        fs.get_file(path, str(into / _file_name(path)), callback=budget.callback(trust_size=True))


def _relative(member: str) -> str:
    """A remote key below the prefix as a relative path; FetchError if it would leave the folder."""
    normal = os.path.normpath(member)
    if normal.startswith(("/", "..")) or normal == ".":
        raise FetchError(f"object {member!r} points outside the target directory; refused")
    return normal
