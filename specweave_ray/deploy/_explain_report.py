"""T-007's record: global importance (mean |SHAP| per input column) and explained examples.

The explanations come from :func:`specweave_ray.deploy.explain.explain_rows` on the packaged model, so
what is explained is exactly what ships.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import atomic_write_json
from specweave_ray.deploy._recs import RecommenderPredictor, write_recs_explainability
from specweave_ray.deploy.explain import MAX_KERNEL_ROWS, explain_rows
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import track_experiment

_MAX_ROWS = {"tree-shap": 500}


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_") or "feature"


def _bar_chart(path: Path, importance: pd.Series) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 0.35 * len(importance) + 1))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(importance.index[::-1], importance.values[::-1], color="#4c72b0")
    ax.set_xlabel("mean |SHAP contribution|")
    ax.set_title("Global feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_explainability(inc: Increment, predictor: Any, X: pd.DataFrame, y: pd.Series, *, seed: int = 0,
                         data_fingerprint: str | None = None) -> str:
    """Explain held-out rows with the packaged model and record the result; returns the record id.
    A recommender explains sample users' lists instead (:func:`write_recs_explainability`)."""
    if getattr(predictor, "kind", None) == RecommenderPredictor.kind:
        return write_recs_explainability(inc, predictor, X, y, seed=seed, data_fingerprint=data_fingerprint)

    limit = _MAX_ROWS.get(predictor.explainer_kind, MAX_KERNEL_ROWS)
    rows = X.sample(min(len(X), limit), random_state=seed).reset_index(drop=True)
    explained = explain_rows(predictor, rows, top=X.shape[1])
    contrib = pd.DataFrame([{c["feature"]: abs(c["contribution"]) for c in e["contributions"]} for e in explained])
    importance = contrib.fillna(0.0).mean().sort_values(ascending=False)

    # examples: the highest-scored rows (where a reviewer looks first) and two at random
    if predictor.classes is not None:
        score = predictor.predict_proba(rows)[:, -1] if len(predictor.classes) == 2 else \
            predictor.predict_proba(rows).max(axis=1)
    else:
        score = np.asarray(predictor.predict(rows), dtype=float)
    rng = np.random.default_rng(seed)
    picks = list(dict.fromkeys([*np.argsort(-score)[:3].tolist(), *rng.choice(len(rows), 2, replace=False).tolist()]))
    examples = explain_rows(predictor, rows.iloc[picks].reset_index(drop=True), top=5)

    with track_experiment("explainability", increment=inc, kind="explainability",
                          model=predictor.metadata.get("estimator"),
                          meta={"data_fingerprint": data_fingerprint, "package": f"model-v{predictor.version}"}) as exp:
        exp.log_params({"method": predictor.explainer_kind, "rows_explained": len(rows),
                        "package": f"model-v{predictor.version}"})
        exp.log_metrics({f"importance_{_snake(k)}": float(v) for k, v in importance.items()})
        _bar_chart(exp.path / "importance.png", importance)
        atomic_write_json(exp.path / "examples.json", examples)
        lines = [f"# Explainability — {inc.id} (model-v{predictor.version})", "",
                 f"Method: **{predictor.explainer_kind}** on {len(rows)} held-out rows; contributions are "
                 "summed over each input column's encoded features, so they add up to the model output.", "",
                 "## Global importance (mean |contribution|)", "", "| feature | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in importance.items()]
        lines += ["", "![importance](importance.png)", "", "## Explained examples", ""]
        for i, ex in enumerate(examples, 1):
            head = f"{i}. prediction **{ex['prediction']}**"
            if "probability" in ex:
                head += f" (p={ex['probability']:.3f} for class {ex['explained_class']})"
            lines.append(head + f"; base {ex['base_value']:.4g} → output {ex['output_value']:.4g} ({ex['output']})")
            lines += [f"   - {c['feature']} = {c['value']!r}: {c['contribution']:+.4g}" for c in ex["contributions"]]
            lines.append(f"   - all other columns: {ex['other']:+.4g}")
        exp.save_report("explainability.md", "\n".join(lines) + "\n")
    return exp.id
