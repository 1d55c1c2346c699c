"""Leader election against the API server: the thin side-effect layer over `leader.lease`.

`modelpilot operator` with leader election on waits here (answering its liveness probe as a
standby) until it holds the Lease, then starts Kopf; a thread renews the Lease. A leader that cannot
renew within the renew deadline, or finds the Lease taken, exits at once (the kubelet restarts it as
a standby): stopping Kopf gracefully would let it act for seconds beside the new leader.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import urllib3
from kubernetes.client.exceptions import ApiException

from modelpilot.k8s.client import Kube
from modelpilot.leader.lease import (
    LeaseRecord,
    Observed,
    Step,
    Timing,
    claim,
    decide,
    from_object,
    observe,
    released,
    to_object,
)
from modelpilot.resources.labels import LABEL_MANAGED_BY, MANAGED_BY

log = logging.getLogger("modelpilot.leader")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
# What a look at the Lease can fail with: an API error, a socket error, or the client's own timeout
# (urllib3 raises those outside OSError). Each is a failed look, never the end of the loop.
LEASE_ERRORS = (ApiException, OSError, urllib3.exceptions.HTTPError)


def default_identity() -> str:
    """The pod name (a pod's host name), made unique per process: a restarted container must not
    pass for the one it replaces."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str:
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, timing: Timing,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.timing, self.clock = timing, clock
        self.observed: Observed | None = None
        self._renewing = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def try_once(self) -> bool:
        """One look at the Lease: True when this replica holds it afterwards."""
        path = LEASES.format(namespace=self.namespace)
        now = self.clock()
        try:
            current = self.kube.request("GET", f"{path}/{self.name}", timeout=self.timing.retry_period * 2)
        except ApiException as err:
            if err.status != 404:
                raise
            current = None
        record = from_object(current) if current else None
        self.observed = observe(self.observed, record, now) if record else None
        step: Step = decide(self.observed, self.identity, now)
        if step == "wait":
            return False
        wanted = to_object(claim(record, self.identity, step, _utcnow(), self.timing), self.namespace, self.name,
                           {LABEL_MANAGED_BY: MANAGED_BY})
        try:
            if step == "create":
                written = self.kube.request("POST", path, body=wanted, timeout=self.timing.retry_period * 2)
            else:
                written = self.kube.request("PUT", f"{path}/{self.name}", body=wanted,
                                            timeout=self.timing.retry_period * 2)
        except ApiException as err:
            if err.status == 409:  # another replica wrote first
                return False
            raise
        self.observed = observe(None, from_object(written), now)
        if step != "renew":
            log.info("%s acquired by %s (%s)", self.where, self.identity, step)
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this replica leads (True) or `stop` is set (False)."""
        log.info("%s: %s waiting to lead", self.where, self.identity)
        while not stop.is_set():
            try:
                if self.try_once():
                    return True
            except LEASE_ERRORS as err:
                log.warning("%s: could not read or write it: %s", self.where, _reason(err))
            holder = self.observed.record.holder if self.observed else ""
            log.debug("%s held by %s; looking again in %.1fs", self.where, holder, self.timing.retry_period)
            stop.wait(self.timing.retry_period)
        return False

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew from a thread until `release`; `on_lost` when renewing fails for the renew deadline."""
        self._renewing.set()
        self._thread = threading.Thread(target=self._renew_loop, args=(on_lost,), name="lease-renewal", daemon=True)
        self._thread.start()

    def _renew_loop(self, on_lost: Callable[[str], None]) -> None:
        last_renewed = self.clock()
        while self._renewing.is_set():
            time.sleep(self.timing.retry_period)
            if not self._renewing.is_set():
                return
            try:
                held = self.try_once()
            except LEASE_ERRORS as err:
                log.warning("%s: renewal failed: %s", self.where, _reason(err))
                held = False
            holder = self.observed.record.holder if self.observed else ""
            if held:
                last_renewed = self.clock()
            elif holder not in ("", self.identity):
                return on_lost(f"{self.where} is now held by {holder}")
            elif self.clock() - last_renewed > self.timing.renew_deadline:
                return on_lost(f"{self.where} not renewed for {self.timing.renew_deadline:.0f}s")

    def release(self) -> None:
        """On a clean stop: give the Lease up so that a standby takes over at its next look."""
        self._renewing.clear()
        if self.observed is None or self.observed.record.holder != self.identity:
            return
        record: LeaseRecord = released(self.observed.record, _utcnow())
        try:
            self.kube.request("PUT", f"{LEASES.format(namespace=self.namespace)}/{self.name}",
                              body=to_object(record, self.namespace, self.name, {LABEL_MANAGED_BY: MANAGED_BY}),
                              timeout=self.timing.retry_period * 2)
            log.info("%s released by %s", self.where, self.identity)
        except (ApiException, OSError) as err:
            log.warning("%s: could not release it (a standby takes over when it expires): %s", self.where,
                        _reason(err))


def _reason(err: Exception) -> str:
    return f"HTTP {err.status} {err.reason}" if isinstance(err, ApiException) else str(err)


def exit_on_lost(reason: str) -> None:
    log.error("leadership lost: %s; exiting so that only the new leader acts", reason)
    logging.shutdown()
    os._exit(1)


class _Alive(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"standby": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def serve_standby_liveness(endpoint: str | None) -> Callable[[], None]:
    """Answer the liveness probe while waiting (Kopf's endpoint exists only once it runs); returns
    the function that closes it, before Kopf binds the same address."""
    if not endpoint:
        return lambda: None
    url = urlparse(endpoint)
    server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), _Alive)
    threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True).start()

    def close() -> None:
        server.shutdown()
        server.server_close()

    return close


def elect(kube: Kube, namespace: str, name: str, lease_seconds: float,
          liveness: str | None) -> LeaderElector | None:
    """Wait to lead (None when SIGTERM or SIGINT came first), then keep the Lease from a thread."""
    elector = LeaderElector(kube, namespace or default_namespace(), name, default_identity(),
                            Timing.for_lease(lease_seconds))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    close_liveness = serve_standby_liveness(liveness)
    try:
        if not elector.acquire(stop):
            log.info("%s: stopped while waiting to lead", elector.where)
            return None
    finally:
        close_liveness()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    elector.keep(exit_on_lost)
    return elector
