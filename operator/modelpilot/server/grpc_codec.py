"""Open Inference Protocol v2 over gRPC: a `ModelInferRequest` -> the `InferRequest` REST decodes
to, and the model's outputs -> a `ModelInferResponse`.

Plain functions over protobuf messages and numpy arrays (no grpc import), checked like REST
requests: the same datatypes, shape rules, decoded-size budget and error messages
(`ProtocolError`). Tensor values come as typed `contents` (one repeated field per datatype) or as
`raw_input_contents` (what tritonclient sends): one entry per input, in the layout of REST's binary
extension, so `tensors.from_binary` decodes them.

Outputs go back raw (`raw_output_contents`) when the request sent raw inputs (tritonclient reads
numeric outputs only from there), asked for it (`binary_data_output` on the request or
`binary_data` on an output) or an output has no typed field (FP16); else as typed `contents`.
A response never mixes the two: the protocol allows one or the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelpilot.server.codec import Limits, Prepared, checked
from modelpilot.server.loaders import Model
from modelpilot.server.proto import grpc_predict_v2_pb2 as pb
from modelpilot.server.protocol import InferRequest, collect_inputs, datatype_of, input_header, refuse_shared_memory
from modelpilot.server.tensors import (
    BYTES_OVERHEAD,
    DATATYPES,
    Budget,
    ProtocolError,
    as_bytes,
    from_binary,
    ints,
    no_elements,
    short,
    to_binary,
)

# The InferTensorContents field of each datatype; FP16 has none (raw only).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Request parameters that ask for raw outputs (the names REST's binary extension uses).
BINARY_OUTPUT = "binary_data_output"
BINARY_DATA = "binary_data"


def parameter_values(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A protobuf parameter map -> plain values (a parameter with no value set is None)."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values


def _flag(parameters: Mapping[str, Any], name: str, where: str) -> bool | None:
    value = parameters.get(name)
    if value is not None and not isinstance(value, bool):
        raise ProtocolError(f"{where}: parameter {name} must be a bool_param, got {short(value)}")
    return value


def _from_contents(
    contents: pb.InferTensorContents, datatype: str, shape: tuple[int, ...], where: str, budget: Budget
) -> np.ndarray:
    if datatype not in CONTENTS_FIELD:
        raise ProtocolError(f"{where}: datatype {datatype} has no typed contents; send it in raw_input_contents")
    field = CONTENTS_FIELD[datatype]
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise ProtocolError(f"{where}: datatype {datatype} takes its values in contents.{field}, the request "
                            f"sets contents.{others[0]}")  # fmt: skip
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise ProtocolError(f"{where}: shape {list(shape)} needs {count} values, contents.{field} has {len(values)}")
    if count == 0:
        raise no_elements(where, shape)
    if datatype == "BYTES":
        budget.charge(count * BYTES_OVERHEAD + sum(len(v) for v in values))
        out = np.empty(count, dtype=object)
        for index, value in enumerate(values):
            try:
                out[index] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError(f"{where}: BYTES element {index} is not UTF-8") from None
        return out.reshape(shape)
    dtype = DATATYPES[datatype]
    budget.charge(count * dtype.itemsize)
    if dtype.kind in "iu" and dtype.itemsize < 4:  # INT8/16 and UINT8/16 travel as 32-bit values
        return ints(values, datatype, where).reshape(shape)
    return np.fromiter(values, dtype=dtype, count=count).reshape(shape)


def _input(
    tensor: pb.ModelInferRequest.InferInputTensor, index: int, raw: bytes | None, budget: Budget
) -> tuple[str, str, np.ndarray]:
    where, shape = input_header(index, tensor.name, tensor.datatype, list(tensor.shape))
    refuse_shared_memory(tensor.parameters, where)
    if raw is None:
        return tensor.name, tensor.datatype, _from_contents(tensor.contents, tensor.datatype, shape, where, budget)
    if tensor.contents.ListFields():
        raise ProtocolError(f"{where} has both contents and raw_input_contents; give one")
    # A writable copy, as REST's binary bodies are: a model may change its inputs in place.
    data = memoryview(bytearray(raw))
    return tensor.name, tensor.datatype, from_binary(data, tensor.datatype, shape, where, budget)


def decode_request(message: pb.ModelInferRequest, max_decoded_bytes: int) -> InferRequest:
    """A ModelInferRequest -> InferRequest; raises ProtocolError on anything malformed and a 413
    one past `max_decoded_bytes`."""
    if not message.inputs:
        raise ProtocolError("'inputs' must be a non-empty array")
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise ProtocolError(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; "
                            "give one per input, in input order")  # fmt: skip
    budget = Budget(max_decoded_bytes)
    inputs, datatypes = collect_inputs(
        _input(tensor, index, raw[index] if raw else None, budget) for index, tensor in enumerate(message.inputs)
    )
    parameters = parameter_values(message.parameters)
    binary_default = _flag(parameters, BINARY_OUTPUT, "the request")
    binary_outputs: dict[str, bool] = {}
    for output in message.outputs:
        flag = _flag(parameter_values(output.parameters), BINARY_DATA, f"output '{output.name}'")
        if flag is not None:
            binary_outputs[output.name] = flag
    return InferRequest(
        inputs=inputs,
        datatypes=datatypes,
        outputs=[o.name for o in message.outputs] or None,
        id=message.id or None,
        parameters=parameters,
        binary_outputs=binary_outputs,
        binary_default=bool(raw) if binary_default is None else binary_default,
    )


def payload_bytes(message: pb.ModelInferRequest) -> int:
    """About how many bytes the request's tensor values take (what decides whether it is decoded
    off the event loop). Not ByteSize(): that serialises the message again (~2 ms per MB)."""
    size = sum(len(raw) for raw in message.raw_input_contents)
    for tensor in message.inputs:
        for field, values in tensor.contents.ListFields():
            size += sum(len(v) for v in values) if field.name == "bytes_contents" else 8 * len(values)
    return size


def prepare(message: pb.ModelInferRequest, model: Model, limits: Limits) -> Prepared:
    """Decode and check a ModelInferRequest against the model (as `codec.prepare` does a body)."""
    return checked(decode_request(message, limits.max_decoded_bytes), model)


def _contents_values(array: np.ndarray, datatype: str) -> list[Any]:
    flat = array.ravel().tolist()
    if datatype == "BYTES":
        return [as_bytes(v) for v in flat]
    return flat


def encode_response(
    model_name: str, model_version: str, result: Mapping[str, np.ndarray], request: InferRequest
) -> pb.ModelInferResponse:
    """The ModelInferResponse of `result`; raises ValueError for outputs of no V2 datatype."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request.id or "")
    typed = {name: datatype_of(array) for name, array in result.items()}
    raw = any(request.binary(name) or datatype not in CONTENTS_FIELD for name, datatype in typed.items())
    for name, array in result.items():
        datatype = typed[name]
        output = response.outputs.add(name=name, datatype=datatype, shape=[int(d) for d in np.shape(array)])
        if raw:
            response.raw_output_contents.append(to_binary(np.asarray(array), datatype))
        else:
            getattr(output.contents, CONTENTS_FIELD[datatype]).extend(_contents_values(np.asarray(array), datatype))
    return response
