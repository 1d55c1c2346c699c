"""PromQL query templates: placeholders, validation of substituted values, syntax checks (pure).

Templates use Flagger-style placeholders inside the user's own quotes, e.g.
`rate(x{namespace="{{namespace}}", track="{{track}}"}[{{window}}])`. Every substituted value is
validated first (DNS-1123 names, a fixed track, a Prometheus duration), so no value can close a
string literal or add PromQL; anything else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import promql_parser

PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_]+)\s*\}\}")
PLACEHOLDERS = ("namespace", "name", "track", "revision", "window")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_WINDOW = re.compile(r"^[0-9]+(ms|s|m|h)$")
_REVISION = re.compile(r"^[0-9a-f]{1,64}$")
_TRACKS = ("stable", "canary")

# Harmless sample values used only to check a template's syntax.
_SAMPLE = {"namespace": "ns", "name": "model", "track": "canary", "revision": "0123456789", "window": "1m"}


class QueryError(ValueError):
    """A query template that cannot be rendered or parsed."""


def validate_values(values: Mapping[str, str]) -> None:
    for key, value in values.items():
        if key in ("namespace", "name"):
            ok = bool(_DNS1123.match(value)) and len(value) <= 253
        elif key == "track":
            ok = value in _TRACKS
        elif key == "window":
            ok = bool(_WINDOW.match(value))
        elif key == "revision":
            ok = bool(_REVISION.match(value))
        else:
            raise QueryError(f"unknown placeholder {{{{{key}}}}}")
        if not ok:
            raise QueryError(f"refusing to substitute {key}={value!r}: not a valid {key}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute validated values; unknown or missing placeholders are errors."""
    validate_values(values)

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in PLACEHOLDERS:
            raise QueryError(f"unknown placeholder {{{{{key}}}}} (known: {', '.join(PLACEHOLDERS)})")
        if key not in values:
            raise QueryError(f"no value for placeholder {{{{{key}}}}}")
        return values[key]

    return PLACEHOLDER.sub(replace, template)


def check_syntax(template: str) -> None:
    """Raise QueryError when the template, rendered with sample values, is not valid PromQL."""
    rendered = render(template, _SAMPLE)
    try:
        promql_parser.parse(rendered)
    except ValueError as err:
        raise QueryError(f"invalid PromQL: {err}") from None


# A namespace no real object has: a selector that matches it after rendering was written with
# {{namespace}}, i.e. confined to the ModelDeployment's own namespace.
_OWN_NAMESPACE = "modelpilot-own-namespace-0"


def _selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(expr, pre_visit=visit)
    return found


def check_confined(template: str) -> None:
    """Raise QueryError unless every series selector of the query is confined to the
    ModelDeployment's own namespace: `namespace="{{namespace}}"` and no other namespace matcher.
    (An operator setting turns this on, so one tenant's canary cannot read another's metrics.)"""
    rendered = render(template, {**_SAMPLE, "namespace": _OWN_NAMESPACE})
    expr = promql_parser.parse(rendered)
    for selector in _selectors(expr):
        groups = [selector.matchers.matchers, *selector.matchers.or_matchers]
        for group in groups:
            namespace = [m for m in group if m.name == "namespace"]
            own = [m for m in namespace if m.op == promql_parser.MatchOp.Equal and m.value == _OWN_NAMESPACE]
            if not own or len(namespace) != len(own):
                shown = selector.name or str(selector.matchers)
                raise QueryError(f"selector {shown} must be confined with namespace=\"{{{{namespace}}}}\" "
                                 "(the operator restricts custom queries to the object's own namespace)")
