"""Open Inference Protocol v2 (REST): tensor datatypes, request decoding, signature checks, responses.

Pure functions over parsed JSON and numpy arrays, so they are tested without a server. Every
client mistake raises `ProtocolError` with a message that names the input and what is wrong; the
HTTP layer turns it into a 400 (or the status it carries).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# V2 datatype -> numpy dtype. BYTES are UTF-8 strings in JSON; they decode to a numpy str array.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
# numpy kinds of the values a JSON array of each datatype may hold (ints are valid floats).
_ACCEPTED_KINDS = {"BOOL": "b", "BYTES": "U"}
_INT_KINDS = "iu"
_FLOAT_KINDS = "iuf"


class ProtocolError(Exception):
    """A request the server refuses; `status` is the HTTP status (400 unless stated)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    """A declared model input or output: `shape` uses -1 for a free dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequest:
    """A decoded infer request: inputs keep the request's order."""

    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[str] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of a numpy array (strings, bytes and objects are BYTES)."""
    kind = array.dtype.kind
    if kind in "USO":
        return "BYTES"
    for name, dtype in DATATYPES.items():
        if dtype == array.dtype:
            return name
    raise ValueError(f"no V2 datatype for numpy dtype {array.dtype}")


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        raise ProtocolError(f"{where}: 'shape' must be a list of integers, got {raw!r}")
    if any(d < 0 for d in raw):
        raise ProtocolError(f"{where}: 'shape' must not have negative dimensions, got {raw}")
    return tuple(raw)


def decode_tensor(raw: Any, index: int) -> tuple[str, str, np.ndarray]:
    """One request input -> (name, datatype, array of that datatype and shape)."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"inputs[{index}] must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"inputs[{index}]: 'name' must be a non-empty string")
    where = f"input '{name}'"
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"{where}: unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}")
    shape = _shape(raw.get("shape"), where)
    data = raw.get("data")
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: 'data' must be a JSON array")
    try:
        # Nested or flat data both decode; ragged nesting raises ValueError.
        array = np.asarray(data)
    except (ValueError, TypeError) as err:
        raise ProtocolError(f"{where}: 'data' is not a regular array ({err})") from None
    expected = math.prod(shape)
    if array.size != expected:
        raise ProtocolError(f"{where}: shape {list(shape)} needs {expected} values, 'data' has {array.size}")
    kind = array.dtype.kind
    if array.size == 0:
        kind = ""  # an empty list decodes as float64: nothing to check
    if datatype in _ACCEPTED_KINDS:
        if kind and kind != _ACCEPTED_KINDS[datatype]:
            want = "true/false" if datatype == "BOOL" else "strings"
            raise ProtocolError(f"{where}: datatype {datatype} needs {want} in 'data'")
        if datatype == "BYTES":
            return name, datatype, array.astype(np.str_).reshape(shape)
    else:
        dtype = DATATYPES[datatype]
        allowed = _INT_KINDS if dtype.kind in _INT_KINDS else _FLOAT_KINDS
        if kind and kind not in allowed and dtype.kind in _INT_KINDS:
            # numpy turns a mix like [0, 2**64 - 1] into float64; exact ints take the slow path.
            return name, datatype, _exact_ints(data, dtype, datatype, where).reshape(shape)
        if kind and kind not in allowed:
            want = "integers" if dtype.kind in _INT_KINDS else "numbers"
            raise ProtocolError(f"{where}: datatype {datatype} needs {want} in 'data'")
        if kind and dtype.kind in _INT_KINDS:
            info = np.iinfo(dtype)
            low, high = array.min(), array.max()
            if low < info.min or high > info.max:
                raise ProtocolError(f"{where}: values outside the {datatype} range [{info.min}, {info.max}]")
    return name, datatype, array.astype(DATATYPES[datatype], copy=False).reshape(shape)


def _exact_ints(data: list[Any], dtype: np.dtype[Any], datatype: str, where: str) -> np.ndarray:
    values = np.array(data, dtype=object).ravel()
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ProtocolError(f"{where}: datatype {datatype} needs integers in 'data'")
    try:
        return values.astype(dtype)
    except OverflowError:
        info = np.iinfo(dtype)
        raise ProtocolError(f"{where}: values outside the {datatype} range [{info.min}, {info.max}]") from None


def decode_request(body: Any) -> InferRequest:
    """A parsed JSON infer request -> InferRequest; raises ProtocolError on anything malformed."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object with an 'inputs' array")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("'inputs' must be a non-empty array")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for index, raw in enumerate(raw_inputs):
        name, datatype, array = decode_tensor(raw, index)
        if name in inputs:
            raise ProtocolError(f"input '{name}' is given twice")
        inputs[name] = array
        datatypes[name] = datatype
    outputs: list[str] | None = None
    raw_outputs = body.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw_outputs
        ):
            raise ProtocolError("'outputs' must be an array of objects with a 'name'")
        outputs = [o["name"] for o in raw_outputs]
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be an object")
    return InferRequest(inputs=inputs, datatypes=datatypes, outputs=outputs, id=request_id, parameters=parameters)


def _shape_matches(shape: tuple[int, ...], declared: tuple[int, ...]) -> bool:
    return len(shape) == len(declared) and all(d == -1 or d == s for s, d in zip(shape, declared, strict=True))


def conform(request: InferRequest, declared: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Check the request's inputs against the model's declared inputs and cast them to the declared
    datatypes, in declared order. A model that declares no inputs takes whatever it is given.

    A request datatype is accepted when numpy casts it to the declared one without changing kind
    ("same_kind": INT32 -> FP64 yes, FP64 -> INT64 no, BYTES -> FP32 no).
    """
    if not declared:
        return request.inputs
    known = {spec.name: spec for spec in declared}
    unknown = [name for name in request.inputs if name not in known]
    if unknown:
        raise ProtocolError(
            f"unknown input {', '.join(repr(n) for n in unknown)}; the model takes {', '.join(known)}"
        )
    missing = [name for name in known if name not in request.inputs]
    if missing:
        raise ProtocolError(f"missing input {', '.join(repr(n) for n in missing)}; the model takes {', '.join(known)}")
    out: dict[str, np.ndarray] = {}
    for spec in declared:
        array = request.inputs[spec.name]
        given = request.datatypes[spec.name]
        if given != spec.datatype:
            target = DATATYPES[spec.datatype]
            if given == "BYTES" or spec.datatype == "BYTES" or not np.can_cast(array.dtype, target, "same_kind"):
                raise ProtocolError(f"input '{spec.name}' has datatype {given}; the model expects {spec.datatype}")
            array = array.astype(target)
        if not _shape_matches(array.shape, spec.shape):
            raise ProtocolError(
                f"input '{spec.name}' has shape {list(array.shape)}; the model expects {list(spec.shape)} "
                "(-1 = any size)"
            )
        out[spec.name] = array
    return out


def encode_output(name: str, array: np.ndarray) -> dict[str, Any]:
    """An output tensor for the response; numeric arrays stay numpy (orjson serialises them fast)."""
    datatype = datatype_of(array)
    if datatype == "BYTES":
        flat = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel().tolist()]
        return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": flat}
    data = np.ascontiguousarray(array).ravel()
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("="))
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def infer_response(
    model_name: str,
    model_version: str,
    outputs: Mapping[str, np.ndarray],
    request_id: str | None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"model_name": model_name}
    if model_version:
        response["model_version"] = model_version
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = [encode_output(name, array) for name, array in outputs.items()]
    return response
