"""The edge part of a spec (`target: Edge`): which nodes form the fleet and how a new revision
spreads over it in batches of nodes; and `status.edge`, the fleet by node state."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator

from modelpilot.api.common import (
    Duration,
    SpecModel,
    StatusModel,
    ascending_percent_rules,
    cel_rules,
    check_ascending_percents,
    check_duration,
    duration_rules,
)
from modelpilot.api.durations import parse_duration
from modelpilot.api.serving import Toleration

EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
# A node list in status is capped: a fleet of thousands still fits well inside an object.
MAX_LISTED_NODES = 1000
PERCENT = r"^(100|[1-9][0-9]?)%$"
MAX_UNAVAILABLE_MESSAGE = "edge.rollout.maxUnavailable must be a node count (>= 1) or a percentage such as 25%"


def validate_int_or_percent(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(MAX_UNAVAILABLE_MESSAGE)
    if (isinstance(value, int) and value < 1) or (isinstance(value, str) and not re.match(PERCENT, value)):
        raise ValueError(MAX_UNAVAILABLE_MESSAGE)
    return value


IntOrPercent = Annotated[
    int | str,
    PlainValidator(validate_int_or_percent),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 4}]}),
]


# What target Edge rules out, each with why: (what, CEL rule on the spec, message). The parser's
# twin is edge_problem(), with the same messages.
_EDGE_RULES: tuple[tuple[str, str, str], ...] = (
    ("replicas", "!has(self.replicas)",
     "replicas does not apply to target Edge: one pod runs on every node of the fleet"),
    ("autoscaling", "!has(self.autoscaling)",
     "autoscaling does not apply to target Edge: one pod runs on every node of the fleet"),
    ("trafficRouting", "!has(self.rollout) || !has(self.rollout.canary) || !has(self.rollout.canary.trafficRouting)",
     "rollout.canary.trafficRouting does not apply to target Edge: clients reach the pod on their own node"),
    ("steps", "!has(self.rollout) || !has(self.rollout.canary) || !has(self.rollout.canary.steps)",
     "rollout.canary.steps does not apply to target Edge: a canary widens by edge.rollout.batches"),
    ("interval", "!has(self.rollout) || !has(self.rollout.canary) || !has(self.rollout.canary.interval)",
     "rollout.canary.interval does not apply to target Edge: use edge.rollout.interval"),
)
EDGE_ONLY = "spec.edge applies to target Edge only"
EDGE_CEL_RULES: tuple[tuple[str, str], ...] = (
    ("!has(self.edge) || (has(self.target) && self.target == 'Edge')", EDGE_ONLY),
    *((f"!has(self.target) || self.target != 'Edge' || ({rule})", message) for _, rule, message in _EDGE_RULES),
)


def edge_problem(target: str, has_edge: bool, given: Mapping[str, bool]) -> str | None:
    """What is wrong with the spec's target (None when nothing); `given`: which of replicas,
    autoscaling, trafficRouting, steps and interval the spec sets."""
    if target != "Edge":
        return EDGE_ONLY if has_edge else None
    problems = [message for what, _, message in _EDGE_RULES if given.get(what)]
    return "; ".join(problems) or None


def _default_tolerations() -> list[Toleration]:
    return [Toleration(key=EDGE_ROLE_LABEL, operator="Exists", effect="NoSchedule")]


class EdgeRollout(SpecModel):
    """How a new revision spreads over the fleet: batches of nodes, each judged before the next."""

    batches: list[int] = Field(
        default=[5, 25, 100],
        description="Percent of the fleet's nodes running the canary at each batch, strictly ascending, each "
        "1-100 (rounded up, at least minNodes); a passing analysis over the canary nodes widens the set to "
        "the next batch, a failing one rolls every node back to stable. Promotion follows a passing analysis "
        "at the last batch. Default [5, 25, 100].",
        min_length=1,
        max_length=20,
        json_schema_extra=ascending_percent_rules("edge.rollout.batches", 100),
    )
    interval: Duration = Field(
        default="1m",
        description="Time between analyses of the canary nodes, at least 5s (default 1m).",
        json_schema_extra=duration_rules("edge.rollout.interval", minimum="5s"),
    )
    max_unavailable: IntOrPercent = Field(
        default="25%",
        description="How many reachable nodes may be without a Ready serving pod at once while pods are "
        "replaced (a batch widening, the nodes going back to the stable DaemonSet after promotion, stable "
        "pods of an older revision): a count or a percentage of the fleet, rounded up (default 25%).",
        json_schema_extra=cel_rules(
            (f"type(self) == int ? self >= 1 : self.matches('{PERCENT}')", MAX_UNAVAILABLE_MESSAGE)),
    )
    min_nodes: int = Field(
        default=1,
        description="Canary nodes that must be reachable and serving before an analysis may judge a batch "
        "(default 1). Unreachable nodes count neither for nor against a batch.",
        ge=1,
        le=10000,
    )

    @field_validator("batches")
    @classmethod
    def _check_batches(cls, batches: list[int]) -> list[int]:
        return check_ascending_percents("edge.rollout.batches", batches, 100)

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        return check_duration("edge.rollout.interval", value, 5.0, "5s")

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    def max_unavailable_nodes(self, fleet: int) -> int:
        """maxUnavailable as a node count for a fleet of `fleet` nodes (at least 1)."""
        value = self.max_unavailable
        if isinstance(value, str):
            return max(1, math.ceil(fleet * int(value.rstrip("%")) / 100))
        return max(1, value)


class Edge(SpecModel):
    """Target Edge: one serving pod on every selected node (a DaemonSet per track)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("!has(self.nodeSelector) || size(self.nodeSelector) > 0",
             "edge.nodeSelector must name at least one label: an empty selector would take every node"),
        )
    )

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=lambda: {EDGE_ROLE_LABEL: ""},
        description="Labels a node must have to be in the fleet (default node-role.kubernetes.io/edge: \"\").",
        max_length=16,
    )
    tolerations: list[Toleration] = Field(
        default_factory=_default_tolerations,
        description="Taints of the edge nodes the serving pods tolerate (default: node-role.kubernetes.io/edge, "
        "Exists, NoSchedule). Unreachable and not-ready nodes are always tolerated: a disconnected node keeps "
        "its pod.",
        max_length=16,
    )
    rollout: EdgeRollout = Field(default_factory=EdgeRollout, description="Batches of nodes for a new revision.")

    @field_validator("node_selector")
    @classmethod
    def _check_selector(cls, selector: dict[str, str]) -> dict[str, str]:
        if not selector:
            raise ValueError("edge.nodeSelector must name at least one label: an empty selector would take "
                             "every node")
        return selector


NodeList = Annotated[list[Annotated[str, Field(max_length=253)]],
                     Field(default_factory=list, max_length=MAX_LISTED_NODES)]


class EdgeStatus(StatusModel):
    """The fleet: the canary's nodes and every selected node by state."""

    nodes: int = Field(default=0, description="Nodes in the fleet (selected by edge.nodeSelector).", ge=0)
    canary_nodes: NodeList = Field(description="The nodes the operator chose for the canary (kept until it ends).")
    canary_revision: str | None = Field(default=None, description="The revision canaryNodes were chosen for.",
                                        max_length=64)
    batch: int | None = Field(default=None, description="The canary's batch (1-based) while one is in flight.",
                              ge=1)
    batch_nodes: int | None = Field(default=None, description="Nodes the current batch takes.", ge=0)
    reporting: int | None = Field(default=None, description="Canary nodes reachable and serving (minNodes).",
                                  ge=0)
    serving_stable: NodeList = Field(description="Reachable nodes whose stable pod is Ready.")
    serving_canary: NodeList = Field(description="Reachable nodes whose canary pod is Ready.")
    unreachable: NodeList = Field(description="Nodes whose Ready condition is not True (pods kept).")
    failed: NodeList = Field(description="Reachable nodes whose pod failed (crashing, failed, or not Ready "
                             "long after it started).")
    pending: NodeList = Field(description="Reachable nodes whose pod is being created or replaced.")
