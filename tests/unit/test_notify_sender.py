"""The sender against a real webhook receiver on loopback (tests/support/webhooks.py): order per
target, retries with the same id, permanent failures, giving up, the queue bound, the Secret read
at send time, Warning Events, and no URL in any log line. The API server side (the Secret, the
Events) is an in-memory stand-in; every webhook request is real HTTP."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY

from modelpilot.api.notifications import NotificationTarget
from modelpilot.control.execute import execute
from modelpilot.control.plan import Plan
from modelpilot.k8s.client import _path
from modelpilot.notify.delivery import MissingUrl, NotHttp, SecretUrls, kube_secret_reader
from modelpilot.notify.notifier import Notifier
from modelpilot.notify.policy import RetryPolicy
from modelpilot.rollout.model import Event
from tests.support.webhooks import Receiver, receiver

SECRET = "modelpilot-notifications"
FAST = RetryPolicy(first=0.01, cap=0.05, give_up_after=30.0)
CE = {"name": "events", "type": "CloudEvents", "urlKey": "ce"}
SLACK = {"name": "chat", "type": "Slack", "urlKey": "slack", "events": ["Started", "Promoted"]}


class FakeKube:
    """The API server's part: Secrets by (namespace, name) and the Events posted."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.secrets = secrets or {}
        self.requests: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str, str]] = []  # (object, type, reason, message)
        self.cond = threading.Condition()
        self.status_written: dict[str, Any] | None = None
        self.fail: int | None = None  # an HTTP status other than 404 for every read

    def set_secret(self, namespace: str, data: dict[str, str]) -> None:
        with self.cond:
            self.secrets[(namespace, SECRET)] = data

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Kube.get: the object, None when it does not exist (a 404); `fail` answers any other status."""
        with self.cond:
            self.requests.append(("GET", _path(api_version, kind, namespace, name)))
            self.cond.notify_all()
            data = self.secrets.get((namespace, name)) if kind == "Secret" else None
        if self.fail is not None:
            raise ApiException(status=self.fail, reason="Refused")
        if data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}

    def post_event(self, owner: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        with self.cond:
            self.events.append((owner["metadata"]["name"], event_type, reason, message))
            self.cond.notify_all()

    def wait(self, probe: Any, timeout: float = 30) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: probe(self), timeout=timeout), (self.requests, self.events)

    # execute()'s writes
    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        assert self.status_written is not None
        return self.status_written

    def remove_annotation(self, *args: Any) -> None:
        return None


def count(target_type: str, result: str) -> float:
    return REGISTRY.get_sample_value("modelpilot_notifications_total",
                                     {"type": target_type, "result": result}) or 0.0


def modeldeployment(targets: list[dict[str, Any]], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "modelpilot.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1"},
            "spec": {"model": {"version": "v2", "uri": "s3://m/v2", "format": "sklearn"}, "notifications": targets},
            "status": status if status is not None else {
                "stable": {"version": "v1"}, "canary": {"version": "v2", "weight": 20, "step": 0,
                                                        "state": "Progressing"}}}


def parsed(targets: list[dict[str, Any]]) -> tuple[NotificationTarget, ...]:
    """spec.notifications as plan() hands them on (Plan.notifications)."""
    return tuple(NotificationTarget.model_validate(t) for t in targets)


def submit(notifier: Notifier, targets: list[dict[str, Any]], evts: list[Event],
           status: dict[str, Any] | None = None) -> int:
    """What execute() does after posting a plan's Events."""
    return notifier.submit(modeldeployment(targets, status), evts, parsed(targets))


def events(*reasons: str) -> list[Event]:
    return [Event("Normal", reason, f"{reason} happened") for reason in reasons]


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def notifier_for(kube: FakeKube, **kw: Any) -> Notifier:
    kw.setdefault("policy", FAST)
    kw.setdefault("urls", SecretUrls(kube_secret_reader(kube), SECRET, ttl=0.0))
    return Notifier(kube, SECRET, **kw)


def ids(received: list[Any]) -> list[str]:
    return [r.json()["id"] for r in received]


# -------------------------------------------------------------------------------------------------


def test_each_target_gets_its_events_in_order_in_its_format(rx: Receiver) -> None:
    kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce"), "slack": rx.url("/slack")}})
    notifier = notifier_for(kube, urls=None)  # the operator's own cache
    delivered = count("CloudEvents", "delivered"), count("Slack", "delivered")
    queued = submit(notifier, [CE, SLACK], events("CanaryStarted", "StepAdvanced", "AnalysisFailed", "Promoted"))
    assert queued == 5  # CloudEvents: three; Slack: Started and Promoted
    assert notifier.idle(timeout=30)

    cloud = rx.answered("/ce")
    assert [r.content_type for r in cloud] == ["application/cloudevents+json"] * 3
    read = [JSONFormat().read(None, r.body) for r in cloud]
    assert [e.get_type() for e in read] == ["io.modelpilot.rollout.started", "io.modelpilot.rollout.stepadvanced",
                                            "io.modelpilot.rollout.promoted"]
    assert all(e.get_source() == "/apis/modelpilot.io/v1alpha1/namespaces/ml/modeldeployments/fraud" for e in read)
    assert len({e.get_id() for e in read}) == 3
    assert read[1].get_data() == {"namespace": "ml", "name": "fraud", "reason": "StepAdvanced",
                                  "message": "StepAdvanced happened", "stableVersion": "v1", "canaryVersion": "v2",
                                  "weight": 20, "step": 0, "state": "Progressing"}
    chat = rx.answered("/slack")
    assert [r.json() for r in chat] == [{"text": "ml/fraud: Started v2 (weight 20%) — CanaryStarted happened"},
                                        {"text": "ml/fraud: Promoted v1 (weight 100%) — Promoted happened"}]
    # The same notification has the same id at every target.
    assert ids(cloud)[0] != ids(cloud)[2]
    assert (count("CloudEvents", "delivered") - delivered[0], count("Slack", "delivered") - delivered[1]) == (3, 2)
    # The Secret is read by name: a GET of that one path, never a list.
    assert kube.requests and set(kube.requests) == {("GET", f"/api/v1/namespaces/ml/secrets/{SECRET}")}
    assert kube.events == []


def test_a_failing_head_is_retried_with_its_id_and_later_events_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelpilot.notify")
    with receiver(lambda path, n: 500 if n < 3 else 200) as rx:
        kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce")}})
        notifier = notifier_for(kube)
        retried = count("CloudEvents", "retried")
        submit(notifier, [CE], events("CanaryStarted", "StepAdvanced", "Promoted"))
        assert notifier.idle(timeout=30)
        got = rx.answered()
    assert [r.status for r in got] == [500, 500, 500, 200, 200, 200]
    first = ids(got)[0]
    assert ids(got)[:4] == [first] * 4 and len(set(ids(got)[3:])) == 3
    assert [r.json()["type"].rsplit(".", 1)[1] for r in got[3:]] == ["started", "stepadvanced", "promoted"]
    assert count("CloudEvents", "retried") - retried == 3
    retries = [r.getMessage() for r in caplog.records if "notification-retry" in r.getMessage()]
    assert len(retries) == 3 and all(m.startswith("ml/fraud notification-retry target=events") for m in retries)
    assert all(f"id={first}" in m and "error='HTTP 500'" in m for m in retries)
    assert kube.events == []  # delivered in the end: no warning


def test_408_and_429_are_retried_other_4xx_dropped_with_one_warning_per_target() -> None:
    answers = {"/busy": [429, 408], "/gone": [404, 404]}
    with receiver(lambda path, n: answers[path][n] if n < len(answers[path]) else 200) as rx:
        kube = FakeKube({("ml", SECRET): {"busy": rx.url("/busy"), "gone": rx.url("/gone")}})
        notifier = notifier_for(kube)
        failed = count("Slack", "failed")
        submit(notifier, [{**CE, "name": "busy", "urlKey": "busy"},
                          {"name": "gone", "type": "Slack", "urlKey": "gone"}], events("CanaryStarted", "Promoted"))
        assert notifier.idle(timeout=30)
        busy, gone = rx.answered("/busy"), rx.answered("/gone")
    assert [r.status for r in busy] == [429, 408, 200, 200]
    assert ids(busy)[:3] == [ids(busy)[0]] * 3
    assert [r.status for r in gone] == [404, 404]  # each tried once, in order: never retried
    assert [r.json()["text"].split(":")[1].split()[0] for r in gone] == ["Started", "Promoted"]
    assert count("Slack", "failed") - failed == 2
    (warning,) = kube.events  # two failures, one Warning Event within the hour
    assert warning[:3] == ("fraud", "Warning", "NotificationFailed")
    assert "to target gone dropped after 1 attempt(s): HTTP 404" in warning[3]


def test_an_event_undelivered_for_its_whole_budget_is_dropped() -> None:
    with receiver(lambda path, n: 503) as rx:
        kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce")}})
        notifier = notifier_for(kube, policy=RetryPolicy(first=0.01, cap=0.02, give_up_after=0.2))
        failed = count("CloudEvents", "failed")
        submit(notifier, [CE], events("Promoted"))
        assert notifier.idle(timeout=30)
        got = rx.answered()
    assert len(got) >= 3 and len(set(ids(got))) == 1
    assert count("CloudEvents", "failed") - failed == 1
    (warning,) = kube.events
    assert f"dropped after {len(got)} attempt(s): HTTP 503" in warning[3]


def test_a_full_queue_drops_the_oldest_waiting_event_and_submit_never_waits(rx: Receiver) -> None:
    kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce")}})
    notifier = notifier_for(kube, bound=2, senders=1)
    dropped = count("CloudEvents", "dropped")
    rx.hold()
    submit(notifier, [CE], [Event("Normal", "StepAdvanced", "1")])
    rx.wait(lambda r: r.waiting == 1)  # the first is being sent, and held there
    for message in ("2", "3", "4"):
        assert submit(notifier, [CE], [Event("Normal", "StepAdvanced", message)]) == 1
    assert rx.waiting == 1 and rx.answered() == []  # every submit returned while the webhook held on
    rx.release()
    assert notifier.idle(timeout=30)
    assert [r.json()["data"]["message"] for r in rx.answered()] == ["1", "4"]
    assert count("CloudEvents", "dropped") - dropped == 2


def test_a_missing_secret_or_key_is_retried_with_a_warning_then_delivered(rx: Receiver) -> None:
    kube = FakeKube()
    notifier = notifier_for(kube)
    submit(notifier, [CE], events("Promoted"))
    kube.wait(lambda k: len(k.requests) >= 3 and k.events)  # retried, and told at once
    kube.set_secret("ml", {"other": "x"})
    kube.wait(lambda k: len(k.requests) >= 6)
    assert rx.answered() == []
    kube.set_secret("ml", {"ce": rx.url("/ce")})
    assert notifier.idle(timeout=30)
    assert len(rx.answered()) == 1 and rx.answered()[0].status == 200
    (warning,) = kube.events  # once per target per hour
    assert warning[2] == "NotificationFailed"
    assert f"target events are held: Secret {SECRET} not found in namespace ml" in warning[3]


def test_no_url_ever_reaches_a_log_line_or_an_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "T0KEN-s3cr3t"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks/{token}"
    with receiver(lambda path, n: 404) as rx:
        urls = {"gone": rx.url(f"/hooks/{token}"), "refused": refused, "scheme": f"ftp://hooks/{token}",
                "broken": f"http://[::1/{token}"}
        kube = FakeKube({("ml", SECRET): urls})
        notifier = notifier_for(kube, policy=RetryPolicy(first=0.01, cap=0.02, give_up_after=0.1))
        targets = [{"name": key, "type": "Slack", "urlKey": key} for key in urls]
        submit(notifier, targets, events("Promoted"))
        assert notifier.idle(timeout=30)
    assert len(kube.events) == 4
    text = caplog.text + "\n".join(event[3] for event in kube.events)
    assert "notification-failed target=refused" in text and "ConnectionRefusedError" in text
    assert "key 'scheme' is not an http:// or https:// URL" in text and "HTTP 404" in text
    assert "key 'broken' is not an http:// or https:// URL" in text
    assert token not in text and "127.0.0.1:" not in text


def test_secret_urls_are_read_at_send_time_and_kept_briefly() -> None:
    now = [0.0]
    reads: list[str] = []
    data: dict[str, Mapping[str, str] | None] = {"ml": None}

    def read(namespace: str, name: str) -> Mapping[str, str] | None:
        reads.append(namespace)
        return data[namespace]

    urls = SecretUrls(read, SECRET, ttl=30.0, clock=lambda: now[0])
    with pytest.raises(MissingUrl, match=f"Secret {SECRET} not found"):
        urls.url("ml", "ce")
    data["ml"] = {"ce": base64.b64encode(b" https://hooks.example.com/a \n").decode(),
                  "ftp": base64.b64encode(b"ftp://x").decode(), "bad": "%%%"}
    assert urls.url("ml", "ce") == "https://hooks.example.com/a"  # a miss is not kept
    now[0] = 29.0
    assert urls.url("ml", "ce") == "https://hooks.example.com/a"
    with pytest.raises(MissingUrl, match="has no key 'slack'"):
        urls.url("ml", "slack")
    with pytest.raises(NotHttp, match="not an http"):
        urls.url("ml", "ftp")
    with pytest.raises(NotHttp, match="not base64"):
        urls.url("ml", "bad")
    assert reads == ["ml", "ml"]  # kept within 30 s
    data["ml"] = {"ce": base64.b64encode(b"https://hooks.example.com/b").decode()}
    now[0] = 30.0
    assert urls.url("ml", "ce") == "https://hooks.example.com/b"
    assert reads == ["ml", "ml", "ml"]


def test_a_secret_read_refused_is_a_missing_url_and_an_absent_one_none() -> None:
    kube = FakeKube({("ml", SECRET): {"ce": "https://hooks.example.com/a"}})
    read = kube_secret_reader(kube)
    assert read("ml", "other") is None
    assert read("ml", SECRET) == {"ce": base64.b64encode(b"https://hooks.example.com/a").decode()}
    kube.fail = 403
    with pytest.raises(MissingUrl, match=f"^cannot read Secret {SECRET}: HTTP 403$"):
        read("ml", SECRET)
    assert kube.requests == [("GET", "/api/v1/namespaces/ml/secrets/other")] + \
        [("GET", f"/api/v1/namespaces/ml/secrets/{SECRET}")] * 2


def test_execute_queues_the_events_with_the_written_status_and_never_waits(rx: Receiver) -> None:
    kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce")}})
    before = modeldeployment([CE], status={"stable": {"version": "v1"}})
    kube.status_written = modeldeployment([CE], status={"stable": {"version": "v1"}, "canary": {
        "version": "v2", "weight": 0, "step": -1, "state": "Progressing"}})
    notifier = notifier_for(kube)
    rx.hold()
    plan = Plan(status={"canary": {"version": "v2"}}, events=(Event("Normal", "CanaryStarted", "canary v2 started"),),
                notifications=parsed([CE]))
    execute(kube, before, plan, notifier)  # type: ignore[arg-type]
    rx.wait(lambda r: r.waiting == 1)
    assert kube.events == [("fraud", "Normal", "CanaryStarted", "canary v2 started")]  # execute returned
    rx.release()
    assert notifier.idle(timeout=30)
    (got,) = rx.answered()
    assert got.json()["data"] == {"namespace": "ml", "name": "fraud", "reason": "CanaryStarted",
                                  "message": "canary v2 started", "stableVersion": "v1", "canaryVersion": "v2",
                                  "weight": 0, "step": -1, "state": "Progressing"}


def test_nothing_is_queued_without_targets_or_after_stop(rx: Receiver) -> None:
    kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce")}})
    notifier = notifier_for(kube)
    assert submit(notifier, [], events("Promoted")) == 0
    assert submit(notifier, [{**CE, "events": ["RolledBack"]}], events("Promoted")) == 0
    notifier.stop()
    assert submit(notifier, [CE], events("Promoted")) == 0
    assert notifier.idle(timeout=1) and rx.answered() == [] and kube.requests == []


def test_an_unreadable_object_queues_nothing_and_raises_nothing(rx: Receiver,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube({("ml", SECRET): {"ce": rx.url("/ce")}})
    notifier = notifier_for(kube)
    assert submit(notifier, [CE], events("Promoted"), status={"canary": "not an object"}) == 0
    assert "ml/fraud notification-not-queued" in caplog.text
    assert notifier.idle(timeout=1) and rx.answered() == []
