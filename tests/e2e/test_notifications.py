"""Rollout notifications end to end: the operator (its own process, for this test's namespace)
reads the webhook URLs from the namespace's Secret and sends CloudEvents and Slack messages to a
real HTTP receiver the test runs on loopback (the operator shares pytest's network namespace),
while real model servers, Prometheus and traffic decide the canaries (tests/e2e/canary.py)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from kubernetes import client

from modelpilot.api.models import GROUP, PLURAL, VERSION
from modelpilot.settings import DEFAULT_NOTIFICATIONS_SECRET
from tests.e2e import mdep
from tests.e2e.canary import NAME, Env, spec
from tests.support.webhooks import Received, Receiver, receiver

CLOUDEVENTS = {"name": "events", "type": "CloudEvents", "urlKey": "cloudevents"}
SLACK = {"name": "chat", "type": "Slack", "urlKey": "slack", "events": ["Started", "Promoted", "RolledBack"]}
DATA_KEYS = {"namespace", "name", "reason", "message", "stableVersion", "canaryVersion", "weight", "step", "state"}
ROLLOUT = "io.modelpilot.rollout."


def webhook_secret(core: client.CoreV1Api, namespace: str, urls: dict[str, str]) -> None:
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=DEFAULT_NOTIFICATIONS_SECRET), string_data=urls))


def start_v1(env: Env, targets: list[dict[str, Any]]) -> None:
    body = spec(env.model("good"), "v1")
    body["spec"]["notifications"] = targets
    mdep.create(env.custom, env.namespace, body)
    mdep.wait_condition(env.custom, env.namespace, NAME, "Ready", "True", timeout=90)
    env.world.wait_serving(stable=2)


def cloudevent(env: Env, received: Received) -> dict[str, Any]:
    """Check one request against the documented schema (and the CloudEvents SDK); its JSON."""
    assert received.content_type == "application/cloudevents+json"
    JSONFormat().read(None, received.body)  # raises on anything that is not a valid CloudEvent 1.0
    event = received.json()
    assert set(event) == {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
    assert event["specversion"] == "1.0" and event["datacontenttype"] == "application/json"
    assert uuid.UUID(event["id"]).version == 4
    assert event["source"] == f"/apis/{GROUP}/{VERSION}/namespaces/{env.namespace}/{PLURAL}/{NAME}"
    assert event["subject"] == f"{env.namespace}/{NAME}"
    assert dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).tzinfo is not None
    data = event["data"]
    assert {"namespace", "name", "reason", "message"} <= set(data) <= DATA_KEYS, data
    assert (data["namespace"], data["name"]) == (env.namespace, NAME)
    return event


def rollout_events(env: Env, received: list[Received]) -> list[dict[str, Any]]:
    """The rollout's CloudEvents in order (drift events, if a model drifted meanwhile, are checked and left out)."""
    events = [cloudevent(env, r) for r in received]
    assert all(e["type"].startswith((ROLLOUT, "io.modelpilot.drift.")) for e in events), events
    return [e for e in events if e["type"].startswith(ROLLOUT)]


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(event, the version it is about) per CloudEvent."""
    out = []
    for event in events:
        kind, data = event["type"].removeprefix(ROLLOUT), event["data"]
        out.append((kind, data.get("stableVersion") if kind == "promoted" else data.get("canaryVersion")))
    return out


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def test_rolled_back_and_promoted_canaries_are_announced_in_order(env: Env, rx: Receiver) -> None:
    webhook_secret(env.core, env.namespace, {"cloudevents": rx.url("/ce"), "slack": rx.url("/slack")})
    start_v1(env, [CLOUDEVENTS, SLACK])
    env.set_version("v2", env.model("failing", error_ratio=0.5))
    env.wait_canary(lambda c: c.get("version") == "v2" and c.get("state") == "RolledBack", "rollback of v2")
    env.set_version("v3", env.model("good2"))
    env.wait_stable("v3")
    rx.wait(lambda r: any(b"rollout.promoted" in x.body for x in r.received if x.path == "/ce"), timeout=60)
    rx.wait(lambda r: len([x for x in r.received if x.path == "/slack"]) >= 4, timeout=60)

    events = rollout_events(env, rx.answered("/ce"))
    assert kinds(events) == [("started", "v2"), ("rolledback", "v2"), ("started", "v3"), ("stepadvanced", "v3"),
                             ("promoted", "v3")], events
    assert len({e["id"] for e in events}) == len(events)
    started, rolled, _, stepped, promoted = (e["data"] for e in events)
    assert (started["reason"], started["stableVersion"], started["state"]) == ("CanaryStarted", "v1", "Progressing")
    assert (rolled["reason"], rolled["state"], rolled["weight"]) == ("RolledBack", "RolledBack", 0)
    assert "error-rate" in rolled["message"]
    assert (stepped["weight"], stepped["step"]) == (50, 1)
    assert promoted["reason"] == "Promoted" and "canaryVersion" not in promoted and "state" not in promoted

    chat = rx.answered("/slack")
    assert all(r.content_type == "application/json" and set(r.json()) == {"text"} for r in chat)
    texts = [r.json()["text"] for r in chat]
    assert all("\n" not in t for t in texts)
    heads = ["Started v2 (weight 0%)", "RolledBack v2 (weight 0%)", "Started v3 (weight 0%)",
             "Promoted v3 (weight 100%)"]
    assert [t.split(" — ")[0] for t in texts] == [f"{env.namespace}/{NAME}: {head}" for head in heads]
    assert all(r.status == 200 for r in rx.answered())
    assert rx.url("/") not in env.operator.logs()  # URLs are credentials: never logged


def test_a_failing_receiver_gets_every_event_later_in_order_and_never_holds_the_rollout(env: Env) -> None:
    failing = threading.Event()
    failing.set()
    with receiver(lambda path, n: 500 if failing.is_set() else 200) as rx:
        webhook_secret(env.core, env.namespace, {"cloudevents": rx.url("/ce")})
        start_v1(env, [CLOUDEVENTS])
        env.set_version("v2", env.model("good2"))
        env.wait_stable("v2")  # promoted: the stable track runs v2 and the canary is gone
        env.wait_reasons("Promoted")
        rx.wait(lambda r: len(r.received) >= 2)  # the first event has been tried (and retried) meanwhile
        refused = rx.answered()
        assert refused and all(r.status == 500 for r in refused), "no 2xx before the rollout was promoted"
        failing.clear()
        rx.wait(lambda r: any(b"rollout.promoted" in x.body for x in r.received if x.status == 200), timeout=90)
        answered = rx.answered()

    ok = [r for r in answered if r.status == 200]
    events = rollout_events(env, ok)
    assert kinds(events) == [("started", "v2"), ("stepadvanced", "v2"), ("promoted", "v2")], events
    # Every refused request was the first event, tried again with its id until it was taken.
    first_id = events[0]["id"]
    assert {cloudevent(env, r)["id"] for r in answered if r.status == 500} == {first_id}
    assert len(refused) >= 2 and answered.index(ok[0]) >= len(refused)
    assert len({e["id"] for e in events}) == 3
    logs = env.operator.logs()
    assert f"notification-retry target=events type=CloudEvents event=Started id={first_id}" in logs
    assert "error='HTTP 500'" in logs and rx.url("/") not in logs
