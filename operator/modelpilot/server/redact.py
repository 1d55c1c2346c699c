"""Secrets out of log lines and error messages: `user:password@` in URLs and the signatures,
credentials and tokens that presigned URLs carry in their query (S3, GCS, Azure SAS, others).

`redact_text` works on any text (a URL, or an exception message quoting one), so library errors
that repeat the URL are cleaned too; `install_log_redaction` puts it on the loggers of the fetch
path, whose debug lines print URLs as given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "REDACTED"
# Query parameters whose values are secrets (compared without case).
SECRET_PARAMETERS = (
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "signature",
    "sig",
    "token",
    "access_token",
    "awsaccesskeyid",
    "googleaccessid",
)
_PARAMETER = re.compile(
    r"(?i)(?<![A-Za-z0-9_.-])(" + "|".join(re.escape(p) for p in SECRET_PARAMETERS) + r")=([^&\s'\"<>#)\]]*)"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")
# The loggers that see URLs while fetching (fsspec's http filesystem logs each one at debug).
LOGGERS = ("modelpilot.fetch", "modelpilot.server", "fsspec", "fsspec.http", "aiohttp.client", "s3fs", "gcsfs")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with userinfo and secret query values replaced, and any of `secrets` removed."""
    text = _USERINFO.sub(r"\1", text)
    text = _PARAMETER.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def redact_uri(uri: str) -> str:
    return redact_text(uri)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through `redact_text` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Idempotent: adds the filter to every logger in LOGGERS."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
