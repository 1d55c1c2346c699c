"""The validation rows: a CSV or Parquet file (a path or any fsspec URL, optionally compressed),
read as `modelpilot profile` reads training data (modelpilot.cli.profile.read_table).

Feature columns: the model's own feature names when it knows them (an estimator fitted on a
DataFrame, a booster with feature names), in the model's order; otherwise every column but the
target, in file order, which must be as many as the model takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelpilot.optimize.errors import UsageError


@dataclass(frozen=True)
class Validation:
    location: str
    features: tuple[str, ...]
    matrix: np.ndarray  # [rows, features] float64
    target: np.ndarray | None

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])


def load_validation(location: str, target: str | None, n_features: int, names: Sequence[str] | None) -> Validation:
    """Read the rows and check them against the model's features. Raises UsageError."""
    from modelpilot.cli import profile

    try:
        table = profile.read_table(location)
    except profile.UsageError as err:
        raise UsageError(f"validation data: {err}") from None
    columns = list(table.column_names)
    if target is not None and target not in columns:
        raise UsageError(f"no target column {target!r} in {location} (columns: {_shown(columns)})")
    features = pick_features(columns, target, n_features, names)
    if table.num_rows == 0:
        raise UsageError(f"{location} has no rows")
    matrix = np.column_stack([_numeric(profile.column_values(table, name), name) for name in features])
    truth = None if target is None else profile.column_values(table, target)
    return Validation(location, tuple(features), matrix, truth)


def pick_features(columns: Sequence[str], target: str | None, n_features: int,
                  names: Sequence[str] | None) -> list[str]:  # fmt: skip
    """The feature columns in the model's order (see module doc). Raises UsageError."""
    if names is not None:
        known = set(columns)
        missing = [name for name in names if name not in known]
        if missing:
            raise UsageError(f"the data lacks the model's feature column{'s' if len(missing) > 1 else ''} "
                             f"{_shown(missing, quote=True)} (the model takes {_shown(names)}; the data has "
                             f"{_shown(columns)})")  # fmt: skip
        if target is not None and target in names:
            raise UsageError(f"--target {target!r} is one of the model's features")
        return list(names)
    candidates = [c for c in columns if c != target]
    if len(candidates) != n_features:
        hint = " (is one of them the label? pass --target)" if target is None and len(candidates) > n_features else ""
        raise UsageError(f"the model takes {n_features} feature columns; the data has {len(candidates)}{hint}: "
                         f"{_shown(candidates)}")  # fmt: skip
    return candidates


def _numeric(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise UsageError(f"column {name!r} is not numeric ({values.dtype}); optimize needs numeric feature columns")
    return values.astype(np.float64)


def _shown(names: Sequence[str], quote: bool = False, limit: int = 20) -> str:
    shown = [repr(n) if quote else str(n) for n in names[:limit]]
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
