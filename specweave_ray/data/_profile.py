"""Profiling and the EDA report behind :mod:`specweave_ray.data._load`.

The public, documented entry points are ``data.profile`` and ``data.write_eda_report``; this
module holds their mechanics. It imports the ``data`` module (never the other way round at import
time), so ``import specweave_ray.data._load`` stays free of scikit-learn and matplotlib.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray import problems
from specweave_ray._fs import atomic_write_text, to_jsonable
from specweave_ray.data._fingerprint import fingerprint
from specweave_ray.data._schema import is_text, names
from specweave_ray.exceptions import DataError
from specweave_ray.problems import ProblemType

_LEAKAGE_THRESHOLD = 0.98
_LEAKAGE_MAX_ROWS = 50_000  # enough to tell 0.98 from 0.95; keeps 100k x 15 near a second
# Numbers in a notation load_table does not read ("1.234,50", "12,5", "$1,200", "15%"): digits
# with separators, an optional sign, currency symbol, percent sign or spaces.
_NUMBER_LIKE = re.compile(r"^[+-]?[$€£]?\s?\d[\d.,' ]*%?$")
_NUMBER_LIKE_SHARE = 0.9

logger = logging.getLogger(__name__)


def _numbers_as_text(df: pd.DataFrame, target: str) -> list[dict[str, str]]:
    """Text columns whose values are numbers in a notation read as text (they would be one-hot
    encoded): ``{column, example, fix}``."""
    out = []
    for name in df.columns:
        col = df[name]
        if name == target or not is_text(col):
            continue
        text = col.dropna().astype(str).str.strip()
        text = text[text != ""].head(10_000)
        if text.empty or text.str.match(_NUMBER_LIKE).mean() < _NUMBER_LIKE_SHARE:
            continue
        example = str(text[text.str.match(_NUMBER_LIKE)].iloc[0])
        out.append({"column": str(name), "example": example, "fix": (
            "write plain numbers (1234.5), or ',' thousands separators with '.' decimals "
            "(\"1,234.50\"), which load as numbers; drop currency and % signs")})
        logger.warning("column %r holds numbers written as text (e.g. %r); they are read as text and "
                       "one-hot encoded: %s", str(name), example, out[-1]["fix"])
    return out


def _encoded(x: pd.Series) -> np.ndarray | None:
    """One column as float64 codes or values for the single-column leakage check."""
    if is_text(x) or pd.api.types.is_bool_dtype(x):
        codes = x.astype("category").cat.codes.to_numpy(dtype=np.float64)
        return np.where(codes < 0, np.nan, codes)
    if pd.api.types.is_numeric_dtype(x):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(x):
        return x.astype("int64").to_numpy(dtype=np.float64)
    return None


def _leakage_suspects(
    df: pd.DataFrame, *, target: str, problem: ProblemType, skip: set[str]
) -> list[dict[str, Any]]:
    frame = df[df[target].notna()]
    if len(frame) > _LEAKAGE_MAX_ROWS:
        frame = problem.sample(frame, target=target, n=_LEAKAGE_MAX_ROWS)
    y = frame[target]
    if len(frame) < 10 or y.nunique() < 2:
        return []
    suspects = []
    for name in frame.columns:
        if name == target or name in skip or (values := _encoded(frame[name])) is None:
            continue
        score, metric = problem.leakage_score(values, y)
        if math.isfinite(score) and score >= _LEAKAGE_THRESHOLD:
            suspects.append({"column": str(name), "metric": metric, "score": round(score, 4)})
    return suspects


def profile(
    df: pd.DataFrame, *, target: str, problem_type: str | ProblemType, max_categories: int = 50
) -> dict[str, Any]:
    """Profile ``df`` for the EDA report and the data-quality gates (JSON-serialisable).

    Args:
        df: the data, target included.
        target: the target column.
        problem_type: a problem type or its name; it decides the target section and the
            leakage score.
        max_categories: text columns with more distinct values are high-cardinality.

    Returns:
        ``rows``, ``columns``, ``problem_type``, ``dtypes``, ``missing`` (count per column that
        has any), ``duplicate_rows``, ``constant_columns``, ``all_nan_columns``,
        ``high_cardinality_columns``, ``numeric`` (mean/std/quantiles/skew per numeric column),
        ``target`` (class counts, minority share and imbalance ratio; or quantiles, mean, std,
        skew), ``leakage_suspects`` (``{column, metric, score}`` for columns that alone predict
        the target near-perfectly: ROC AUC >= 0.98 of a depth-4 tree on that column, or
        max(|corr|, R² of a depth-6 tree) >= 0.98 for regression; computed on at most 50k rows)
        ``numbers_as_text`` (``{column, example, fix}`` for text columns of numbers in a
        notation read as text, e.g. ``"1.234,50"`` or ``"$1,200"``) and ``fingerprint``.

    Raises:
        DataError: ``target`` is not a column.
    """
    if target not in df.columns:
        raise DataError(f"target column {target!r} is not in the data: {names(df.columns)}")
    problem = problems.get(problem_type)
    n = len(df)
    missing = df.isna().sum()
    nunique = df.nunique(dropna=False)
    all_nan = [str(c) for c in df.columns if n and missing[c] == n]
    constant = [str(c) for c in df.columns if nunique[c] <= 1]
    high_card = [
        str(c) for c in df.columns if c != target and is_text(df[c]) and nunique[c] > max_categories
    ]
    numeric = {}
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            q = col.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).to_numpy()
            numeric[str(name)] = {
                "mean": col.mean(), "std": col.std(), "min": q[0], "p25": q[1], "median": q[2],
                "p75": q[3], "max": q[4], "skew": col.skew(), "missing": int(missing[name]),
            }
    y = df[target]
    target_info: dict[str, Any] = {"name": str(target), "missing": int(y.isna().sum())}
    target_info.update(problem.target_profile(y))
    skip = set(all_nan) | set(constant) | set(high_card)
    suspects = _leakage_suspects(df, target=target, problem=problem, skip=skip)
    extra = problem.data_profile(df.drop(columns=[target]), y)
    return to_jsonable({
        **({problem.name: extra} if extra else {}),
        "rows": n,
        "columns": int(df.shape[1]),
        "problem_type": problem.name,
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "missing": {str(c): int(v) for c, v in missing.items() if v},
        "duplicate_rows": int(df.duplicated().sum()),
        "constant_columns": constant,
        "all_nan_columns": all_nan,
        "high_cardinality_columns": high_card,
        "numeric": numeric,
        "target": target_info,
        "leakage_suspects": suspects,
        "numbers_as_text": _numbers_as_text(df, target),
        "fingerprint": fingerprint(df),
    })


def _md_list(items: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in items) if items else "none"


def write_eda_report(
    df: pd.DataFrame,
    profile: dict[str, Any],
    directory: str | os.PathLike[str],
    *,
    target: str,
    problem_type: str | ProblemType,
) -> Path:
    """Write ``eda-summary.md`` and its PNG plots into ``directory``.

    Plots: ``numeric-histograms.png``, ``target-balance.png`` (class counts on a log scale, or
    the target's histogram) and ``correlation-heatmap.png`` (with two or more numeric columns),
    and those of the problem type's own section (``ProblemType.eda_section``: for forecasts the
    STL decomposition and ACF/PACF of a few series).
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
    from matplotlib.figure import Figure

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    numeric_cols = [c for c in profile.get("numeric", {}) if c in df.columns][:24]
    plots: list[str] = []
    features = [c for c in numeric_cols if c != target]
    if features:
        ncols = min(4, len(features))
        nrows = math.ceil(len(features) / ncols)
        fig = Figure(figsize=(4 * ncols, 3 * nrows))
        for i, name in enumerate(features):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            ax.hist(df[name].dropna().to_numpy(dtype=float), bins=40, color="#4C72B0")
            ax.set_title(name, fontsize=9)
        fig.tight_layout()
        fig.savefig(directory / "numeric-histograms.png", dpi=80)
        plots.append("numeric-histograms.png")
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    if problems.get(problem_type).target_kind == "label":
        counts = df[target].value_counts()
        ax.bar([str(k) for k in counts.index], counts.to_numpy(), color="#55A868")
        ax.set_yscale("log")
        ax.set_ylabel("rows (log scale)")
    elif pd.api.types.is_numeric_dtype(df[target]):
        ax.hist(df[target].dropna().to_numpy(dtype=float), bins=60, color="#55A868")
    ax.set_title(f"target: {target}")
    fig.tight_layout()
    fig.savefig(directory / "target-balance.png", dpi=80)
    plots.append("target-balance.png")
    if len(numeric_cols) >= 2:
        corr = df[numeric_cols].corr().to_numpy()
        fig = Figure(figsize=(1 + 0.5 * len(numeric_cols), 0.5 * len(numeric_cols) + 1))
        ax = fig.add_subplot(1, 1, 1)
        image = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(numeric_cols)), numeric_cols, rotation=90, fontsize=7)
        ax.set_yticks(range(len(numeric_cols)), numeric_cols, fontsize=7)
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(directory / "correlation-heatmap.png", dpi=80)
        plots.append("correlation-heatmap.png")

    problem = problems.get(problem_type)
    extra_lines, extra_plots = problem.eda_section(df, profile.get(problem.name, {}), directory, target=target)
    plots += extra_plots
    t = profile.get("target", {})
    lines = [
        "# Exploratory data analysis", "",
        f"- rows: {profile.get('rows')}, columns: {profile.get('columns')}",
        f"- problem type: {problems.get(problem_type).name}; target: `{target}`",
        f"- fingerprint: `{profile.get('fingerprint')}`",
        f"- duplicate rows: {profile.get('duplicate_rows')}",
        f"- constant columns: {_md_list(profile.get('constant_columns', []))}",
        f"- all-missing columns: {_md_list(profile.get('all_nan_columns', []))}",
        f"- high-cardinality columns: {_md_list(profile.get('high_cardinality_columns', []))}",
        *[f"- **numbers stored as text**: `{w['column']}` (e.g. `{w['example']}`) is read as text and "
          f"one-hot encoded; {w['fix']}" for w in profile.get("numbers_as_text", [])],
        "", "## Target", "",
    ]
    if "class_counts" in t:
        lines += [f"- class `{k}`: {v}" for k, v in t["class_counts"].items()]
        lines.append(f"- minority share: {t.get('minority_share', float('nan')):.4%}")
    else:
        lines += [f"- {k}: {v:.4g}" for k, v in t.get("quantiles", {}).items() if v is not None]
    lines += extra_lines
    lines += ["", "## Leakage suspects", ""]
    suspects = profile.get("leakage_suspects", [])
    lines += [f"- **`{s['column']}`**: {s['metric']} = {s['score']} alone — check it is known "
              "at prediction time" for s in suspects] or ["none found"]
    lines += ["", "## Missing values", ""]
    lines += [f"- `{k}`: {v}" for k, v in profile.get("missing", {}).items()] or ["none"]
    lines += ["", "## Numeric columns", "", "| column | mean | std | min | median | max | missing |",
              "|---|---|---|---|---|---|---|"]
    for name, s in profile.get("numeric", {}).items():
        cells = [s.get(k) for k in ("mean", "std", "min", "median", "max")]
        shown = " | ".join("" if v is None else f"{v:.4g}" for v in cells)
        lines.append(f"| {name} | {shown} | {s.get('missing', 0)} |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return atomic_write_text(directory / "eda-summary.md", "\n".join(lines) + "\n")
