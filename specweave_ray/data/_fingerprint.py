"""The data fingerprint: a content hash recorded with every record and cache key."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from specweave_ray.exceptions import DataError

__all__ = ["fingerprint"]


def fingerprint(df: pd.DataFrame) -> str:
    """A stable content hash of a frame: column names, dtypes and values (not the index).

    Two frames get the same fingerprint only when names, order, dtypes and values all agree.
    The same data read from CSV and from Parquet therefore match only when the readers produce
    the same dtypes (e.g. an integer column stays int64 in both).

    Returns:
        ``"sha256:"`` followed by 16 hex digits.

    Raises:
        DataError: a column holds unhashable values (lists, dicts).
    """
    digest = hashlib.sha256()
    header = [[str(name), str(dtype)] for name, dtype in df.dtypes.items()]
    digest.update(json.dumps(header).encode("utf-8"))
    try:
        rows = pd.util.hash_pandas_object(df, index=False)
    except TypeError as err:
        raise DataError(f"cannot fingerprint the data: {err}") from err
    digest.update(np.ascontiguousarray(rows.to_numpy(dtype=np.uint64)).tobytes())
    return "sha256:" + digest.hexdigest()[:16]
