"""A small evaluator of a structural schema and its CEL rules, for unit tests.

Not the API server: it checks what our schema uses (type, enum, bounds, lengths, item counts,
RE2 patterns, required, unknown fields, int-or-string) and evaluates every `x-kubernetes-
validations` rule with cel-python, adding the Kubernetes list functions our rules call. That is
enough to prove, without a cluster, that each invalid spec is rejected with its message and each
valid one passes — and that every rule compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from itertools import pairwise
from typing import Any

import celpy
import re2
from celpy import celtypes

Problem = tuple[str, str]  # (path, message)


def _is_sorted(items: celtypes.ListType) -> celtypes.BoolType:
    return celtypes.BoolType(all(a <= b for a, b in pairwise(items)))


def _index_of(items: celtypes.ListType, value: Any) -> celtypes.IntType:
    return celtypes.IntType(next((i for i, item in enumerate(items) if item == value), -1))


def _last_index_of(items: celtypes.ListType, value: Any) -> celtypes.IntType:
    return celtypes.IntType(next((i for i in range(len(items) - 1, -1, -1) if items[i] == value), -1))


# The Kubernetes CEL list library (k8s.io/apiserver/pkg/cel/library) functions our rules use.
K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": _is_sorted,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
}
_ENV = celpy.Environment()


@cache
def compile_rule(rule: str) -> celpy.Runner:
    """Compile once; raises celpy.CELParseError for a syntax error."""
    return _ENV.program(_ENV.compile(rule), functions=K8S_FUNCTIONS)


def to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    """JSON -> CEL values typed by the schema (a `number` is a double even when written as 1)."""
    if isinstance(value, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return celtypes.MapType(
            {
                celtypes.StringType(k): to_cel(v, props.get(k) or (extra if isinstance(extra, Mapping) else {}))
                for k, v in value.items()
            }
        )
    if isinstance(value, list):
        return celtypes.ListType([to_cel(v, schema.get("items", {})) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int | float) and schema.get("type") == "number":
        return celtypes.DoubleType(float(value))
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    return celtypes.StringType(value)


def _type_ok(value: Any, schema: Mapping[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    kind = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, Mapping),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    return kind is None or checks[kind](value)


def validate(schema: Mapping[str, Any], value: Any, path: str = "") -> list[Problem]:
    """All problems of `value` against `schema`, as (path, message) pairs."""
    if not _type_ok(value, schema):
        return [(path, f"must be of type {schema.get('type')}")]
    problems: list[Problem] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append((path, f"Unsupported value: {value!r}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append((path, f"should be greater than or equal to {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            problems.append((path, f"should be less than or equal to {schema['maximum']}"))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append((path, "too short"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append((path, "too long"))
        if "pattern" in schema and not re2.search(schema["pattern"], value):
            problems.append((path, f"should match {schema['pattern']!r}"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append((path, "too few items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append((path, "too many items"))
        if schema.get("x-kubernetes-list-type") == "map":
            keys = [tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"]) for item in value]
            if len(keys) != len(set(keys)):
                problems.append((path, "Duplicate value"))
        for i, item in enumerate(value):
            problems += validate(schema.get("items", {}), item, f"{path}[{i}]")
    if isinstance(value, Mapping):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            problems.append((path, "too many properties"))
        for key in schema.get("required", []):
            if key not in value:
                problems.append((f"{path}.{key}", "Required value"))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                problems += validate(props[key], item, f"{path}.{key}")
            elif isinstance(extra, Mapping):
                problems += validate(extra, item, f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append((f"{path}.{key}", "unknown field"))
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            result = compile_rule(rule["rule"]).evaluate({"self": to_cel(value, schema)})
        except celpy.CELEvalError as err:  # pragma: no cover - shown in the failing assertion
            problems.append((path, f"rule error in {rule['rule']!r}: {err}"))
            continue
        if isinstance(result, celpy.CELEvalError) or not isinstance(result, celtypes.BoolType):
            problems.append((path, f"rule error in {rule['rule']!r}: {result!r}"))
        elif not result:
            problems.append((path, rule["message"]))
    return problems


def iter_rules(schema: Mapping[str, Any], path: str = "") -> list[tuple[str, dict[str, str]]]:
    """Every CEL rule in a schema with the path of the node it sits on."""
    found = [(path, rule) for rule in schema.get("x-kubernetes-validations", [])]
    for key, prop in schema.get("properties", {}).items():
        found += iter_rules(prop, f"{path}.{key}")
    if isinstance(schema.get("items"), Mapping):
        found += iter_rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        found += iter_rules(schema["additionalProperties"], f"{path}.*")
    return found
