"""The bodies webhooks receive (pure): CloudEvents 1.0 structured JSON, read back with the
CloudEvents SDK, and the one-line Slack-style message."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat

from modelpilot.api.models import GROUP, PLURAL, VERSION
from modelpilot.notify.events import Notice
from modelpilot.notify.payload import CLOUDEVENTS_CONTENT_TYPE, cloudevent, encode, event_type, slack, summary

NOW = dt.datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=dt.UTC)
CANARY = {"stableVersion": "v1", "canaryVersion": "v2", "weight": 20, "step": 0, "state": "Progressing"}


def notice(event: str, reason: str | None = None, message: str = "m", **facts: Any) -> Notice:
    return Notice("0b7e4c1e-6f7a-4c57-9d1e-2f4b8e1c9a10", event, "ml", "fraud", reason or event, message, NOW,
                  facts)


@pytest.mark.parametrize(("event", "reason", "expected"), [
    ("Started", "CanaryStarted", "io.modelpilot.rollout.started"),
    ("StepAdvanced", "StepAdvanced", "io.modelpilot.rollout.stepadvanced"),
    ("Paused", "Paused", "io.modelpilot.rollout.paused"),
    ("Resumed", "Resumed", "io.modelpilot.rollout.resumed"),
    ("Promoted", "Promoted", "io.modelpilot.rollout.promoted"),
    ("RolledBack", "RolledBack", "io.modelpilot.rollout.rolledback"),
    ("Aborted", "RolledBack", "io.modelpilot.rollout.aborted"),
    ("DriftDetected", "DataDriftDetected", "io.modelpilot.drift.detected"),
    ("DriftCleared", "ConceptDriftCleared", "io.modelpilot.drift.cleared"),
])
def test_event_types(event: str, reason: str, expected: str) -> None:
    assert event_type(notice(event, reason)) == expected


def test_cloudevent_attributes_and_data() -> None:
    body = cloudevent(notice("StepAdvanced", message="canary v2 at 50%", **CANARY))
    assert body == {
        "specversion": "1.0", "id": "0b7e4c1e-6f7a-4c57-9d1e-2f4b8e1c9a10",
        "source": f"/apis/{GROUP}/{VERSION}/namespaces/ml/{PLURAL}/fraud",
        "type": "io.modelpilot.rollout.stepadvanced", "subject": "ml/fraud", "time": "2026-03-01T12:00:05.250Z",
        "datacontenttype": "application/json",
        "data": {"namespace": "ml", "name": "fraud", "reason": "StepAdvanced", "message": "canary v2 at 50%",
                 **CANARY},
    }
    assert body["source"] == "/apis/modelpilot.io/v1alpha1/namespaces/ml/modeldeployments/fraud"


def test_the_time_is_utc_to_the_millisecond_whatever_the_clock_zone() -> None:
    east = dt.timezone(dt.timedelta(hours=2))
    later = dt.datetime(2026, 3, 1, 14, 0, 5, 250999, tzinfo=east)
    the_notice = Notice("id", "Promoted", "ml", "fraud", "Promoted", "m", later)
    assert cloudevent(the_notice)["time"] == "2026-03-01T12:00:05.250Z"


@pytest.mark.parametrize("facts", [{}, CANARY, {"stableVersion": "v2"}])
def test_the_sdk_reads_what_is_sent(facts: dict[str, Any]) -> None:
    content_type, body = encode("CloudEvents", notice("Promoted", **facts))
    assert content_type == CLOUDEVENTS_CONTENT_TYPE == "application/cloudevents+json"
    event = JSONFormat().read(None, body)
    assert event.get_specversion() == "1.0"
    assert event.get_id() == "0b7e4c1e-6f7a-4c57-9d1e-2f4b8e1c9a10"
    assert event.get_type() == "io.modelpilot.rollout.promoted"
    assert event.get_subject() == "ml/fraud"
    assert event.get_time() == NOW
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == {"namespace": "ml", "name": "fraud", "reason": "Promoted", "message": "m", **facts}


@pytest.mark.parametrize(("the_notice", "text"), [
    (notice("Promoted", message="version v2 promoted", stableVersion="v2"),
     "ml/fraud: Promoted v2 (weight 100%) — version v2 promoted"),
    (notice("StepAdvanced", message="to 50%", **{**CANARY, "weight": 50}),
     "ml/fraud: StepAdvanced v2 (weight 50%) — to 50%"),
    (notice("Started", "CanaryStarted", "canary v2 started", stableVersion="v1", canaryVersion="v2", weight=0),
     "ml/fraud: Started v2 (weight 0%) — canary v2 started"),
    (notice("RolledBack", message="error-rate 50 (limit <= 1)", stableVersion="v1", canaryVersion="v2", weight=0),
     "ml/fraud: RolledBack v2 (weight 0%) — error-rate 50 (limit <= 1)"),
    (notice("DriftDetected", "DataDriftDetected", "feature psi 0.4", **CANARY),
     "ml/fraud: DataDriftDetected v1 — feature psi 0.4"),
    (notice("Paused", message="paused\nby spec"), "ml/fraud: Paused — paused by spec"),
    (notice("Resumed", message=""), "ml/fraud: Resumed"),
])
def test_summary(the_notice: Notice, text: str) -> None:
    assert summary(the_notice) == text


def test_slack_body_is_one_escaped_line() -> None:
    the_notice = notice("RolledBack", message="error-rate 50 (limit <= 1) & latency > 500 " + "x" * 2000,
                        canaryVersion="v2", weight=0)
    content_type, body = encode("Slack", the_notice)
    assert content_type == "application/json"
    message = json.loads(body)
    assert message == slack(the_notice) and set(message) == {"text"}
    text = message["text"]
    assert text.startswith("ml/fraud: RolledBack v2 (weight 0%) — error-rate 50 (limit &lt;= 1) &amp; latency &gt; ")
    assert "\n" not in text and text.endswith("...") and len(text) < 1100
    assert text.isprintable()
