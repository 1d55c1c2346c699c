"""The side effects of a delivery: the webhook's URL from the Secret, and the HTTP POST.

Neither ever puts a URL in a message: URLs of incoming webhooks are credentials, so errors name
the Secret key, the exception's class or the HTTP status only.
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelpilot import __version__

USER_AGENT = f"modelpilot/{__version__}"
MAX_ANSWER_BYTES = 64 * 1024  # read (and dropped) so the connection ends cleanly


class MissingUrl(Exception):
    """The Secret or its key is missing or unreadable (the Secret may still be created: retried)."""


class NotHttp(Exception):
    """The key holds something that is not an http(s) URL (sending again cannot help)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET elsewhere: the 3xx is reported instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def post(url: str, content_type: str, body: bytes, timeout: float) -> tuple[int | None, str]:
    """POST `body`; (HTTP status, "") for any answer, (None, why) when there was none."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, "User-Agent": USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            answer.read(MAX_ANSWER_BYTES)
            return int(answer.status), ""
    except urllib.error.HTTPError as err:
        err.close()
        return int(err.code), ""
    except urllib.error.URLError as err:
        reason = err.reason
        return None, type(reason).__name__ if isinstance(reason, BaseException) else "URLError"
    except ValueError:  # http.client.InvalidURL and urllib's "unknown url type" carry the URL: not shown
        return None, "invalid URL"
    except Exception as err:  # timeouts, resets, TLS: the class says enough
        return None, type(err).__name__


def check_url(url: str, key: str) -> str:
    """`url` if it is an http(s) URL with a host (the message never repeats it)."""
    try:
        parts = urllib.parse.urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a bad IPv6 literal or port
        valid = False
    if not valid:
        raise NotHttp(f"the value of key {key!r} is not an http:// or https:// URL")
    return url


SecretReader = Callable[[str, str], Mapping[str, str] | None]


def kube_secret_reader(kube: Any) -> SecretReader:
    """GET of one Secret by name (never a list or a watch): its data, None when it does not exist."""
    def read(namespace: str, name: str) -> Mapping[str, str] | None:
        try:
            secret = kube.get("v1", "Secret", namespace, name)
        except ApiException as err:  # not a 404: Kube.get answers None for that
            raise MissingUrl(f"cannot read Secret {name}: HTTP {err.status}") from None
        if secret is None:
            return None
        return dict(secret.get("data") or {})
    return read


class SecretUrls:
    """Webhook URLs from the Secret `name` of each namespace, read at send time and kept for at
    most `ttl` seconds (a changed URL is used within that); a missing Secret is not kept."""

    def __init__(self, read: SecretReader, name: str, ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Mapping[str, str]]] = {}

    def url(self, namespace: str, key: str) -> str:
        data = self._data(namespace)
        if key not in data:
            raise MissingUrl(f"Secret {self.name} has no key {key!r}")
        try:
            value = base64.b64decode(data[key], validate=True).decode().strip()
        except ValueError:
            raise NotHttp(f"the value of key {key!r} of Secret {self.name} is not base64 UTF-8 text") from None
        return check_url(value, key)

    def _data(self, namespace: str) -> Mapping[str, str]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(namespace)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        data = self.read(namespace, self.name)
        if data is None:
            raise MissingUrl(f"Secret {self.name} not found in namespace {namespace}")
        with self._lock:
            self._cache[namespace] = (now, data)
        return data
