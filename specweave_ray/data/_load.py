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
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from specweave_ray import problems
from specweave_ray.data import _schema as _data_schema
from specweave_ray.data._schema import names as _names
from specweave_ray.exceptions import DataError
from specweave_ray.problems import ProblemType
from specweave_ray.problems._base import split_target

if TYPE_CHECKING:
    import pandera.pandas as pa

__all__ = [
    "check_target",
    "holdout_split",
    "infer_schema",
    "load_table",
    "read_schema",
    "sample",
    "split_xy",
    "validate",
    "write_schema",
]


_CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_COMPRESSIONS = {"", ".gz", ".bz2"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_SUPPORTED = ".csv, .csv.gz, .csv.bz2, .tsv, .tsv.gz, .tsv.bz2, .parquet, .pq"
# A text column is "numeric with stray text" when at least this share of its values parse.
_MOSTLY_NUMERIC = 0.9
# A number written with thousands separators, as spreadsheets export it: "1,234.50", "-12,000".
_GROUPED = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?$")

logger = logging.getLogger(__name__)


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


def _numbers_as_text(values: pd.Series) -> pd.Series:
    """``values`` (text, no missing) as numbers, thousands separators dropped where a value is
    written with them; NaN where a value is not a number."""
    text = values.astype(str).str.strip()
    grouped = text.str.match(_GROUPED) & text.str.contains(",", regex=False)
    return pd.to_numeric(text.where(~grouped, text.str.replace(",", "", regex=False)), errors="coerce")


def _read_grouped_numbers(table_df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Text columns whose every value is a number, some written with thousands separators
    (``"1,234.50"``: the quotes keep the comma from splitting the field), become numbers:
    int64 where every value is whole and none is missing, else float64."""
    for name in table_df.columns:
        col = table_df[name]
        if not (pd.api.types.is_string_dtype(col) or col.dtype == object):
            continue
        text = col.dropna().astype(str).str.strip()
        values = text[text != ""]  # an empty text cell is a missing number
        if values.empty or not values.str.match(_GROUPED).all() or not values.str.contains(",", regex=False).any():
            continue
        numbers = _numbers_as_text(values).reindex(col.index).astype("float64")
        whole = not numbers.isna().any() and not values.str.contains(".", regex=False).any()
        table_df[name] = numbers.astype("int64") if whole else numbers
        logger.info("%s: column %r is numbers written with thousands separators (%r); read as numbers",
                    path, name, str(values.iloc[0]))
    return table_df


def _check_mixed_types(table_df: pd.DataFrame, path: Path) -> None:
    """Refuse text columns whose values are numbers except for a few stray text cells."""
    for name in table_df.columns:
        col = table_df[name]
        if not (pd.api.types.is_string_dtype(col) or col.dtype == object):
            continue
        values = col.dropna()
        if values.empty:
            continue
        parsed = _numbers_as_text(values)
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

    CSV column types are inferred by ``pyarrow.csv``. A column of numbers written with thousands
    separators (``"1,234.50"``) is read as numbers. A column of numbers with a few stray text
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
        df = _read_grouped_numbers(df, path)
        _check_mixed_types(df, path)
    return df


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


# ---------------------------------------------------------------------------- sampling, splits
def sample(
    df: pd.DataFrame, *, target: str, n: int = 1000, problem_type: str | ProblemType, seed: int = 0
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
    return problems.get(problem_type).sample(df, target=target, n=n, seed=seed)


def check_target(y: pd.Series, problem_type: str | ProblemType) -> None:
    """Check the target is usable for ``problem_type``.

    Raises:
        DataError: the target has missing values, a classification target has fewer than two
            classes, or a regression target is not numeric.
    """
    problems.get(problem_type).check_target(y)


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
    X, y = split_target(df, target)
    if problem_type is not None:
        check_target(y, problem_type)
    return X, y


def holdout_split(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    problem_type: str | ProblemType,
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
    return problems.get(problem_type).holdout_split(X, y, test_size=test_size, seed=seed,
                                                    time_column=time_column)
