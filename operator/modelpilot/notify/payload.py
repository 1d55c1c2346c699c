"""The bodies a webhook receives (pure): CloudEvents 1.0 structured JSON, or a Slack-style message."""

from __future__ import annotations

import datetime as dt
import json

from modelpilot.api.models import GROUP, PLURAL, VERSION
from modelpilot.notify.events import Notice

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
TYPE_PREFIX = "io.modelpilot"
DRIFT_TYPES = {"DriftDetected": "drift.detected", "DriftCleared": "drift.cleared"}
MAX_TEXT_MESSAGE = 1000


def event_type(notice: Notice) -> str:
    """io.modelpilot.rollout.<event lowercased>, or io.modelpilot.drift.detected / .cleared."""
    return f"{TYPE_PREFIX}.{DRIFT_TYPES.get(notice.event) or 'rollout.' + notice.event.lower()}"


def source(namespace: str, name: str) -> str:
    """The ModelDeployment's API path: unique per object, stable across operator releases."""
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def rfc3339(notice: Notice) -> str:
    """RFC 3339 in UTC, to the millisecond (times.stamp, the status's, keeps whole seconds only)."""
    return notice.time.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloudevent(notice: Notice) -> dict[str, object]:
    """A CloudEvents 1.0 event in the structured JSON format."""
    data = {"namespace": notice.namespace, "name": notice.name, "reason": notice.reason,
            "message": notice.message, **notice.facts}
    return {"specversion": "1.0", "id": notice.id, "source": source(notice.namespace, notice.name),
            "type": event_type(notice), "subject": f"{notice.namespace}/{notice.name}", "time": rfc3339(notice),
            "datacontenttype": JSON_CONTENT_TYPE, "data": data}


def _escape(text: str) -> str:
    # Slack reads &, < and > as markup; Mattermost and Rocket.Chat show the entities as the characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary(notice: Notice) -> str:
    """One line: `ns/name: Promoted v2 (weight 100%) — message`."""
    facts = notice.facts
    drift = notice.event in DRIFT_TYPES
    if drift or notice.event == "Promoted":
        version = facts.get("stableVersion")  # drift is the stable track's; a promoted canary is stable now
    else:
        version = facts.get("canaryVersion", facts.get("stableVersion"))
    weight = 100 if notice.event == "Promoted" else None if drift else facts.get("weight")
    label = notice.reason if drift else notice.event
    head = f"{notice.namespace}/{notice.name}: {label}"
    if version is not None:
        head += f" {version}"
    if weight is not None:
        head += f" (weight {weight}%)"
    message = " ".join(notice.message.split())  # one line
    if len(message) > MAX_TEXT_MESSAGE:
        message = message[:MAX_TEXT_MESSAGE - 3] + "..."
    return f"{head} — {message}" if message else head


def slack(notice: Notice) -> dict[str, str]:
    """An incoming-webhook message (Slack, Mattermost, Rocket.Chat)."""
    return {"text": _escape(summary(notice))}


def encode(target_type: str, notice: Notice) -> tuple[str, bytes]:
    """(Content-Type, body) for a target of `target_type` (CloudEvents or Slack)."""
    if target_type == "CloudEvents":
        return CLOUDEVENTS_CONTENT_TYPE, json.dumps(cloudevent(notice), separators=(",", ":")).encode()
    return JSON_CONTENT_TYPE, json.dumps(slack(notice), ensure_ascii=False).encode()
