"""`spec.notifications`: webhooks told of a ModelDeployment's rollout and drift decisions.

Each target names a key of one Secret (`modelpilot-notifications` by default, in the
ModelDeployment's namespace) that holds its URL: URLs of incoming webhooks are credentials, so
they never appear in the spec, in status, in Events or in logs. Delivery: docs/notifications.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field

from modelpilot.api.common import DNS1123_LABEL, SpecModel, cel_rules

# A leaf module (the operator's settings): the CRD's description names the default Secret.
from modelpilot.settings import DEFAULT_NOTIFICATIONS_SECRET

MAX_TARGETS = 8
# The keys a Secret's data may have (Kubernetes' IsConfigMapKey).
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

NotificationType = Literal["CloudEvents", "Slack"]
# What a target can be told, each from the operator's own Events (notify/events.py maps them):
# a canary started (also restarted or retried), moved to its next step or stage, paused, resumed,
# promoted, rolled back by the analysis or a deadline, aborted by hand, and data or concept drift
# detected or cleared on the stable track.
NotificationEvent = Literal["Started", "StepAdvanced", "Paused", "Resumed", "Promoted", "RolledBack", "Aborted",
                            "DriftDetected", "DriftCleared"]
NOTIFICATION_EVENTS: tuple[str, ...] = get_args(NotificationEvent)

UNIQUE_NAMES = "notifications names must be unique"
UNIQUE_EVENTS = "notifications events must not repeat an event"


def _unique_events(events: list[str]) -> list[str]:
    if len(events) != len(set(events)):
        raise ValueError(UNIQUE_EVENTS)
    return events


def notifications_problem(names: Sequence[str]) -> str | None:
    """Parser twin of the list's CEL rule: what is wrong with the targets' names (None when nothing)."""
    return UNIQUE_NAMES if len(names) != len(set(names)) else None


class NotificationTarget(SpecModel):
    """One webhook: its kind of payload, the Secret key holding its URL and the events it wants."""

    name: str = Field(description="Names the target in logs, Events and metrics (a DNS label, unique in the list).",
                      min_length=1, max_length=63, pattern=DNS1123_LABEL)
    type: NotificationType = Field(
        description="CloudEvents (a CloudEvents 1.0 structured JSON POST) or Slack (an incoming-webhook message "
        "`{\"text\": ...}`, which Slack, Mattermost and Rocket.Chat accept).")
    url_key: str = Field(
        description=f"The key, in the Secret `{DEFAULT_NOTIFICATIONS_SECRET}` of this namespace (the operator's "
        "MODELPILOT_NOTIFICATIONS_SECRET), whose value is the webhook's http(s) URL.",
        min_length=1, max_length=253, pattern=SECRET_KEY)
    events: Annotated[list[NotificationEvent], AfterValidator(_unique_events)] = Field(
        default_factory=lambda: list(NOTIFICATION_EVENTS),
        description="The events sent: Started, StepAdvanced, Paused, Resumed, Promoted, RolledBack, Aborted, "
        "DriftDetected, DriftCleared (default: all).",
        min_length=1, max_length=len(NOTIFICATION_EVENTS),
        json_schema_extra=cel_rules(("self.all(e, self.exists_one(f, f == e))", UNIQUE_EVENTS)))


def _check_names(targets: list[NotificationTarget]) -> list[NotificationTarget]:
    problem = notifications_problem([t.name for t in targets])
    if problem:
        raise ValueError(problem)
    return targets


Notifications = Annotated[
    list[NotificationTarget],
    AfterValidator(_check_names),
    Field(default_factory=list, max_length=MAX_TARGETS,
          description="Webhooks told of rollout and drift decisions (at most 8; see docs/notifications.md). "
          "Delivery never holds up a rollout.",
          json_schema_extra=cel_rules(("self.all(t, self.exists_one(u, u.name == t.name))", UNIQUE_NAMES))),
]
