"""T-007's record: global importance and explained examples.

* ``importance.csv`` / ``importance.png``: permutation importance on the test split (the run's
  metric, ``n_repeats`` shuffles, a 95% band) beside the model's native importance and mean
  |SHAP| (:mod:`specweave_ray.deploy._importance`).
* The SHAP values themselves, portable: ``shap_values.npy`` (rows × input columns, float64),
  ``shap_base_values.npy`` (one per row; ``base + values.sum(axis=1)`` is the model output),
  ``shap_rows.parquet`` (the explained input rows) and ``shap_features.json`` (the column order,
  the output space, the method, the explained class per row); a beeswarm summary
  (``shap_beeswarm.png``) and dependence plots of the top columns (``shap_dependence_<col>.png``).
* Explained examples (``examples.json``): the rows the problem type points at
  (:meth:`~specweave_ray.problems.ProblemType.explain_examples`: the largest errors of a
  regressor, the highest-risk rows of a classifier), each with its SHAP contributions and, beside
  them, LIME's local surrogate (:mod:`specweave_ray.deploy._lime`).

The explanations come from :mod:`specweave_ray.deploy.explain` on the packaged model, so what is
explained is exactly what ships.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray import problems
from specweave_ray._fs import atomic_write_bytes, atomic_write_json
from specweave_ray.deploy._explain_plots import beeswarm_plot, dependence_plot, importance_plot
from specweave_ray.deploy._forecast import ForecastPredictor
from specweave_ray.deploy._forecast_report import write_forecast_explainability
from specweave_ray.deploy._importance import (
    importance_table,
    label_codes,
    native_importance,
    permutation_table,
)
from specweave_ray.deploy._lime import lime_explanations
from specweave_ray.deploy._package_read import read_background
from specweave_ray.deploy._recs import RecommenderPredictor, write_recs_explainability
from specweave_ray.deploy.explain import (
    MAX_KERNEL_ROWS,
    ShapMatrix,
    _plain,
    explain_matrix,
    rows_from_matrix,
)
from specweave_ray.exceptions import SpecweaveError
from specweave_ray.metrics import MetricDef, get_metric
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import track_experiment

_MAX_ROWS = {"tree-shap": 500, "ensemble-tree-shap": 500}
# Permutation importance scores every column n_repeats times on this many test rows at most.
PERMUTATION_ROWS = 5000
DEPENDENCE_PLOTS = 3  # the top columns by mean |SHAP| that get a dependence plot
EXAMPLES = 5  # rows explained one by one, by SHAP and LIME


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_") or "feature"


def _metric(inc: Increment, problem: problems.ProblemType) -> MetricDef:
    """The spec's primary metric where it is computed from predictions, else the type's default."""
    try:
        name = inc.spec().primary_metric
        metric = problem.metric(name) if name else None
    except SpecweaveError:
        metric = None
    return metric if metric is not None and metric.scored else get_metric(problem.default_metric)


def _save_shap(folder: Path, m: ShapMatrix, rows: pd.DataFrame, classes: Any) -> list[str]:
    """The SHAP files and plots of the record; returns the dependence plots' file names."""
    for name, array in (("shap_values.npy", m.values), ("shap_base_values.npy", m.base)):
        buf = io.BytesIO()
        np.save(buf, np.asarray(array, dtype=np.float64), allow_pickle=False)
        atomic_write_bytes(folder / name, buf.getvalue())
    buf = io.BytesIO()
    rows.to_parquet(buf, index=False)
    atomic_write_bytes(folder / "shap_rows.parquet", buf.getvalue())
    atomic_write_json(folder / "shap_features.json", {
        "features": m.features, "output": m.output, "method": m.method, "rows": len(rows),
        "explained_class": None if m.explained is None else [_plain_label(classes[i]) for i in m.explained],
        "check": "base_values + values.sum(axis=1) == the model output in `output` space"})
    beeswarm_plot(folder / "shap_beeswarm.png", m.values, m.base, rows, features=m.features, output=m.output)
    order = np.argsort(-np.abs(m.values).mean(axis=0), kind="stable")[:DEPENDENCE_PLOTS]
    names = []
    for j in order:
        feature = m.features[j]
        name = f"shap_dependence_{_snake(feature)}.png"
        dependence_plot(folder / name, feature, rows[feature], m.values[:, j], output=m.output)
        names.append(name)
    return names


def _plain_label(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _examples(predictor: Any, problem: problems.ProblemType, X: pd.DataFrame, y: pd.Series, *,
              seed: int) -> tuple[list[dict[str, Any]], str]:
    """The problem type's example rows of the test split, explained by SHAP and LIME."""
    held = predictor.validate(X).reset_index(drop=True)
    truth = label_codes(predictor, y) if predictor.classes is not None else np.asarray(y, dtype=np.float64)
    picks, why = problem.explain_examples(truth, problem.predict(predictor, held), n=EXAMPLES)
    chosen = held.iloc[np.asarray(picks, dtype=np.intp)].reset_index(drop=True)
    m = explain_matrix(predictor, chosen)
    examples = rows_from_matrix(predictor, chosen, m, top=5)
    background = read_background(predictor.metadata, predictor.folder)
    limes = lime_explanations(predictor, held if background is None or background.empty else background, chosen,
                              explained=[None] * len(chosen) if m.explained is None else list(m.explained),
                              seed=seed)
    actual = np.asarray(y)[np.asarray(picks, dtype=np.intp)]
    for ex, lime, value in zip(examples, limes, actual, strict=True):
        ex["actual"] = _plain(value)
        ex["lime"] = lime
    return examples, why


def _example_lines(i: int, ex: dict[str, Any]) -> list[str]:
    head = f"{i}. actual **{ex['actual']}**, prediction **{ex['prediction']}**"
    if "probability" in ex:
        head += f" (p={ex['probability']:.3f} for class {ex['explained_class']})"
    lime = ex["lime"]
    lines = [head + f"; SHAP base {ex['base_value']:.4g} → output {ex['output_value']:.4g} ({ex['output']}); "
             f"LIME intercept {lime['intercept']:.4g} → {lime['local_prediction']:.4g} "
             f"(model {lime['model_output']:.4g}, R² {lime['score']:.2f})", "",
             "   | column | value | SHAP | LIME rule | LIME weight |", "   |---|---|---|---|---|"]
    by_feature = {w["feature"]: w for w in lime["weights"]}
    for c in ex["contributions"]:
        w = by_feature.pop(c["feature"], None)
        rule, weight = (w["rule"], f"{w['weight']:+.4g}") if w else ("—", "—")
        value = f"{c['value']:.4g}" if isinstance(c["value"], float) else repr(c["value"])
        lines.append(f"   | {c['feature']} | {value} | {c['contribution']:+.4g} | {rule} | {weight} |")
    lines += [f"   | {f} | | (other columns) | {w['rule']} | {w['weight']:+.4g} |" for f, w in by_feature.items()]
    lines.append(f"   | all other columns | | {ex['other']:+.4g} | | |")
    return [*lines, ""]


def write_explainability(inc: Increment, predictor: Any, X: pd.DataFrame, y: pd.Series, *, seed: int = 0,
                         data_fingerprint: str | None = None, n_repeats: int = 5) -> str:
    """Explain held-out rows ``X`` (target ``y``) with the packaged model and record the result;
    returns the record id. ``n_repeats``: shuffles per column for permutation importance.
    A recommender explains sample users' lists instead (:func:`write_recs_explainability`), a
    forecaster the steps of its held-out forecast (:func:`write_forecast_explainability`)."""
    if getattr(predictor, "kind", None) == RecommenderPredictor.kind:
        return write_recs_explainability(inc, predictor, X, y, seed=seed, data_fingerprint=data_fingerprint)
    if getattr(predictor, "kind", None) == ForecastPredictor.kind:
        return write_forecast_explainability(inc, predictor, X, y, seed=seed, data_fingerprint=data_fingerprint)

    problem = problems.get(predictor.problem_type)
    metric = _metric(inc, problem)
    limit = _MAX_ROWS.get(predictor.explainer_kind, MAX_KERNEL_ROWS)
    rows = predictor.validate(X.sample(min(len(X), limit), random_state=seed)).reset_index(drop=True)
    shap = explain_matrix(predictor, rows)
    mean_abs = pd.Series(np.abs(shap.values).mean(axis=0), index=shap.features)
    picked = np.sort(np.random.default_rng(seed).choice(len(X), min(len(X), PERMUTATION_ROWS), replace=False))
    scored = X.iloc[picked]  # by position: X and y are aligned row by row, whatever their index
    permutation = permutation_table(predictor, scored, y.iloc[picked], metric=metric, n_repeats=n_repeats,
                                    seed=seed)
    native, native_kind = native_importance(predictor)
    table = importance_table(permutation, mean_abs, native, native_kind)
    importance = table["permutation_mean"]

    examples, why = _examples(predictor, problem, X, y, seed=seed)

    with track_experiment("explainability", increment=inc, kind="explainability",
                          model=predictor.metadata.get("estimator"),
                          meta={"data_fingerprint": data_fingerprint, "package": f"model-v{predictor.version}"}) as exp:
        exp.log_params({"method": predictor.explainer_kind, "rows_explained": len(rows),
                        "package": f"model-v{predictor.version}", "permutation_metric": metric.name,
                        "permutation_repeats": n_repeats, "permutation_rows": len(scored),
                        "native_importance": native_kind})
        exp.log_metrics({f"importance_{_snake(k)}": float(v) for k, v in importance.items()})
        exp.log_metrics({f"mean_abs_shap_{_snake(k)}": float(v) for k, v in mean_abs.items()})
        table.to_csv(exp.path / "importance.csv", float_format="%.6g")
        importance_plot(exp.path / "importance.png", table, metric=metric.name)
        dependence = _save_shap(exp.path, shap, rows, predictor.classes)
        atomic_write_json(exp.path / "examples.json", examples)
        lines = [f"# Explainability — {inc.id} (model-v{predictor.version})", "",
                 f"SHAP: **{predictor.explainer_kind}** on {len(rows)} held-out rows; contributions are "
                 "summed over each input column's encoded features, so they add up to the model output.", "",
                 "## Global importance", "",
                 f"Permutation importance: the drop in **{metric.name}** on {len(scored)} test rows when one "
                 f"column is shuffled, mean of {n_repeats} shuffles with a 95% t-interval. Native: the "
                 f"model's own importance ({native_kind or 'none for this model'}), as a share of its total. "
                 "Table: `importance.csv`.", "",
                 "| feature | permutation | 95% band | native share | mean abs SHAP |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {r.permutation_mean:.4g} | [{r.ci_low:.4g}, {r.ci_high:.4g}] | "
                  f"{'—' if pd.isna(r.native_importance) else f'{r.native_importance:.3f}'} | {r.mean_abs_shap:.4g} |"
                  for k, r in table.iterrows()]
        lines += ["", "![importance](importance.png)", "", "## SHAP values", "",
                  f"Every explained row's contributions are in `shap_values.npy` ({len(rows)} rows × "
                  f"{len(shap.features)} columns, in `shap_features.json` order, {shap.output} space), its base "
                  "value in `shap_base_values.npy`, the rows in `shap_rows.parquet`.", "",
                  "![beeswarm](shap_beeswarm.png)", ""]
        lines += [f"![dependence]({name})" for name in dependence]
        lines += ["", "## Explained examples", "", f"Chosen from all {len(X)} test rows: {why}. SHAP "
                  "contributions beside LIME's local linear surrogate (weights of its rules, in probability "
                  "or value space; its R² on the perturbed rows in brackets). Full detail: `examples.json`.", ""]
        for i, ex in enumerate(examples, 1):
            lines += _example_lines(i, ex)
        exp.save_report("explainability.md", "\n".join(lines) + "\n")
    return exp.id
