"""Request bodies for the load generator: Open Inference Protocol v2 inputs for a model's
declared inputs (read from /v2/models/{name})."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Payload = Callable[[list[dict[str, Any]]], dict[str, Any]]
DEFAULT_INPUTS = [{"name": "input-0", "datatype": "FP64", "shape": [1, 4]}]


def iris_payload(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Random positive iris-like features for every declared input (-1 in a shape becomes 1)."""
    tensors = []
    for spec in inputs:
        shape = [1 if d is None or int(d) < 0 else int(d) for d in spec.get("shape") or [1, 4]]
        size = 1
        for d in shape:
            size *= d
        datatype = spec.get("datatype", "FP64")
        if datatype.startswith("FP"):
            data: list[Any] = [round(random.uniform(0.1, 7.9), 2) for _ in range(size)]
        elif datatype.startswith(("INT", "UINT")):
            data = [random.randint(0, 5) for _ in range(size)]
        elif datatype == "BOOL":
            data = [random.random() < 0.5 for _ in range(size)]
        else:
            data = ["x"] * size
        tensors.append({"name": spec.get("name", "input-0"), "shape": shape, "datatype": datatype, "data": data})
    return {"inputs": tensors}
