"""Presentation of a held-out evaluation: the PNG plots and the ``evaluation.md`` markdown.

Private to :mod:`specweave_ray.evaluate._scores`, which validates the inputs. matplotlib is imported
inside the functions and drawn through its object API (``Figure`` on the Agg canvas): no GUI,
and the process's global backend is left alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from specweave_ray import problems
from specweave_ray._fs import atomic_write_bytes
from specweave_ray.exceptions import require
from specweave_ray.metrics import METRICS

if TYPE_CHECKING:
    import pandas as pd

    from specweave_ray.evaluate._types import Prepared, ThresholdChoice

_MAX_SCATTER = 20_000  # points drawn in a scatter; more only slows the PNG down
_TRADEOFF_ROWS = 12
_MAX_RECORD_COLUMNS = 12


# --- plots --------------------------------------------------------------------------------------
def write_all(directory: Path, d: Prepared, *, threshold: float,
              curve: pd.DataFrame | None) -> list[Path]:
    """See :func:`specweave_ray.evaluate._scores.write_plots`; returns the paths written."""

    require("matplotlib.figure", feature="evaluation plots")
    if d.kind == "continuous":
        return [_residuals(directory, d), _predicted_vs_actual(directory, d)]
    # the curves need both classes; a one-class test set still gets its confusion matrix
    curves = d.proba is not None and d.kind == "binary" and np.unique(d.y).size == 2
    paths = [_roc(directory, d), _pr(directory, d)] if curves else []
    paths.append(_confusion(directory, d, threshold))
    if curves:
        paths.append(_calibration(directory, d))
    if d.kind == "binary" and curve is not None and len(curve):
        paths.append(_threshold(directory, curve, threshold))  # the tuning data's curve
    if d.kind == "multiclass" and d.proba is not None:
        paths.append(_roc(directory, d))
    return paths


def _figure(size: tuple[float, float] = (5.5, 4.5)) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return atomic_write_bytes(path, buffer.getvalue())


def _roc(directory: Path, d: Prepared) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _figure()
    columns = [1] if d.kind == "binary" else range(d.proba.shape[1])
    for c in columns:
        positive = d.y == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, d.proba[:, c])
        auc = roc_auc_score(positive, d.proba[:, c])
        ax.plot(fpr, tpr, label=f"{'' if d.kind == 'binary' else f'class {c}: '}AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, directory / "roc.png")


def _pr(directory: Path, d: Prepared) -> Path:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure()
    precision, recall, _ = precision_recall_curve(d.y, d.proba[:, 1])
    ap = average_precision_score(d.y, d.proba[:, 1])
    ax.step(recall, precision, where="post", label=f"AP {ap:.4f}")
    ax.axhline(d.y.mean(), linestyle="--", color="grey", linewidth=1,
               label=f"positive rate {d.y.mean():.4g}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, directory / "pr.png")


def _confusion(directory: Path, d: Prepared, threshold: float) -> Path:
    from sklearn.metrics import confusion_matrix

    k = d.proba.shape[1] if d.proba is not None else int(d.classes.max()) + 1
    matrix = confusion_matrix(d.y, d.labels, labels=np.arange(k))
    fig, ax = _figure((1.5 + 0.6 * max(k, 4), 1.2 + 0.6 * max(k, 4)))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize=8,
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    title = f"Confusion matrix (threshold {threshold:.4g})" if d.kind == "binary" else \
        "Confusion matrix"
    ax.set(xlabel="predicted", ylabel="actual", title=title)
    fig.colorbar(image, ax=ax)
    return _save(fig, directory / "confusion_matrix.png")


def _calibration(directory: Path, d: Prepared) -> Path:
    from sklearn.calibration import calibration_curve

    # quantile bins: with rare positives, uniform bins above 0.1 would be nearly empty
    observed, predicted = calibration_curve(d.y, d.proba[:, 1], n_bins=10, strategy="quantile")
    fig, ax = _figure()
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate",
           title="Calibration (quantile bins)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, directory / "calibration.png")


def _threshold(directory: Path, curve: pd.DataFrame, threshold: float) -> Path:
    fig, ax = _figure((6.5, 4.5))
    for name in ("precision", "recall", "f1", "flagged_rate"):
        ax.plot(curve["threshold"], curve[name], label=name.replace("_", " "))
    label = f"chosen {threshold:.4g}"
    handles = []
    if "min_slack" in curve:  # several threshold targets: the smallest relative slack over them
        twin = ax.twinx()
        slack = curve["min_slack"].to_numpy(dtype=float)
        handles = twin.plot(curve["threshold"], slack, color="#8c564b", linestyle="--",
                            label="smallest relative slack (right axis)")
        twin.axhline(0, color="#8c564b", linewidth=0.8, alpha=0.5)
        twin.set_ylabel("smallest relative slack over the targets")
        at = float(slack[int(np.argmin(np.abs(curve["threshold"].to_numpy() - threshold)))])
        label += f" (slack {at:+.1%})"
    ax.axvline(threshold, color="black", linestyle=":", label=label)
    ax.set(xlabel="threshold", ylabel="value", title="Threshold trade-off", ylim=(0, 1.02))
    lines, names = ax.get_legend_handles_labels()
    ax.legend(lines + handles, names + [h.get_label() for h in handles], loc="best", fontsize=8)
    return _save(fig, directory / "threshold.png")


def _sample(d: Prepared) -> np.ndarray:
    n = d.y.size
    if n <= _MAX_SCATTER:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, _MAX_SCATTER, replace=False))


def _residuals(directory: Path, d: Prepared) -> Path:
    rows = _sample(d)
    fig, ax = _figure()
    ax.scatter(d.pred[rows], d.y[rows] - d.pred[rows], s=4, alpha=0.4)
    ax.axhline(0, color="black", linewidth=1)
    ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals")
    return _save(fig, directory / "residuals.png")


def _predicted_vs_actual(directory: Path, d: Prepared) -> Path:
    rows = _sample(d)
    fig, ax = _figure()
    ax.scatter(d.y[rows], d.pred[rows], s=4, alpha=0.4)
    low, high = float(min(d.y.min(), d.pred.min())), float(max(d.y.max(), d.pred.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    return _save(fig, directory / "predicted_vs_actual.png")


# --- report -------------------------------------------------------------------------------------
def render_report(metrics: Mapping[str, float], *, problem_type: str,
                  threshold: ThresholdChoice | None = None,
                  baselines: Mapping[str, Mapping[str, float]] | None = None,
                  previous: Mapping[str, float] | None = None, errors: Mapping | None = None,
                  imbalance_note: str | None = None, plots: Sequence[str] = ()) -> str:
    """The markdown of ``evaluation.md``.

    Args:
        metrics: :func:`~specweave_ray.evaluate._scores.evaluate` output (values and ``*_ci_*``).
        problem_type: ``classification``, ``regression`` or ``timeseries``.
        threshold: the tuned threshold; adds its reason and a trade-off table.
        baselines: baseline name -> its metrics on the same test split (one column each).
        previous: the previous increment's best model's metrics (one more column).
        errors: :func:`~specweave_ray.evaluate._scores.error_analysis` output.
        imbalance_note: how class imbalance was handled (stratified split, class weights).
        plots: PNG file names relative to the report, embedded in order.

    Example:
        >>> md = render_report({"rmse": 2.0, "rmse_ci_low": 1.5, "rmse_ci_high": 2.5},
        ...                    problem_type="regression", baselines={"mean": {"rmse": 3.0}})
        >>> "| rmse | 2.0000 | [1.5000, 2.5000] | 3.0000 (Δ -1.0000) |" in md
        True
    """
    refs = dict(baselines or {})
    if previous:
        refs["previous best"] = previous
    problem = problems.get(problem_type)
    names = [m for m in (*problem.metrics, *problem.report_extras) if m in metrics]
    lines = ["# Evaluation", "", f"Problem type: {problem.name}."]
    if "n_test" in metrics:
        lines[-1] += f" Held-out test rows: {_fmt(metrics['n_test'])}."
    if problem.output == "probabilities" and "threshold" in metrics:
        lines[-1] += f" Decision threshold: {_fmt(metrics['threshold'])}."
    if "mape_rows" in metrics and "n_test" in metrics and metrics["mape_rows"] != metrics["n_test"]:
        lines.append(f"MAPE is over the {_fmt(metrics['mape_rows'])} rows whose true value is not 0.")
    header = ["metric", "value", "95% CI", *(f"vs {name}" for name in refs)]
    lines += ["", "## Metrics", "", _row(header), _row(["---"] * len(header))]
    for name in names:
        value = metrics[name]
        ci = f"[{_fmt(metrics.get(f'{name}_ci_low'))}, {_fmt(metrics.get(f'{name}_ci_high'))}]" \
            if f"{name}_ci_low" in metrics else "n/a"
        cells = [name, _fmt(value), ci]
        for ref in refs.values():
            other = ref.get(name)
            cells.append("n/a" if not _finite(other) else
                         f"{_fmt(other)} (Δ {float(value) - float(other):+.4f})"
                         if _finite(value) else _fmt(other))
        lines.append(_row(cells))
    if refs:
        lower = sorted(m for m in names if m in METRICS and METRICS[m].mode == "min")
        lines += ["", "Δ = this model minus the reference, on the same test split"
                  + (f"; lower is better for {', '.join(lower)}." if lower else ".")]
    if all(k in metrics for k in ("tn", "fp", "fn", "tp")):
        lines += ["", "### Confusion matrix", "", "| | predicted 0 | predicted 1 |",
                  "| --- | --- | --- |",
                  f"| actual 0 | {_fmt(metrics['tn'])} | {_fmt(metrics['fp'])} |",
                  f"| actual 1 | {_fmt(metrics['fn'])} | {_fmt(metrics['tp'])} |"]
    if threshold is not None:
        lines += _threshold_section(threshold)
    if imbalance_note:
        lines += ["", "## Class imbalance", "", imbalance_note]
    if errors:
        lines += _errors_section(errors)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _threshold_section(choice: ThresholdChoice) -> list[str]:
    lines = ["", "## Decision threshold", "",
             f"Chosen threshold **{_fmt(choice.threshold)}** on the tuning data (validation or "
             f"out-of-fold predictions): precision {_fmt(choice.precision)}, recall "
             f"{_fmt(choice.recall)}, F1 {_fmt(choice.f1)}. Target met: "
             f"{'yes' if choice.met else '**no**'} ({choice.reason})."]
    if choice.slack is not None:
        lines.append("")
        lines.append(f"Smallest relative slack over the threshold targets there: **{choice.slack:+.1%}** "
                     "(how far the tightest target is inside its bound, relative to the bound).")
    curve = choice.curve
    if curve is None or not len(curve):
        return lines
    chosen = int(np.argmin(np.abs(curve["threshold"].to_numpy() - choice.threshold)))
    rows = tradeoff_rows(len(curve), chosen)
    lines += ["", "| threshold | precision | recall | f1 | flagged rate |",
              "| --- | --- | --- | --- | --- |"]
    for i in rows:
        r = curve.iloc[i]
        cells = [_fmt(r["threshold"]), _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"]),
                 _fmt(r["flagged_rate"])]
        lines.append(_row([f"**{c}**" for c in cells] if i == chosen else cells))
    return lines


def tradeoff_rows(n: int, chosen: int, rows: int = _TRADEOFF_ROWS) -> list[int]:
    """About ``rows`` curve indices around ``chosen``, geometrically spaced out to both ends.

    The neighbours show the local trade-off; the widening steps reach the curve's ends, so a
    dozen rows cover the whole trade-off even when the curve has one point per test row.
    """
    picked = {chosen}
    for distance, sign in ((chosen, -1), (n - 1 - chosen, 1)):
        if distance > 0:
            steps = np.unique(np.round(np.geomspace(1, distance, max(1, rows // 2))).astype(int))
            picked.update(chosen + sign * int(s) for s in steps)
    return sorted(picked)


def _errors_section(errors: Mapping) -> list[str]:
    lines = ["", "## Error analysis"]
    worst = errors.get("worst") or []
    if worst:
        columns = list(worst[0])[:_MAX_RECORD_COLUMNS]
        lines += ["", f"### Worst-predicted rows (by {errors.get('worst_by', 'error')})", "",
                  _row(columns), _row(["---"] * len(columns))]
        lines += [_row([_fmt(rec.get(c)) for c in columns]) for rec in worst]
        if len(worst[0]) > len(columns):
            lines.append(f"\n({len(worst[0]) - len(columns)} more columns in the JSON record.)")
    for column, segments in (errors.get("segments") or {}).items():
        if not segments:
            continue
        total = (errors.get("segment_counts") or {}).get(column, len(segments))
        keys = [k for k in segments[0] if k != "segment"]
        shown = f" (largest {len(segments)} of {total})" if total > len(segments) else ""
        lines += ["", f"### Segments of `{column}`{shown}", "", _row(["segment", *keys]),
                  _row(["---"] * (len(keys) + 1))]
        for seg in segments:
            name = "(missing)" if seg["segment"] is None else seg["segment"]
            lines.append(_row([_fmt(name), *(_fmt(seg.get(k)) for k in keys)]))
    return lines


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.2f}" if abs(v) >= 1e4 else f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 \
            else f"{v:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
