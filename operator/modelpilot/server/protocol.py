"""Open Inference Protocol v2 (REST): request decoding, signature checks, responses.

Pure functions over parsed JSON and numpy arrays, so they are tested without a server. Every
client mistake raises `ProtocolError` with a message that names the input and what is wrong; the
HTTP layer turns it into a 400 (or the status it carries). Tensor data, JSON or in the binary
extension (`Inference-Header-Content-Length`), is decoded by `modelpilot.server.tensors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from modelpilot.server.tensors import (
    CHUNK,
    DATATYPES,
    Budget,
    ProtocolError,
    check_int_range,
    from_binary,
    from_json,
    parse_shape,
    range_error,
    short,
    to_binary,
)

__all__ = ["DATATYPES", "InferRequest", "ProtocolError", "TensorSpec", "conform", "decode_request", "infer_response"]

DEFAULT_MAX_DECODED_BYTES = 256 * 1024 * 1024


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
    """A decoded infer request: inputs keep the request's order. Outputs go back in binary when
    the request says so: per output (`parameters.binary_data`), else for all (`binary_data_output`)."""

    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[str] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary_outputs: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False

    def binary(self, output: str) -> bool:
        return self.binary_outputs.get(output, self.binary_default)


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of a numpy array (strings, bytes and objects are BYTES)."""
    kind = array.dtype.kind
    if kind in "USO":
        return "BYTES"
    for name, dtype in DATATYPES.items():
        if dtype == array.dtype:
            return name
    raise ValueError(f"no V2 datatype for numpy dtype {array.dtype}")


class BinarySection:
    """The bytes after the JSON header, handed out in input order (`binary_data_size` each)."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, where: str) -> memoryview:
        left = len(self.data) - self.offset
        if size > left:
            raise ProtocolError(
                f"{where}: the binary data ends after {left} of the {size} bytes binary_data_size asks for"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def finish(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise ProtocolError(f"the binary data has {left} bytes after the last binary input")


def _parameters(raw: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = raw.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{where}: 'parameters' must be an object")
    return parameters


def input_header(index: int, name: Any, datatype: Any, shape: Any) -> tuple[str, tuple[int, ...]]:
    """An input's name, datatype and shape, checked alike for REST and gRPC: returns (how error
    messages name the input, its shape)."""
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"inputs[{index}]: 'name' must be a non-empty string")
    where = f"input '{name}'"
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(f"{where}: unknown datatype {short(datatype)}; expected one of {', '.join(DATATYPES)}")
    return where, parse_shape(shape, where)


def refuse_shared_memory(parameters: Mapping[str, Any], where: str) -> None:
    if "shared_memory_region" in parameters:
        raise ProtocolError(f"{where}: shared memory (shared_memory_region) is not supported; send the data")


def collect_inputs(tensors: Iterable[tuple[str, str, np.ndarray]]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decoded inputs (name, datatype, array), in request order -> (arrays by name, datatypes by
    name); an input given twice is refused as soon as it is decoded."""
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for name, datatype, array in tensors:
        if name in inputs:
            raise ProtocolError(f"input '{name}' is given twice")
        inputs[name] = array
        datatypes[name] = datatype
    return inputs, datatypes


def decode_tensor(
    raw: Any, index: int, binary: BinarySection | None = None, budget: Budget | None = None
) -> tuple[str, str, np.ndarray]:
    """One request input -> (name, datatype, array of that datatype and shape)."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"inputs[{index}] must be an object with name, shape, datatype and data")
    name, datatype = raw.get("name"), raw.get("datatype")
    where, shape = input_header(index, name, datatype, raw.get("shape"))
    budget = budget or Budget(DEFAULT_MAX_DECODED_BYTES)
    parameters = _parameters(raw, where)
    refuse_shared_memory(parameters, where)
    if "binary_data_size" not in parameters:
        return name, datatype, from_json(raw.get("data"), datatype, shape, where, budget)
    size = parameters["binary_data_size"]
    if type(size) is not int or size < 0:
        raise ProtocolError(f"{where}: binary_data_size must be a non-negative integer, got {short(size)}")
    if "data" in raw:
        raise ProtocolError(f"{where} has both 'data' and binary_data_size; give one")
    if binary is None:
        raise ProtocolError(f"{where}: binary_data_size needs the Inference-Header-Content-Length header")
    return name, datatype, from_binary(binary.take(size, where), datatype, shape, where, budget)


def _outputs(body: dict[str, Any]) -> tuple[list[str] | None, dict[str, bool]]:
    raw_outputs = body.get("outputs")
    if raw_outputs is None:
        return None, {}
    if not isinstance(raw_outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw_outputs
    ):
        raise ProtocolError("'outputs' must be an array of objects with a 'name'")
    binary: dict[str, bool] = {}
    for output in raw_outputs:
        flag = _parameters(output, f"output '{output['name']}'").get("binary_data")
        if flag is not None:
            if not isinstance(flag, bool):
                raise ProtocolError(f"output '{output['name']}': binary_data must be true or false")
            binary[output["name"]] = flag
    return [o["name"] for o in raw_outputs], binary


def decode_request(
    body: Any, binary: memoryview | None = None, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> InferRequest:
    """A parsed JSON infer request (and the binary data after it, if any) -> InferRequest; raises
    ProtocolError on anything malformed and a 413 one past `max_decoded_bytes`."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object with an 'inputs' array")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("'inputs' must be a non-empty array")
    section = BinarySection(binary) if binary is not None else None
    budget = Budget(max_decoded_bytes)
    inputs, datatypes = collect_inputs(
        decode_tensor(raw, index, section, budget) for index, raw in enumerate(raw_inputs)
    )
    if section is not None:
        section.finish()
    outputs, binary_outputs = _outputs(body)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be an object")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise ProtocolError("'parameters.binary_data_output' must be true or false")
    return InferRequest(
        inputs=inputs,
        datatypes=datatypes,
        outputs=outputs,
        id=request_id,
        parameters=parameters,
        binary_outputs=binary_outputs,
        binary_default=binary_default,
    )


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
            array = _cast(array, spec)
        if not _shape_matches(array.shape, spec.shape):
            raise ProtocolError(
                f"input '{spec.name}' has shape {list(array.shape)}; the model expects {list(spec.shape)} "
                "(-1 = any size)"
            )
        out[spec.name] = array
    return out


def _cast(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """`array` as the declared datatype; values the datatype cannot hold are the client's mistake
    (same-kind casts may narrow: INT64 -> INT32, FP64 -> FP32)."""
    target = DATATYPES[spec.datatype]
    where = f"input '{spec.name}'"
    if target.kind in "iu":
        check_int_range(array, where, spec.datatype)
        return array.astype(target)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(target)
    if target.kind == "f" and np.isinf(cast).any() and (np.isinf(cast) & ~np.isinf(array)).any():
        raise range_error(where, spec.datatype)
    return cast


def encode_output(name: str, array: np.ndarray) -> dict[str, Any]:
    """An output tensor for the response; numeric arrays stay numpy (orjson serialises them fast)."""
    datatype = datatype_of(array)
    if datatype == "BYTES":
        flat = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel().tolist()]
        return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": flat}
    data = np.ascontiguousarray(array).ravel()
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("="))
    if data.size > CHUNK:
        # Serialised in chunks, so no single call holds the GIL for long (see tensors.CHUNK).
        parts = [orjson.dumps(data[i : i + CHUNK], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] for i in
                 range(0, data.size, CHUNK)]  # fmt: skip
        return {"name": name, "datatype": datatype, "shape": list(array.shape),
                "data": orjson.Fragment(b"[" + b",".join(parts) + b"]")}  # fmt: skip
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


def binary_response(
    model_name: str, model_version: str, outputs: Mapping[str, np.ndarray], request: InferRequest
) -> tuple[dict[str, Any], list[bytes]]:
    """The response with the outputs the request wants in binary moved out of the JSON: each
    gets `parameters.binary_data_size`, its bytes follow the JSON header in output order."""
    response = infer_response(model_name, model_version, {}, request.id)
    blobs: list[bytes] = []
    for name, array in outputs.items():
        if not request.binary(name):
            response["outputs"].append(encode_output(name, array))
            continue
        datatype = datatype_of(array)
        blob = to_binary(array, datatype)
        blobs.append(blob)
        shape = list(array.shape)
        response["outputs"].append(
            {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(blob)}}
        )
    return response, blobs
