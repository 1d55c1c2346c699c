"""Manual rollout actions: which make sense in which state, and the patch each one sends. Pure.

The same rules are written in Lua for Argo CD (docs/argocd/actions/); a unit test checks that both
agree on every status fixture.

- promote, abort, retry set the annotation `modelpilot.io/action`, which the operator reads once
  and removes; pause sets `spec.paused: true`; resume sets `spec.paused: false` and, when a policy
  (onInconclusive / onProviderError: Pause) paused the canary, also the `resume` action, because
  such a pause outlives spec.paused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelpilot.resources.labels import ANNOTATION_ACTION

ACTIONS = ("promote", "abort", "retry", "pause", "resume")
POLICY_PAUSES = ("inconclusive", "provider-error")


def _canary(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((md.get("status") or {}).get("canary")) or {}


def _paused(md: Mapping[str, Any]) -> bool:
    return (md.get("spec") or {}).get("paused") is True


def why_not(md: Mapping[str, Any], action: str) -> str | None:
    """None when `action` makes sense for this ModelDeployment now, else the reason it does not."""
    canary = _canary(md)
    state = canary.get("state")
    version = canary.get("version", "?")
    if action in ("promote", "abort"):
        if not state:
            return "no canary in progress"
        if state not in ("Progressing", "Paused"):
            return f"canary {version} is {state}"
        return None
    if action == "retry":
        if not state:
            return "no canary to retry"
        if state == "Promoting":
            return f"canary {version} is already being promoted"
        return None
    if action == "pause":
        if _paused(md):
            return "spec.paused is already true"
        if state == "Paused":
            return f"canary {version} is already paused (by {canary.get('pausedBy', '?')})"
        if state == "Promoting":
            return f"canary {version} is being promoted; a promotion does not pause"
        return None
    if action == "resume":
        if _paused(md) or state == "Paused":
            return None
        return "nothing is paused"
    raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")


def available(md: Mapping[str, Any]) -> dict[str, bool]:
    """Action -> enabled, like the Argo CD discovery.lua."""
    return {action: why_not(md, action) is None for action in ACTIONS}


def patch(md: Mapping[str, Any], action: str) -> dict[str, Any]:
    """The JSON merge patch that asks the operator for `action`."""
    if action in ("promote", "abort", "retry"):
        return {"metadata": {"annotations": {ANNOTATION_ACTION: action}}}
    if action == "pause":
        return {"spec": {"paused": True}}
    if action == "resume":
        body: dict[str, Any] = {"spec": {"paused": False}}
        canary = _canary(md)
        if canary.get("state") == "Paused" and canary.get("pausedBy") in POLICY_PAUSES:
            body["metadata"] = {"annotations": {ANNOTATION_ACTION: "resume"}}
        return body
    raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
