"""The data stage: load, fingerprint, schema, profile, sample and split tabular data.

Every function takes and returns plain values (paths, DataFrames, dicts) so that it can be tested
alone. Bad input always raises :class:`~specweave_ray.exceptions.DataError` naming the file or the
column, what was found, and how to fix it.

Example:
    >>> from specweave_ray.data.datasets import make_fraud
    >>> df = make_fraud(2_000, positive_rate=0.02, seed=0)
    >>> schema = infer_schema(df, target="is_fraud")
    >>> validate(df, schema).shape == df.shape
    True
    >>> X, y = split_xy(df, target="is_fraud")
    >>> X_train, X_test, y_train, y_test = holdout_split(X, y, problem_type="classification")
    >>> len(X_test)
    400
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from specweave_ray.data import _schema as _data_schema
from specweave_ray.data._schema import names as _names
from specweave_ray.exceptions import DataError

if TYPE_CHECKING:
    import pandera.pandas as pa

__all__ = [
    "check_target",
    "fingerprint",
    "holdout_split",
    "infer_schema",
    "is_classification",
    "load_table",
    "profile",
    "read_schema",
    "sample",
    "split_xy",
    "validate",
    "write_eda_report",
    "write_schema",
]


_CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_COMPRESSIONS = {"", ".gz", ".bz2"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_SUPPORTED = ".csv, .csv.gz, .csv.bz2, .tsv, .tsv.gz, .tsv.bz2, .parquet, .pq"
_CLASSIFICATION = {
    "classification", "binary", "binary_classification", "multiclass", "multiclass_classification"
}
# A text column is "numeric with stray text" when at least this share of its values parse.
_MOSTLY_NUMERIC = 0.9


def is_classification(problem_type: str) -> bool:
    """Whether ``problem_type`` names a classification problem (binary, multiclass, ...)."""
    return str(problem_type).strip().lower().replace("-", "_") in _CLASSIFICATION


# --------------------------------------------------------------------------------------- loading
def _table_format(path: Path) -> tuple[str, str | None]:
    """Return ``("csv", delimiter)`` or ``("parquet", None)`` from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in _PARQUET_SUFFIXES:
        return "parquet", None
    compression = last if last in _COMPRESSIONS else ""
    base = suffixes[-2] if compression and len(suffixes) >= 2 else last
    if base in _CSV_DELIMITERS:
        return "csv", _CSV_DELIMITERS[base]
    raise DataError(
        f"cannot read {path}: unknown file extension {''.join(path.suffixes) or '(none)'!r}; "
        f"supported: {_SUPPORTED}"
    )


def _csv_header(path: Path, delimiter: str) -> list[str]:
    lower = path.name.lower()
    opener = gzip.open if lower.endswith(".gz") else bz2.open if lower.endswith(".bz2") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            return next(csv.reader(fh, delimiter=delimiter), [])
    except (OSError, csv.Error):
        return []


def _arrow_error(path: Path, err: Exception, delimiter: str | None) -> DataError:
    """Turn a pyarrow error into a DataError naming the file, and the column when known."""
    message = str(err).strip()
    where = ""
    column = re.search(r"column #(\d+)", message)
    if column and delimiter is not None:
        header = _csv_header(path, delimiter)
        index = int(column.group(1))
        if index < len(header):
            where = f" (column {header[index]!r})"
    row = re.search(r"[Rr]ow #(\d+)", message)
    if row:
        where += f" (row {row.group(1)})"
    return DataError(f"cannot read {path}{where}: {message}")


def _check_mixed_types(table_df: pd.DataFrame, path: Path) -> None:
    """Refuse text columns whose values are numbers except for a few stray text cells."""
    for name in table_df.columns:
        col = table_df[name]
        if not (pd.api.types.is_string_dtype(col) or col.dtype == object):
            continue
        values = col.dropna()
        if values.empty:
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        n_numeric = int(parsed.notna().sum())
        if n_numeric < len(values) and n_numeric >= _MOSTLY_NUMERIC * len(values):
            bad = values[parsed.isna()]
            examples = ", ".join(f"line {i + 2}: {v!r}" for i, v in list(bad.items())[:5])
            raise DataError(
                f"cannot read {path}: column {name!r} holds numbers except {len(bad)} row(s) of "
                f"text ({examples}); fix those cells or leave them empty (read as missing)"
            )


def load_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load a CSV/TSV (optionally gzip/bz2-compressed) or Parquet file into a DataFrame.

    CSV column types are inferred by ``pyarrow.csv``. A column of numbers with a few stray text
    cells is refused (rather than silently read as text), naming the column and the lines.

    Args:
        path: the file; its extension picks the reader (see ``_SUPPORTED``).

    Returns:
        The table as pandas (text columns use pandas' string dtype, integer columns with
        missing values become float64, all-empty columns become float64 NaN).

    Raises:
        DataError: the file is missing, has an unknown extension, cannot be parsed (pyarrow's
            message, with the column name and row when it gives them), has mixed types in a
            column, or has no rows or no columns.
    """
    import pyarrow as pa_arrow
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pa_parquet

    path = Path(path)
    kind, delimiter = _table_format(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path} (resolved to {path.resolve()})")
    try:
        if kind == "parquet":
            table = pa_parquet.read_table(path)
        else:
            table = pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(delimiter=delimiter))
    except (pa_arrow.ArrowException, OSError, UnicodeDecodeError) as err:
        if "Empty CSV file" in str(err):
            raise DataError(f"cannot read {path}: the file is empty") from err
        raise _arrow_error(path, err, delimiter) from err
    if table.num_columns == 0 or table.num_rows == 0:
        raise DataError(
            f"cannot use {path}: it has {table.num_rows} row(s) and {table.num_columns} "
            "column(s); a data file needs a header and at least one row"
        )
    for i, field in enumerate(table.schema):
        if pa_arrow.types.is_null(field.type):  # an all-empty CSV column
            table = table.set_column(i, field.name, table.column(i).cast(pa_arrow.float64()))
    df = table.to_pandas()
    if kind == "csv":
        _check_mixed_types(df, path)
    return df


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


# ---------------------------------------------------------------------------------------- schema
def infer_schema(
    df: pd.DataFrame, *, target: str | None = None, max_categories: int = 50
) -> pa.DataFrameSchema:
    """Infer a pandera schema from ``df`` with ``pa.infer_schema``, then tighten it.

    * numeric columns keep pandera's in-range checks (observed min/max);
    * text/categorical columns with at most ``max_categories`` distinct values get an ``isin``
      check of those values (unseen ones may be tolerated at :func:`validate` time);
    * datetime columns lose their range checks (new data is later by nature);
    * ``nullable`` is true exactly where ``df`` has missing values;
    * the target column is optional (``required: false``), so prediction inputs validate;
    * the index is not checked, extra columns are allowed, values are coerced to the dtypes.

    Args:
        df: the training data.
        target: the target column, if any.
        max_categories: the most distinct values a text column may have to get an ``isin``.

    Returns:
        A ``pandera.pandas.DataFrameSchema``.

    Raises:
        DataError: ``df`` is empty, ``target`` is not a column, or pandera cannot infer.
    """
    return _data_schema.infer(df, target=target, max_categories=max_categories)


def write_schema(schema: pa.DataFrameSchema, path: str | os.PathLike[str]) -> Path:
    """Write ``schema`` as pandera YAML to ``path`` atomically (temp file, then rename).

    Raises:
        DataError: the schema cannot be serialised.
    """
    return _data_schema.write(schema, path)


def read_schema(path: str | os.PathLike[str]) -> pa.DataFrameSchema:
    """Read a schema written by :func:`write_schema`.

    Raises:
        DataError: the file is missing or is not a valid pandera YAML schema (names the file).
    """
    return _data_schema.read(path)


def validate(
    df: pd.DataFrame,
    schema: pa.DataFrameSchema,
    *,
    source: str = "<data>",
    unseen_category_limit: float = 0.0,
) -> pd.DataFrame:
    """Validate ``df`` against ``schema``, collecting every violation at once.

    Args:
        df: the data.
        schema: from :func:`infer_schema` or :func:`read_schema`.
        source: how to name the data in the message (a file name).
        unseen_category_limit: categories absent at inference time are accepted in a column
            while their rows are at most this share of all rows (0.0: none accepted).

    Returns:
        The validated frame, with values coerced to the schema's dtypes.

    Raises:
        DataError: one message listing every violation (from pandera's ``failure_cases``):
            column, check, count and share of rows, a few failing values and row labels.
    """
    return _data_schema.validate_frame(
        df, schema, source=source, unseen_category_limit=unseen_category_limit
    )


# --------------------------------------------------------------------------------------- profile
def profile(
    df: pd.DataFrame, *, target: str, problem_type: str, max_categories: int = 50
) -> dict[str, Any]:
    """Profile ``df`` for the EDA report and the data-quality gates (JSON-serialisable).

    Args:
        df: the data, target included.
        target: the target column.
        problem_type: ``"classification"`` (or binary/multiclass), ``"regression"``, ...
        max_categories: text columns with more distinct values are high-cardinality.

    Returns:
        ``rows``, ``columns``, ``problem_type``, ``dtypes``, ``missing`` (count per column that
        has any), ``duplicate_rows``, ``constant_columns``, ``all_nan_columns``,
        ``high_cardinality_columns``, ``numeric`` (mean/std/quantiles/skew per numeric column),
        ``target`` (class counts, minority share and imbalance ratio; or quantiles, mean, std,
        skew), ``leakage_suspects`` (``{column, metric, score}`` for columns that alone predict
        the target near-perfectly: ROC AUC >= 0.98 of a depth-4 tree on that column, or
        max(|corr|, R² of a depth-6 tree) >= 0.98 for regression; computed on at most 50k rows)
        and ``fingerprint``.

    Raises:
        DataError: ``target`` is not a column.
    """
    from specweave_ray.data import _profile as _data_profile

    return _data_profile.build_profile(
        df, target=target, problem_type=problem_type, max_categories=max_categories
    )


def write_eda_report(
    df: pd.DataFrame,
    profile: dict[str, Any],
    directory: str | os.PathLike[str],
    *,
    target: str,
    problem_type: str,
) -> Path:
    """Write ``eda-summary.md`` and its PNG plots into ``directory``.

    Plots: ``numeric-histograms.png``, ``target-balance.png`` (class counts on a log scale, or
    the target's histogram) and ``correlation-heatmap.png`` (with two or more numeric columns).
    matplotlib is imported here, and drawn through its object API on the Agg canvas: no GUI,
    no change to the process-wide backend.

    Args:
        df: the data the profile was computed on.
        profile: from :func:`profile`.
        directory: created when missing.
        target: the target column.
        problem_type: as given to :func:`profile`.

    Returns:
        The path of ``eda-summary.md``.
    """
    from specweave_ray.data import _profile as _data_profile

    return _data_profile.write_report(
        df, profile, directory, target=target, problem_type=problem_type
    )


# ---------------------------------------------------------------------------- sampling, splits
def sample(
    df: pd.DataFrame, *, target: str, n: int = 1000, problem_type: str, seed: int = 0
) -> pd.DataFrame:
    """Draw ``n`` rows: stratified by ``target`` for classification (every class keeps at least
    one row, however rare), uniformly at random otherwise. Rows keep their original order.

    Raises:
        DataError: ``n`` < 1 or ``target`` is not a column.
    """
    if n < 1:
        raise DataError(f"sample size n must be >= 1, got {n!r}")
    if target not in df.columns:
        raise DataError(f"target column {target!r} is not in the data: {_names(df.columns)}")
    if n >= len(df):
        return df.copy()
    rng = np.random.default_rng(seed)
    if not is_classification(problem_type):
        return df.iloc[np.sort(rng.choice(len(df), size=n, replace=False))].copy()
    codes, _ = pd.factorize(df[target], use_na_sentinel=False)
    counts = np.bincount(codes)
    quota = np.maximum(1, np.floor(counts * n / len(df))).astype(np.int64)
    quota = np.minimum(quota, counts)
    # Hand out what rounding left over to the largest classes, or take back what the
    # one-row minimum added.
    order = np.argsort(-counts)
    i = 0
    while quota.sum() != n and i < 10 * len(counts) + n:
        k = order[i % len(order)]
        if quota.sum() < n and quota[k] < counts[k]:
            quota[k] += 1
        elif quota.sum() > n and quota[k] > 1:
            quota[k] -= 1
        i += 1
    picked = [
        rng.choice(np.flatnonzero(codes == k), size=int(q), replace=False)
        for k, q in enumerate(quota)
    ]
    return df.iloc[np.sort(np.concatenate(picked))].copy()


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value, for readable messages."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def check_target(y: pd.Series, problem_type: str) -> None:
    """Check the target is usable for ``problem_type``.

    Raises:
        DataError: the target has missing values, a classification target has fewer than two
            classes, or a regression target is not numeric.
    """
    name = y.name
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(
            f"target column {name!r} has {n_missing} missing value(s); drop or fill those rows"
        )
    if is_classification(problem_type):
        classes = y.unique()
        if len(classes) < 2:
            raise DataError(
                f"target column {name!r} has a single class ({_plain(classes[0])!r} in all "
                f"{len(y)} rows); classification needs at least two classes"
            )
    elif problem_type == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(f"regression target {name!r} must be numeric, got dtype {y.dtype}")


def split_xy(
    df: pd.DataFrame, *, target: str, problem_type: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Split ``df`` into features ``X`` and target ``y``.

    Args:
        df: the data.
        target: the target column.
        problem_type: when given, :func:`check_target` checks ``y`` for it.

    Raises:
        DataError: ``target`` is absent (the message lists the columns), a feature column is
            entirely missing, or ``check_target`` fails.
    """
    if target not in df.columns:
        raise DataError(f"target column {target!r} is not in the data: {_names(df.columns)}")
    X = df.drop(columns=[target])
    all_nan = [str(c) for c in X.columns if X[c].isna().all()]
    if all_nan:
        raise DataError(
            f"feature column(s) {', '.join(map(repr, all_nan))} are entirely missing; drop them"
        )
    y = df[target]
    if problem_type is not None:
        check_target(y, problem_type)
    return X, y


def holdout_split(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    problem_type: str,
    test_size: float = 0.2,
    seed: int = 0,
    time_column: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Hold out a test set: the latest rows by ``time_column`` when given, else random
    (stratified by ``y`` for classification).

    Returns:
        ``X_train, X_test, y_train, y_test``.

    Raises:
        DataError: ``test_size`` is not in (0, 1), ``time_column`` is absent, a class is too
            rare to stratify, or the split leaves an empty side.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size must be in (0, 1), got {test_size!r}")
    if len(X) != len(y):
        raise DataError(f"X has {len(X)} rows but y has {len(y)}")
    if time_column is not None:
        if time_column not in X.columns:
            raise DataError(f"time column {time_column!r} is not in X: {_names(X.columns)}")
        n_test = math.ceil(test_size * len(X))
        if n_test >= len(X):
            raise DataError(f"a {test_size} time split of {len(X)} rows leaves no training rows")
        order = np.argsort(X[time_column].to_numpy(), kind="stable")
        train, test = order[: len(X) - n_test], order[len(X) - n_test :]
        return X.iloc[train], X.iloc[test], y.iloc[train], y.iloc[test]
    stratify = y if is_classification(problem_type) else None
    if stratify is not None:
        counts = y.value_counts()
        if counts.min() < 2:
            raise DataError(
                f"class {_plain(counts.idxmin())!r} of {y.name!r} has a single row; a stratified "
                "split needs at least two per class: drop it or add rows"
            )
    try:
        parts = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as err:
        raise DataError(f"cannot split {len(X)} rows with test_size={test_size}: {err}") from err
    X_train, X_test, y_train, y_test = parts
    return X_train, X_test, y_train, y_test
