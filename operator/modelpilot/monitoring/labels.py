"""One text per value, the same in the profile, the drift bins and the feedback join.

A class label or a category is compared as text, spelled as the response's JSON spells it: `true` /
`false` for booleans, `1` for the integer 1 (and for 1.0, since a CSV column with a missing value
turns integers into floats), the string itself for strings, UTF-8 for bytes. Missing values (None,
NaN) have no text; for feature values (`category_text`) neither has the empty string, which is how
a CSV file writes a missing text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def label_text(value: Any) -> str | None:
    """The text of one value, or None when the value is missing (None, NaN)."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def label_texts(values: np.ndarray) -> list[str | None]:
    """label_text of every element of a 1-D array, with the common dtypes done in bulk."""
    kind = values.dtype.kind
    if kind == "b":
        return ["true" if v else "false" for v in values.tolist()]
    if kind in "iu":
        return [str(v) for v in values.tolist()]
    if kind == "U":
        return list(values.tolist())
    return [label_text(v) for v in values.tolist()]


def category_text(value: Any) -> str | None:
    """label_text of a categorical feature's value, with the empty string missing too."""
    text = value if type(value) is str else label_text(value)
    return text or None
