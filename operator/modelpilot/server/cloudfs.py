"""The s3:// and gs:// filesystems of the fetch step (fsspec), with the credentials the operator
maps into the pod's environment from the user's Secret; imported lazily (s3fs, gcsfs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

S3_ANONYMOUS_ENV = "MODELPILOT_S3_ANONYMOUS"


def s3_filesystem(env: Mapping[str, str]) -> Any:
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


def gcs_filesystem(env: Mapping[str, str]) -> Any:
    import gcsfs

    raw = env.get("GOOGLE_APPLICATION_CREDENTIALS_JSON")
    token: Any = json.loads(raw) if raw else "google_default"
    return gcsfs.GCSFileSystem(token=token, skip_instance_cache=True)
