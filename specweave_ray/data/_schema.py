"""Schema inference, storage and validation behind :mod:`specweave_ray.data._load` (pandera).

The public, documented entry points are the ``data`` module's ``infer_schema``,
``write_schema``, ``read_schema`` and ``validate``; this module holds their mechanics.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from specweave_ray._fs import atomic_write_text
from specweave_ray.exceptions import DataError

if TYPE_CHECKING:
    import pandera.pandas as pa

logger = logging.getLogger("specweave_ray.data._load")

_CHECK_LABEL_MAX = 70  # an isin check over 50 categories would flood the message


def is_text(series: pd.Series) -> bool:
    """Whether ``series`` holds text-like values (string, categorical or object dtype)."""
    return (
        pd.api.types.is_string_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
        or series.dtype == object
    )


def names(columns: Any, limit: int = 30) -> str:
    """``"available columns: a, b, ..."`` for error messages."""
    listed = [str(c) for c in columns]
    more = f", ... ({len(listed) - limit} more)" if len(listed) > limit else ""
    return "available columns: " + ", ".join(listed[:limit]) + more


def infer(df: pd.DataFrame, *, target: str | None, max_categories: int) -> pa.DataFrameSchema:
    """See :func:`specweave_ray.data._load.infer_schema`."""
    import pandera.pandas as pa

    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"cannot infer a schema from an empty frame (shape {df.shape})")
    if target is not None and target not in df.columns:
        raise DataError(f"target column {target!r} is not in the data: {names(df.columns)}")
    try:
        inferred = pa.infer_schema(df)
    except Exception as err:  # pandera raises assorted errors on exotic dtypes
        raise DataError(f"cannot infer a schema: {type(err).__name__}: {err}") from err
    columns = {}
    for name, column in inferred.columns.items():
        series = df[name]
        checks = list(column.checks)
        if is_text(series):
            values = series.dropna().astype(str).unique()
            checks = [pa.Check.isin(sorted(values))] if len(values) <= max_categories else []
        elif pd.api.types.is_datetime64_any_dtype(series) or series.isna().all():
            checks = []
        columns[name] = pa.Column(
            column.dtype,
            checks=checks,
            nullable=bool(series.isna().any()),
            required=name != target,
            description="target" if name == target else None,
            name=name,
        )
    return pa.DataFrameSchema(columns, coerce=True, strict=False)


def write(schema: pa.DataFrameSchema, path: str | os.PathLike[str]) -> Path:
    """See :func:`specweave_ray.data._load.write_schema`."""
    path = Path(path)
    try:
        text = schema.to_yaml()
    except Exception as err:
        raise DataError(f"cannot serialise the schema for {path}: {err}") from err
    if text is None:
        raise DataError(f"cannot serialise the schema for {path}: pandera returned nothing")
    return atomic_write_text(path, text)


def read(path: str | os.PathLike[str]) -> pa.DataFrameSchema:
    """See :func:`specweave_ray.data._load.read_schema`."""
    import pandera.pandas as pa

    path = Path(path)
    if not path.is_file():
        raise DataError(f"schema file not found: {path}")
    try:
        schema = pa.DataFrameSchema.from_yaml(path)
    except Exception as err:
        raise DataError(f"cannot read the schema {path}: {type(err).__name__}: {err}") from err
    if not isinstance(schema, pa.DataFrameSchema):
        raise DataError(f"cannot read the schema {path}: it does not describe a DataFrame")
    return schema


def _tolerate_unseen(
    df: pd.DataFrame, schema: pa.DataFrameSchema, limit: float
) -> pa.DataFrameSchema:
    """Drop ``isin`` checks whose unseen values cover at most ``limit`` of the rows."""
    for name, column in schema.columns.items():
        if name not in df.columns or not len(df):
            continue
        kept = []
        for check in column.checks:
            allowed = (check.statistics or {}).get("allowed_values")
            if check.name == "isin" and allowed is not None:
                values = df[name].dropna().astype(str)
                share = float((~values.isin([str(v) for v in allowed])).sum()) / len(df)
                if 0 < share <= limit:
                    logger.info("column %r: %.2f%% unseen categories tolerated", name, 100 * share)
                    continue
            kept.append(check)
        if len(kept) != len(column.checks):
            schema = schema.update_column(name, checks=kept)
    return schema


def _format_failures(source: str, cases: pd.DataFrame, n_rows: int) -> str:
    """One line per (column, check) from pandera's ``failure_cases``."""
    cases = cases.copy()
    cases["check"] = cases["check"].astype(str)
    missing = cases["check"] == "column_in_dataframe"
    cases["column"] = cases["column"].astype(object)
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    cases["column"] = cases["column"].where(cases["column"].notna(), "<frame>")
    broken = set(cases.loc[cases["check"].str.startswith("coerce_dtype"), "column"])
    lines = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        if column in broken and not check.startswith("coerce_dtype"):
            continue  # the column has the wrong type: its other checks cannot be judged
        if check == "column_in_dataframe":
            lines.append(f"  - column {column!r}: missing")
            continue
        label = check if len(check) <= _CHECK_LABEL_MAX else check[: _CHECK_LABEL_MAX - 3] + "..."
        rows = [int(i) for i in group["index"].dropna().tolist()]
        values = list(dict.fromkeys(map(repr, group["failure_case"].tolist())))[:5]
        if rows:
            share = 100 * len(rows) / max(n_rows, 1)
            lines.append(
                f"  - column {column!r}: {label} failed for {len(rows)} row(s) ({share:.2f}%); "
                f"values {', '.join(values)}; rows {rows[:5]}"
            )
        else:
            lines.append(f"  - column {column!r}: {label} failed: {', '.join(values)}")
    return f"{source} does not match its schema ({len(lines)} violation(s)):\n" + "\n".join(lines)


def validate_frame(
    df: pd.DataFrame, schema: pa.DataFrameSchema, *, source: str, unseen_category_limit: float
) -> pd.DataFrame:
    """See :func:`specweave_ray.data._load.validate`."""
    import pandera.errors as pa_errors

    if not 0.0 <= unseen_category_limit <= 1.0:
        raise DataError(f"unseen_category_limit must be in [0, 1], got {unseen_category_limit!r}")
    checked = _tolerate_unseen(df, schema, unseen_category_limit)
    try:
        return checked.validate(df, lazy=True)
    except pa_errors.SchemaErrors as err:
        raise DataError(_format_failures(source, err.failure_cases, len(df))) from err
    except pa_errors.SchemaError as err:
        raise DataError(f"{source} does not match its schema: {err}") from err
