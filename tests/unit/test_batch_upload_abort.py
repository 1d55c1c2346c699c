"""An aborted object-store sink also aborts uploads of its key it lost track of (a signal landing
while the upload was being created), never another key's or an older one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelpilot.batch.storage import _abort_open_uploads

SINCE = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC).timestamp()


class FakeS3:
    def __init__(self, uploads: list[dict[str, Any]]) -> None:
        self.uploads = uploads
        self.aborted: list[str] = []

    def split_path(self, path: str) -> tuple[str, str, None]:
        bucket, key = path.split("/", 1)
        return bucket, key, None

    def call_s3(self, method: str, **kw: Any) -> dict[str, Any]:
        if method == "list_multipart_uploads":
            return {"Uploads": [u for u in self.uploads if u["Key"].startswith(kw["Prefix"])]}
        self.aborted.append(kw["UploadId"])
        return {}


def upload(key: str, upload_id: str, seconds: float) -> dict[str, Any]:
    return {"Key": key, "UploadId": upload_id, "Initiated": dt.datetime.fromtimestamp(SINCE + seconds, dt.UTC)}


def test_only_this_keys_uploads_since_the_sink_began_are_aborted() -> None:
    fs = FakeS3([upload("out/part-00000.jsonl", "mine", 2), upload("out/part-00000.jsonl.bak", "other-key", 2),
                 upload("out/part-00000.jsonl", "long-before", -600), upload("out/part-00001.jsonl", "shard-1", 2)])
    _abort_open_uploads(fs, "bucket/out/part-00000.jsonl", SINCE)
    assert fs.aborted == ["mine"]


def test_nothing_to_do_on_a_filesystem_without_s3_calls() -> None:
    _abort_open_uploads(object(), "bucket/out/part-00000.jsonl", SINCE)  # gcs, local: no error


def test_a_failing_listing_is_not_an_error() -> None:
    class Broken(FakeS3):
        def call_s3(self, method: str, **kw: Any) -> dict[str, Any]:
            raise OSError("endpoint gone")
    _abort_open_uploads(Broken([]), "bucket/out/part-00000.jsonl", SINCE)
