"""How traffic reaches the canary: the router (replicas or Gateway API), and the phases a canary
can run before (or instead of) its weight steps: a shadow on mirrored requests, and a segment of
users picked by header or cookie. Both phases need Gateway API routing (the replicas router
cannot mirror or match requests)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelpilot.api.common import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    HOSTNAME,
    Duration,
    SpecModel,
    cel_rules,
    check_duration,
    duration_rules,
)
from modelpilot.api.durations import parse_duration

# RFC 9110 token characters: header and cookie names.
HTTP_TOKEN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
# RFC 6265 cookie-octets: no whitespace, quote, comma, semicolon or backslash.
COOKIE_VALUE = r"^[!#-+./0-9:<-\[\]-~-]*$"


class Shadow(SpecModel):
    """A shadow phase before the weight steps: `percent` of requests are copied to the canary
    (Gateway API RequestMirror); clients only ever get stable's answers. Judged every interval by
    the analysis plus `prediction-shift`; a failure rolls back before any user saw the canary."""

    percent: int = Field(default=100, description="Percent of requests mirrored to the canary (default 100).",
                         ge=1, le=100)
    duration: Duration = Field(
        default="5m",
        description="How long the shadow runs before the weight steps (at least 10s; default 5m).",
        json_schema_extra=duration_rules("rollout.canary.shadow.duration", minimum="10s"),
    )
    max_prediction_shift: float = Field(
        default=0.1,
        description=(
            "Fail when the Jensen-Shannon distance (base 2, 0 = same, 1 = disjoint) between the canary's and "
            "stable's prediction distributions exceeds this (default 0.1). Applies unless the metrics list "
            "names prediction-shift itself."
        ),
        ge=0,
        le=1,
    )

    @field_validator("duration")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        return check_duration("rollout.canary.shadow.duration", value, 10.0, "10s")

    @property
    def duration_seconds(self) -> float:
        return parse_duration(self.duration)


class HeaderMatch(SpecModel):
    """One request header condition (Gateway API HTTPHeaderMatch)."""

    name: str = Field(description="Header name (case-insensitive).", min_length=1, max_length=256,
                      pattern=HTTP_TOKEN)
    value: str = Field(description="The value, or an RE2 regular expression.", min_length=1, max_length=4096)
    type: Literal["Exact", "RegularExpression"] = Field(default="Exact",
                                                        description="Exact (default) or RegularExpression.")


class CookieMatch(SpecModel):
    """A cookie condition: the request carries cookie `name` with exactly `value`."""

    name: str = Field(description="Cookie name.", min_length=1, max_length=256, pattern=HTTP_TOKEN)
    value: str = Field(description="Exact cookie value.", min_length=1, max_length=1024, pattern=COOKIE_VALUE)


class RouteMatch(SpecModel):
    """Requests matching every condition here go to the canary (entries of `match` are alternatives)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("(has(self.headers) && size(self.headers) > 0) || has(self.cookie)",
             "a match needs at least one header or a cookie"),
            (
                "!has(self.cookie) || !has(self.headers) || self.headers.all(h, !h.name.matches('(?i)^cookie$'))",
                "a match with a cookie may not also match the Cookie header",
            ),
        )
    )

    headers: list[HeaderMatch] = Field(default_factory=list, description="Header conditions (all must hold).",
                                       max_length=16)
    cookie: CookieMatch | None = Field(default=None, description="A cookie condition.")

    @field_validator("headers")
    @classmethod
    def _unique(cls, headers: list[HeaderMatch]) -> list[HeaderMatch]:
        names = [h.name.lower() for h in headers]
        if len(names) != len(set(names)):
            raise ValueError("header names in one match must be unique")
        return headers

    @model_validator(mode="after")
    def _check_match(self) -> RouteMatch:
        if not self.headers and self.cookie is None:
            raise ValueError("a match needs at least one header or a cookie")
        if self.cookie is not None and any(h.name.lower() == "cookie" for h in self.headers):
            raise ValueError("a match with a cookie may not also match the Cookie header")
        return self


class Sticky(SpecModel):
    """What identifies a user: one header or one cookie, hashed consistently, so one user always
    sees one version."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("has(self.header) != has(self.cookie)", "sticky needs exactly one of header or cookie"),
        )
    )

    header: str | None = Field(default=None, description="Header whose value identifies the user.",
                               max_length=256, pattern=HTTP_TOKEN)
    cookie: str | None = Field(default=None, description="Cookie whose value identifies the user.",
                               max_length=256, pattern=HTTP_TOKEN)

    @model_validator(mode="after")
    def _check_one(self) -> Sticky:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("sticky needs exactly one of header or cookie")
        return self


class ReplicasRouting(SpecModel):
    """Traffic split by pod counts: one Service selects both tracks and the canary gets a share of
    pods proportional to its weight. Needs nothing besides Kubernetes."""


class ParentRef(SpecModel):
    """A Gateway API parent (usually a Gateway) the HTTPRoute attaches to."""

    name: str = Field(description="Name of the Gateway.", min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    namespace: str | None = Field(
        default=None,
        description="Namespace of the Gateway (default: the ModelDeployment's).",
        max_length=63,
        pattern=DNS1123_LABEL,
    )
    section_name: str | None = Field(
        default=None,
        description="Listener name on the Gateway.",
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
    )


class GatewayAPI(SpecModel):
    """Traffic split by an HTTPRoute `<name>` with weighted backends `<name>-stable` and
    `<name>-canary`; the Service `<name>` then selects stable pods only."""

    parent_refs: list[ParentRef] = Field(
        description="Gateways the HTTPRoute attaches to.", min_length=1, max_length=16
    )
    hostnames: list[Annotated[str, Field(max_length=253, pattern=HOSTNAME)]] = Field(
        default_factory=list, description="Host names the HTTPRoute matches (default: all).", max_length=16
    )


class TrafficRouting(SpecModel):
    """How traffic is shifted to the canary: `replicas` (default) or `gatewayAPI`."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!(has(self.replicas) && has(self.gatewayAPI))",
                "trafficRouting must set either replicas or gatewayAPI, not both",
            ),
        )
    )

    replicas: ReplicasRouting | None = Field(
        default=None, description="Split by pod counts (the default when gatewayAPI is not set); an empty object."
    )
    gateway_api: GatewayAPI | None = Field(
        default=None, alias="gatewayAPI", description="Split with a Gateway API HTTPRoute."
    )

    @model_validator(mode="after")
    def _one_router(self) -> TrafficRouting:
        if self.replicas is not None and self.gateway_api is not None:
            raise ValueError("trafficRouting must set either replicas or gatewayAPI, not both")
        return self

    @property
    def mode(self) -> Literal["replicas", "gatewayAPI"]:
        """The router in effect."""
        return "gatewayAPI" if self.gateway_api is not None else "replicas"
