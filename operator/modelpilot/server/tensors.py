"""Tensor data of Open Inference Protocol v2 requests: JSON `data` arrays and the binary extension.

JSON data is checked element by element (regular nesting, element types) before numpy sees it, so
a request never makes numpy choose a dtype: one long string among numbers would otherwise give a
fixed-width string array as wide as that string for every element (terabytes from megabytes).
BYTES become object arrays of Python str (variable length). Every tensor is charged to the
request's `Budget` before it is allocated, and long conversions go in chunks, so a decode running
on a worker thread lets the event loop's thread take the GIL between them.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

# V2 datatype -> numpy dtype. BYTES decode to object arrays of str (UTF-8 in JSON and binary).
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
MAX_DIMS = 32
# Memory per BYTES element besides its characters: the array's pointer and the str object's header.
BYTES_OVERHEAD = 64
CHUNK = 1 << 18  # elements per conversion step
_LENGTH = struct.Struct("<I")  # the 4-byte little-endian length before each binary BYTES element


class ProtocolError(Exception):
    """A request the server refuses; `status` is the HTTP status (400 unless stated)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Budget:
    """The decoded-size limit of one request: tensors are charged before they are allocated."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise ProtocolError(
                f"the request's tensors take more than {self.limit} bytes decoded (MODELPILOT_MAX_DECODED_BYTES)", 413
            )


def short(value: Any, limit: int = 80) -> str:
    """repr() of a client's value, cut short: error messages must stay small."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(type(d) is int for d in raw):
        raise ProtocolError(f"{where}: 'shape' must be a list of integers, got {short(raw)}")
    if len(raw) > MAX_DIMS:
        raise ProtocolError(f"{where}: 'shape' has {len(raw)} dimensions; at most {MAX_DIMS} dimensions are allowed")
    if any(d < 0 for d in raw):
        raise ProtocolError(f"{where}: 'shape' must not have negative dimensions, got {raw}")
    return tuple(raw)


def no_elements(where: str, shape: tuple[int, ...]) -> ProtocolError:
    return ProtocolError(f"{where} has no elements (shape {list(shape)}); send at least one value")


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _collect(fn: Callable[[Any], Any], values: list[Any]) -> set[Any]:
    if len(values) <= CHUNK:
        return set(map(fn, values))
    found: set[Any] = set()
    for part in _chunks(values):
        found.update(map(fn, part))
    return found


def _flatten(data: list[Any], where: str) -> tuple[list[Any], set[type]]:
    """Nested JSON arrays -> (row-major flat list, the element types); ragged nesting is refused."""
    level = data
    while True:
        kinds = _collect(type, level)
        if list not in kinds:
            return level, kinds
        if kinds != {list}:
            raise ProtocolError(f"{where}: 'data' is not a regular array (it mixes arrays and values)")
        if len(_collect(len, level)) != 1:
            raise ProtocolError(f"{where}: 'data' is not a regular array (rows of different lengths)")
        flat: list[Any] = []
        for part in _chunks(level):
            flat.extend(itertools.chain.from_iterable(part))
        level = flat


def _fill(values: Sequence[Any], dtype: np.dtype[Any]) -> np.ndarray:
    if len(values) <= CHUNK and dtype.itemsize >= 8:  # the common small request: one call
        return np.array(values, dtype=dtype)
    out = np.empty(len(values), dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # FP32/FP16 overflow is checked after
        for start in range(0, len(values), CHUNK):
            out[start : start + CHUNK] = values[start : start + CHUNK]
    return out


def range_error(where: str, datatype: str) -> ProtocolError:
    """Values that `datatype` cannot hold: the client's mistake, with the datatype's range."""
    dtype = DATATYPES[datatype]
    info: Any = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return ProtocolError(f"{where}: values outside the {datatype} range [{info.min}, {info.max}]")


def check_int_range(array: np.ndarray, where: str, datatype: str) -> None:
    """Raises the range error when integer `array` holds values the integer `datatype` cannot."""
    info = np.iinfo(DATATYPES[datatype])
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise range_error(where, datatype)


def ints(values: Sequence[Any], datatype: str, where: str) -> np.ndarray:
    """Python integers -> an array of the integer `datatype`; values it cannot hold are a range error."""
    dtype = DATATYPES[datatype]
    try:
        wide = _fill(values, np.dtype(np.int64))
    except OverflowError:
        if datatype != "UINT64":
            raise range_error(where, datatype) from None
        try:
            return _fill(values, dtype)
        except OverflowError:
            raise range_error(where, datatype) from None
    check_int_range(wide, where, datatype)
    return wide.astype(dtype, copy=False)


def _floats(values: list[Any], datatype: str, where: str) -> np.ndarray:
    try:
        array = _fill(values, DATATYPES[datatype])
    except OverflowError:  # an integer beyond any float
        raise range_error(where, datatype) from None
    if not np.isfinite(array).all():  # JSON has no infinity: a value overflowed the datatype
        raise range_error(where, datatype)
    return array


def _strings(values: list[Any], budget: Budget) -> np.ndarray:
    budget.charge(len(values) * BYTES_OVERHEAD + sum(sum(map(len, part)) for part in _chunks(values)))
    return _fill(values, DATATYPES["BYTES"])


def from_json(data: Any, datatype: str, shape: tuple[int, ...], where: str, budget: Budget) -> np.ndarray:
    """A JSON `data` array -> an array of `datatype` and `shape`."""
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: 'data' must be a JSON array")
    flat, kinds = _flatten(data, where)
    count = math.prod(shape)
    if len(flat) != count:
        raise ProtocolError(f"{where}: shape {list(shape)} needs {count} values, 'data' has {len(flat)}")
    if count == 0:
        raise no_elements(where, shape)
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        if kinds != {str}:
            raise ProtocolError(f"{where}: datatype BYTES needs strings in 'data'")
        return _strings(flat, budget).reshape(shape)
    budget.charge(count * dtype.itemsize)
    if datatype == "BOOL":
        if kinds != {bool}:
            raise ProtocolError(f"{where}: datatype BOOL needs true/false in 'data'")
        return _fill(flat, dtype).reshape(shape)
    if dtype.kind in "iu":
        if kinds != {int}:
            raise ProtocolError(f"{where}: datatype {datatype} needs integers in 'data'")
        return ints(flat, datatype, where).reshape(shape)
    if not kinds <= {int, float}:
        raise ProtocolError(f"{where}: datatype {datatype} needs numbers in 'data'")
    return _floats(flat, datatype, where).reshape(shape)


def from_binary(raw: memoryview, datatype: str, shape: tuple[int, ...], where: str, budget: Budget) -> np.ndarray:
    """`binary_data_size` bytes of the binary extension -> an array of `datatype` and `shape`:
    little-endian values, BOOL one byte each, BYTES each a 4-byte length and UTF-8 bytes."""
    count = math.prod(shape)
    if count == 0:
        raise no_elements(where, shape)
    if datatype == "BYTES":
        return _binary_strings(raw, count, where, budget).reshape(shape)
    dtype = DATATYPES[datatype]
    need = count * dtype.itemsize
    if len(raw) != need:
        raise ProtocolError(
            f"{where}: shape {list(shape)} of {datatype} needs {need} bytes, binary_data_size is {len(raw)}"
        )
    budget.charge(need)
    if datatype == "BOOL":
        flags = np.frombuffer(raw, dtype=np.uint8)
        if flags.max() > 1:
            raise ProtocolError(f"{where}: BOOL bytes must be 0 or 1")
        array = flags.view(np.bool_)
    else:
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        if not array.dtype.isnative:
            array = array.astype(dtype)
    if not array.flags.aligned:  # its offset in the body is not a multiple of the item size
        array = array.copy()
    return array.reshape(shape)


def _binary_strings(raw: memoryview, count: int, where: str, budget: Budget) -> np.ndarray:
    budget.charge(count * BYTES_OVERHEAD + len(raw))
    out = np.empty(count, dtype=object)
    size, offset = len(raw), 0
    for index in range(count):
        if offset + _LENGTH.size > size:
            raise ProtocolError(f"{where}: the BYTES data ends early: element {index} has no length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > size:
            raise ProtocolError(f"{where}: BYTES element {index} claims {length} bytes, {size - offset} are left")
        try:
            out[index] = str(raw[offset : offset + length], "utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{where}: BYTES element {index} is not UTF-8") from None
        offset += length
    if offset != size:
        raise ProtocolError(f"{where}: the BYTES data has {size - offset} bytes after element {count - 1}")
    return out


def as_bytes(value: Any) -> bytes:
    """A BYTES output element as bytes: bytes as they are, anything else as its UTF-8 text."""
    return value if isinstance(value, bytes) else str(value).encode()


def to_binary(array: np.ndarray, datatype: str) -> bytes:
    """An output tensor in the binary extension's layout (see `from_binary`)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in array.ravel().tolist():
            data = as_bytes(value)
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
