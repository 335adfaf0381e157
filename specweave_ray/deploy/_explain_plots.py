"""T-007's figures, drawn on matplotlib's Agg canvas (no pyplot state, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["importance_plot"]


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
