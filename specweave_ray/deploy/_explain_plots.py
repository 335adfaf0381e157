"""T-007's figures, drawn on matplotlib's Agg canvas (no pyplot state, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["beeswarm_plot", "dependence_plot", "importance_plot", "numeric_view"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def importance_plot(path: Path, table: pd.DataFrame, *, metric: str, top: int = 20) -> None:
    """Permutation importance with its 95% band (left) beside the model's native importance and
    mean |SHAP| (right, each normalised to sum to 1), for the ``top`` columns of ``table``."""
    t = table.head(top).iloc[::-1]
    fig = _figure(11, 0.35 * len(t) + 1.5)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    y = np.arange(len(t))
    err = np.vstack([t["permutation_mean"] - t["ci_low"], t["ci_high"] - t["permutation_mean"]])
    left.barh(y, t["permutation_mean"], xerr=err, color="#4c72b0", capsize=3)
    left.set_yticks(y, [str(i) for i in t.index])
    left.axvline(0.0, color="#333333", linewidth=0.8)
    left.set_xlabel(f"drop in {metric} when shuffled (95% band)")
    left.set_title("Permutation importance (test split)")
    shap_share = t["mean_abs_shap"] / max(float(table["mean_abs_shap"].sum()), 1e-300)
    h = 0.4
    right.barh(y + h / 2, shap_share, h, color="#dd8452", label="mean |SHAP| (share)")
    kind = str(t["native_kind"].iloc[0]) if len(t) else ""
    if t["native_importance"].notna().any():
        right.barh(y - h / 2, t["native_importance"], h, color="#55a868", label=f"native: {kind} (share)")
    right.set_yticks(y, [str(i) for i in t.index])
    right.set_xlabel("share of the total")
    right.set_title("Model's own importance and mean |SHAP|")
    right.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def numeric_view(frame: pd.DataFrame) -> np.ndarray:
    """``frame`` as float columns for colouring: numbers as they are, booleans 0/1, dates as
    days since the epoch, anything else NaN (SHAP draws it grey)."""
    out = np.full(frame.shape, np.nan)
    for j, c in enumerate(frame.columns):
        s = frame[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[:, j] = pd.to_numeric(s, errors="coerce").astype(np.float64)
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[:, j] = (s - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy() / 86400.0
    return out


def beeswarm_plot(path: Path, values: np.ndarray, base: np.ndarray, frame: pd.DataFrame, *,
                  features: list[str], output: str, top: int = 15) -> None:
    """SHAP's beeswarm summary: one dot per row and column, coloured by the column's value."""
    import warnings

    shown = min(top, len(features))
    fig = _figure(8, 0.45 * shown + 1.8)
    ax = fig.add_subplot(1, 1, 1)
    # shap's import pokes at deprecated matplotlib colormap APIs; its colour scale takes quantiles
    # of every column, an all-NaN one (a category) included
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap

        explanation = shap.Explanation(values=values, base_values=base, data=numeric_view(frame[features]),
                                       feature_names=[str(f) for f in features])
        shap.plots.beeswarm(explanation, max_display=shown, ax=ax, show=False, plot_size=None)
    ax.set_xlabel(f"SHAP contribution ({output})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def dependence_plot(path: Path, feature: str, column: pd.Series, contrib: np.ndarray, *, output: str) -> None:
    """One column's contribution against its value (categories along the axis in order of their
    mean contribution); the spread at one value is the interaction with the other columns."""
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    x = numeric_view(column.to_frame())[:, 0]
    if np.isnan(x).all():  # a category: one position per level
        labels = column.astype(object).where(column.notna(), "<missing>").astype(str)
        order = pd.Series(contrib, index=labels.to_numpy()).groupby(level=0).mean().sort_values().index
        pos = {v: i for i, v in enumerate(order)}
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(labels))
        ax.scatter(labels.map(pos).to_numpy() + jitter, contrib, s=10, alpha=0.6, color="#4c72b0")
        ax.set_xticks(range(len(order)), [str(v)[:14] for v in order], rotation=45, ha="right")
    else:
        ax.scatter(x, contrib, s=10, alpha=0.6, color="#4c72b0")
    ax.axhline(0.0, color="#333333", linewidth=0.8)
    ax.set_xlabel(str(feature))
    ax.set_ylabel(f"SHAP contribution ({output})")
    ax.set_title(f"Dependence: {feature}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
