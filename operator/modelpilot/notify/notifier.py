"""The sender: notifications queued by the reconcile (never waiting for them) and sent by a few
daemon threads, one attempt at a time per target, in order, with retries (policy.py).

`submit` runs in the reconciler's I/O threads right after a plan's Events are posted, so it only
queues. The threads block on the Secret read and the POST (both synchronous, like the rest of
the operator's I/O), never on the event loop. Everything is in memory: delivery is at most once
across restarts and leader changes (docs/notifications.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelpilot import metrics
from modelpilot.api.notifications import NotificationTarget
from modelpilot.logs import decision_log
from modelpilot.notify import delivery
from modelpilot.notify.delivery import MissingUrl, NotHttp, SecretUrls, kube_secret_reader
from modelpilot.notify.events import Notice, notices, wanted
from modelpilot.notify.payload import encode
from modelpilot.notify.policy import Lane, Limiter, Pending, RetryPolicy, Verdict, classify
from modelpilot.rollout.model import Event

log = logging.getLogger("modelpilot.notify")

LaneKey = tuple[str, str, str]  # namespace, ModelDeployment, target
SENDERS = 4
QUEUE_BOUND = 100
HTTP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Delivery:
    notice: Notice
    target: str
    type: str  # CloudEvents | Slack
    url_key: str
    owner: Mapping[str, Any]  # apiVersion, kind, metadata: what a Warning Event is about


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    detail: str = ""  # why it was not delivered; never the URL
    status: int | None = None
    warn: bool = False  # worth a Warning Event at once (the Secret or key is missing)


def _log(delivery_: Delivery, what: str, **fields: Any) -> None:
    notice = delivery_.notice
    decision_log(notice.namespace, notice.name, f"notification-{what}",
                 {"target": delivery_.target, "type": delivery_.type, "event": notice.event, "id": notice.id,
                  **fields}, log)


def _owner(md: Mapping[str, Any]) -> dict[str, Any]:
    meta = md.get("metadata") or {}
    return {"apiVersion": md.get("apiVersion"), "kind": md.get("kind"),
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid")}}


class Notifier:
    def __init__(self, kube: Any, secret_name: str, *, senders: int = SENDERS,
                 bound: int = QUEUE_BOUND, policy: RetryPolicy | None = None, timeout: float = HTTP_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 send: Callable[[str, str, bytes, float], tuple[int | None, str]] = delivery.post,
                 urls: SecretUrls | None = None) -> None:
        self.kube = kube
        self.urls = urls or SecretUrls(kube_secret_reader(kube), secret_name)
        self.senders, self.bound, self.timeout = senders, bound, timeout
        self.policy = policy or RetryPolicy()
        self.clock, self.wall, self.send = clock, wall, send
        self._cond = threading.Condition()
        self._lanes: dict[LaneKey, Lane[Delivery]] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._warned: Limiter[LaneKey] = Limiter(3600.0)

    # -- the reconcile's side ----------------------------------------------------------------------
    def submit(self, md: Mapping[str, Any], events: Iterable[Event], targets: Iterable[NotificationTarget]) -> int:
        """Queue the notifications of `events` for every one of `targets` (`md`'s parsed
        spec.notifications: Plan.notifications) that wants them; never blocks on delivery and never
        fails the reconcile. `md`: the ModelDeployment as written by this reconcile. Returns how
        many deliveries were queued."""
        try:
            return self._queue(md, events, tuple(targets))
        except Exception:  # a notification is never worth a failed reconcile
            meta = md.get("metadata") or {}
            log.exception("%s/%s notification-not-queued", meta.get("namespace"), meta.get("name"))
            return 0

    def _queue(self, md: Mapping[str, Any], events: Iterable[Event],
               targets: tuple[NotificationTarget, ...]) -> int:
        found = notices(md, events, self.wall()) if targets else []
        queued = 0
        with self._cond:
            if self._stopping:
                return 0
            for notice in found:
                for target in (t for t in targets if wanted(t, notice)):
                    item = Delivery(notice, target.name, target.type, target.url_key, _owner(md))
                    key = (notice.namespace, notice.name, target.name)
                    lane = self._lanes.setdefault(key, Lane(self.bound))
                    dropped = lane.push(item)
                    queued += 1
                    _log(item, "queued", queued=len(lane))
                    if dropped is not None:
                        metrics.NOTIFICATIONS.labels(dropped.type, "dropped").inc()
                        _log(dropped, "dropped", why="queue-full", bound=self.bound)
            if queued:
                self._start()
                self._cond.notify_all()
        return queued

    def _start(self) -> None:
        while len(self._threads) < self.senders:
            thread = threading.Thread(target=self._send_loop, name=f"modelpilot-notify-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being sent (True), or `timeout` seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._lanes, timeout=timeout)

    def stop(self) -> None:
        """Stop sending; what is queued is dropped (at most once)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # -- the senders -------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while (picked := self._pick()) is not None:
            key, lane, head = picked
            try:
                attempt = self._attempt(head.item)
            except Exception as err:  # never lose a sender thread
                attempt = Attempt("retry", type(err).__name__)
            warning = self._settle(key, lane, head, attempt)
            if warning is not None:
                self._warn(head.item, warning)

    def _pick(self) -> tuple[LaneKey, Lane[Delivery], Pending[Delivery]] | None:
        """The next head due, marked in flight; waits for one; None once stopping."""
        with self._cond:
            while not self._stopping:
                now = self.clock()
                ready = [(key, lane) for key, lane in self._lanes.items() if lane.ready(now)]
                if ready:
                    key, lane = min(ready, key=lambda pair: pair[1].next_at)
                    return key, lane, lane.take(now)
                wakes = [at for lane in self._lanes.values() if (at := lane.wake_at()) is not None]
                self._cond.wait(timeout=max(0.0, min(wakes) - now) if wakes else None)
            return None

    def _attempt(self, item: Delivery) -> Attempt:
        try:
            url = self.urls.url(item.notice.namespace, item.url_key)
        except MissingUrl as err:
            return Attempt("retry", str(err), warn=True)
        except NotHttp as err:
            return Attempt("failed", str(err))
        except Exception as err:  # the API server unreachable: like a webhook that is
            return Attempt("retry", f"cannot read Secret {self.urls.name}: {type(err).__name__}")
        content_type, body = encode(item.type, item.notice)
        status, error = self.send(url, content_type, body, self.timeout)
        if status is None:
            return Attempt("retry", error)
        verdict = classify(status)
        return Attempt(verdict, "" if verdict == "delivered" else f"HTTP {status}", status)

    def _settle(self, key: LaneKey, lane: Lane[Delivery], head: Pending[Delivery], attempt: Attempt) -> str | None:
        """Record the attempt's outcome; the text of a Warning Event to post, if one is due."""
        item, now = head.item, self.clock()
        warning = None
        with self._cond:
            retry_at = None
            if attempt.verdict == "retry":
                retry_at = self.policy.next_try(head.attempts, head.first_at or now, now)
            if attempt.verdict == "delivered":
                lane.finish(head)
                metrics.NOTIFICATIONS.labels(item.type, "delivered").inc()
                _log(item, "delivered", attempt=head.attempts, status=attempt.status)
            elif retry_at is not None:
                lane.later(retry_at)
                metrics.NOTIFICATIONS.labels(item.type, "retried").inc()
                _log(item, "retry", attempt=head.attempts, error=repr(attempt.detail),
                     retry_in=f"{retry_at - now:.1f}s")
                if attempt.warn and self._warned.allow(key, now):
                    warning = (f"notifications to target {item.target} are held: {attempt.detail}; retried for up to "
                               f"{self.policy.give_up_after:g}s per event")
            else:
                lane.finish(head)
                metrics.NOTIFICATIONS.labels(item.type, "failed").inc()
                why = "gave-up" if attempt.verdict == "retry" else "permanent"
                _log(item, "failed", why=why, attempt=head.attempts, error=repr(attempt.detail))
                if self._warned.allow(key, now):
                    warning = (f"notification {item.notice.event} ({item.notice.id}) to target {item.target} dropped "
                               f"after {head.attempts} attempt(s): {attempt.detail}")
            if not lane.items and self._lanes.get(key) is lane:
                del self._lanes[key]
            self._cond.notify_all()
        return warning

    def _warn(self, item: Delivery, message: str) -> None:
        try:
            self.kube.post_event(item.owner, "Warning", "NotificationFailed", message)
        except Exception as err:  # best effort, like every Event
            _log(item, "warning-not-posted", error=type(err).__name__)
