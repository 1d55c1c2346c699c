"""Input and output locations on file://, s3:// and gs:// (fsspec), and writes that are atomic.

pvc:// never reaches here: the operator mounts the claim and rewrites the URI to file://.
Credentials come from the environment, as for `modelpilot fetch` (server/cloudfs.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from modelpilot.batch.plan import InputFile

_MAGIC = "*?["
# Part size of uploads: S3 takes parts of 5 MiB or more, GCS multiples of 256 KiB.
UPLOAD_BLOCK = 8 << 20
# Read-ahead of remote inputs (s3fs and gcsfs would fetch 50 MiB at a time).
READ_BLOCK = 8 << 20


class InvalidLocation(Exception):
    """A URI the runtime cannot use, or an input that matches no file."""


def filesystem(uri: str, env: Mapping[str, str]) -> tuple[Any, str, bool]:
    """(fsspec filesystem, path within it, whether it is the local disk) for a URI."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not rest:
        raise InvalidLocation(f"{uri!r} is not a URI (file://, s3:// or gs://)")
    if scheme == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), os.path.abspath(rest), True
    if scheme == "s3":
        from modelpilot.server.cloudfs import s3_filesystem

        return s3_filesystem(env), rest.rstrip("/"), False
    if scheme == "gs":
        from modelpilot.server.cloudfs import gcs_filesystem

        return gcs_filesystem(env), rest.rstrip("/"), False
    raise InvalidLocation(f"{uri}: the batch runtime reads file://, s3:// and gs:// (pvc:// is mounted as file://)")


def open_input(fs: Any, path: str) -> Any:
    """An input file for reading, with a bounded read-ahead."""
    return fs.open(path, "rb", block_size=READ_BLOCK)


def _hidden(relative: str) -> bool:
    """Names starting with _ or . (e.g. _SUCCESS, .crc, _temporary/) are not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def _relative(path: str, base: str) -> str:
    return path[len(base) :].lstrip("/") if base and path.startswith(base) else path.rsplit("/", 1)[-1]


def list_inputs(uri: str, env: Mapping[str, str]) -> tuple[Any, list[InputFile]]:
    """The files of an input URI (a file, a prefix or a glob), in name order, with sizes; names
    are relative to the prefix (a glob's: the folder before its first wildcard)."""
    fs, path, _ = filesystem(uri, env)
    found: dict[str, dict[str, Any]]
    magic = [path.index(c) for c in _MAGIC if c in path]
    if magic:
        base = path[: min(magic)].rsplit("/", 1)[0]
        found = fs.glob(path, detail=True)
    elif fs.isfile(path):
        info = fs.info(path)
        name = path.rsplit("/", 1)[-1]
        return fs, [InputFile(path, name, int(info.get("size") or 0))]
    else:
        base = path
        found = fs.find(path, detail=True)
    files = []
    for name, info in found.items():
        relative = _relative(str(name), base)
        if info.get("type") == "file" and not _hidden(relative):
            files.append(InputFile(str(name), relative, int(info.get("size") or 0)))
    if not files:
        raise InvalidLocation(f"no input file matches {uri}")
    return fs, sorted(files, key=lambda f: f.name)


class Sink:
    """A new file being written: hashed (sha256) and counted as it goes; `publish()` makes it
    appear whole under its name, `abort()` leaves nothing. See Location.create."""

    def __init__(self, raw: Any, name: str, temp: str | None = None, final: str | None = None,
                 leftovers: Callable[[], None] | None = None) -> None:
        import hashlib

        self.raw = raw
        self._leftovers = leftovers  # object stores: uploads of this key the file lost track of
        self.name = name
        self._temp, self._final = temp, final  # local disk only
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False  # what pyarrow looks at; the sink stays open until publish or abort
        self.done = False  # published or aborted: later writes go nowhere

    def write(self, data: bytes | memoryview) -> int:
        if self.done:  # e.g. an abandoned ParquetWriter writing its footer when collected
            return len(data)
        self._hash.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        """pyarrow may close its sink when done; publishing is the owner's decision."""

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def publish(self) -> None:
        self.done = True  # a later abort() has nothing to undo
        if self._temp is None:
            self.raw.close()  # completes the upload: only now does the object exist
            return
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self._temp, str(self._final))

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        if self._temp is None:
            try:
                _discard(self.raw)
            finally:
                if self._leftovers is not None:
                    self._leftovers()
            return
        self.raw.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


class Location:
    """An output prefix: relative names in, filesystem calls out."""

    def __init__(self, uri: str, env: Mapping[str, str]) -> None:
        self.uri = uri.rstrip("/")
        self.fs, self.root, self.local = filesystem(uri, env)

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def uri_of(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def list(self, folder: str = "") -> list[str]:
        """Every file under the prefix (or its folder), as names relative to the prefix."""
        target = self.path(folder).rstrip("/") if folder else self.root
        self.fs.invalidate_cache()  # s3fs/gcsfs cache listings; other shards change them
        try:
            found = self.fs.find(target)
        except FileNotFoundError:
            return []
        return sorted(_relative(str(p), self.root) for p in found)

    def read_json(self, name: str) -> dict[str, Any] | None:
        """A small JSON object, None when missing or not JSON."""
        try:
            data = json.loads(self.fs.cat_file(self.path(name)))
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def delete(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(name))

    def write_json(self, name: str, document: Mapping[str, Any], tag: str) -> None:
        sink = self.create(name, tag)
        try:
            sink.write((json.dumps(document, indent=2) + "\n").encode())
        except BaseException:
            sink.abort()
            raise
        sink.publish()

    def create(self, name: str, tag: str) -> Sink:
        """A new file that appears whole at `name` on publish(), or not at all on abort().
        Local disk: a hidden temporary file in the same folder, then os.replace (atomic within a
        filesystem). s3:// and gs://: the object itself; an upload only becomes visible when it
        completes, so writing the final key is atomic, and abort() discards the upload (multipart
        or resumable) where closing would complete it. `tag` (the run id) marks temporary names so
        a retried shard can clean up after a killed one."""
        final = self.path(name)
        if not self.local:
            # Uploaded in parts of UPLOAD_BLOCK as it is written (s3fs would buffer 50 MiB first).
            started = time.time()
            return Sink(self.fs.open(final, "wb", block_size=UPLOAD_BLOCK), name,
                        leftovers=lambda: _abort_open_uploads(self.fs, final, started))
        folder, base = os.path.split(final)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, temp_name(base, tag))
        return Sink(open(temp, "wb"), name, temp, final)  # closed by publish() or abort()


def temp_name(base: str, tag: str) -> str:
    """Hidden (never taken for a part), with the run id and a random part (two attempts of a shard
    may overlap while the old pod terminates)."""
    return f".{base}.{tag}.{uuid.uuid4().hex[:8]}.tmp"


def _abort_open_uploads(fs: Any, path: str, since: float) -> None:
    """A signal can land while a multipart upload is being created, before the file knows its id,
    and discarding it then aborts nothing: abort what is still open for this key since this sink
    began (S3 only; a retried shard's pod starts only once this one has ended)."""
    if not hasattr(fs, "call_s3"):
        return
    bucket, key, _ = fs.split_path(path)
    with contextlib.suppress(Exception):  # best effort: a bucket lifecycle rule is the backstop
        listed = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
        for upload in listed.get("Uploads") or []:
            initiated = upload.get("Initiated")
            if upload.get("Key") == key and (initiated is None or initiated.timestamp() >= since - 5):
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"])


def _discard(raw: Any) -> None:
    """Abort an upload: s3fs and gcsfs files discard their upload; closing would complete it."""
    try:
        discard = getattr(raw, "discard", None)
        if callable(discard):
            discard()
    finally:
        raw.closed = True  # so close() (also from __del__) never uploads the buffered rest
