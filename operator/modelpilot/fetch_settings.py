"""What the operator and the model pods' fetch step (`modelpilot fetch`) share, pure: the two
settings the operator passes to the fetch step, its default size cap, and byte sizes as settings
spell them (a plain number of bytes or a Kubernetes-style quantity: "20Gi", "512Mi").

Here rather than in `modelpilot.server`, which the operator never imports (it needs the
`[server]` extra); the runtime uses the same parser for its own size settings.
"""

from __future__ import annotations

import re

MAX_MODEL_BYTES_ENV = "MODELPILOT_MAX_MODEL_BYTES"
ALLOW_LINK_LOCAL_ENV = "MODELPILOT_ALLOW_LINK_LOCAL"
# The fetch step's cap on what one fetch writes, and the sizeLimit of the pods' model volume.
DEFAULT_MAX_MODEL_BYTES = 20 * 2**30

_UNITS = {
    "": 1,
    "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"^\s*([0-9]+)\s*([kKMGT]i?)?\s*$")
# Largest first: format_size picks the largest unit that divides the size exactly.
_BINARY = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def parse_size(text: str, setting: str) -> int:
    """`text` as a positive number of bytes; ValueError naming `setting` otherwise."""
    match = _SIZE.match(text)
    if match is None or (match.group(2) or "") not in _UNITS:
        raise ValueError(f"{setting} must be a number of bytes or a quantity such as 20Gi, got {text!r}")
    size = int(match.group(1)) * _UNITS[match.group(2) or ""]
    if size <= 0:
        raise ValueError(f"{setting} must be positive, got {text!r}")
    return size


def format_size(size: int) -> str:
    """`size` bytes as the shortest exact quantity ("20Gi", "1500Mi", "1000000"); `parse_size`
    reads it back, and so does the API server (an emptyDir sizeLimit)."""
    if size <= 0:
        raise ValueError(f"a size must be positive, got {size}")
    for unit, factor in _BINARY:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
