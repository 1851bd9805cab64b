"""Shapes shared by the emulated vendors: ISO timestamps and JSON-safe records."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd


def iso(ts: float | None) -> str | None:
    """Epoch seconds to the vendors' ISO-8601 UTC form with milliseconds."""
    if ts is None or (isinstance(ts, float) and np.isnan(ts)):
        return None
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_array(a: np.ndarray) -> np.ndarray:
    s = pd.to_datetime(pd.Series(a), unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = s.str.slice(0, 23) + "Z"
    return np.where(np.isnan(a.astype(float)), None, out.to_numpy(dtype=object))


def _py(v):
    """A JSON-safe Python value (numpy scalars unwrapped, NaN and NaT as None)."""
    if v is None:
        return None
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _records(cols: dict[str, np.ndarray]) -> list[dict]:
    """Column arrays to a list of JSON-safe dicts (no pandas: it would turn None into NaN)."""
    names = list(cols)
    n = max(np.size(v) if not isinstance(v, str) else 1 for v in cols.values())
    arrays = [np.broadcast_to(np.asarray(cols[k], dtype=object), (n,)) for k in names]
    rows = zip(*arrays, strict=True)
    return [{k: _py(v) for k, v in zip(names, row, strict=True)} for row in rows]
