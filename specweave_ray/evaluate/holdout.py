"""T-006: the chosen model and every baseline, scored once on the held-out test split.

Reads what the sweep left on disk (``comparison.json`` and the records' native model files), so it
runs the same whether the sweep ran a second ago or in an earlier session. Writes one record of
kind ``evaluation`` (test metrics with 95% bootstrap CIs, tuned threshold, error analysis, plots,
the gate of spec targets) and one ``baseline-evaluation`` record per baseline on the same rows.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray import problems
from specweave_ray._fs import atomic_write_json, read_json
from specweave_ray.candidates.serialization import load_native
from specweave_ray.evaluate._forecast import evaluate_forecasts
from specweave_ray.evaluate._paired import paired_samples
from specweave_ray.evaluate._ranking import evaluate_rankings
from specweave_ray.evaluate._scores import (
    error_analysis,
    evaluate,
    render_report,
    score,
    tune_threshold,
    write_plots,
)
from specweave_ray.evaluate.gate import check_targets, gate_json, lift_metrics, render_gate
from specweave_ray.exceptions import DataError, RecordError
from specweave_ray.features import build_preprocessor
from specweave_ray.metrics import get_metric
from specweave_ray.problems import ProblemType
from specweave_ray.search.coordinator import read_oof
from specweave_ray.workspace import storage
from specweave_ray.workspace.increment import Increment, list_increments
from specweave_ray.workspace.records import list_records, read_record, track_experiment

logger = logging.getLogger(__name__)
_IMBALANCE_PARAMS = ("class_weight", "scale_pos_weight", "is_unbalance")
RANDOM_DRAWS = 10  # seeds a random baseline is scored under; its metrics are their mean


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Metrics a record can hold: an undefined one (NaN, e.g. ROC AUC of a one-class split) is left out."""
    return {k: v for k, v in metrics.items() if v is not None and np.isfinite(v)}


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _encode(y: pd.Series, classes: list[Any]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    values = pd.Series(np.asarray(y)).map(lambda v: index.get(v, index.get(str(v), -1)))
    unseen = sorted({str(v) for v, i in zip(np.asarray(y), values, strict=True) if i < 0})
    if unseen:
        raise DataError(f"the test split has labels the model never saw: {unseen[:5]}; known {classes}")
    return values.to_numpy(dtype=int)


def _load_best(inc: Increment, comp: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any], Any]:
    if not comp.get("best"):
        raise RecordError(f"{inc.experiments_dir / 'comparison.json'} names no best candidate; run T-004/T-005")
    rec = read_record(inc.experiments_dir / comp["best"])
    art = rec.meta.get("artifacts") or {}
    if "model" not in art:
        raise RecordError(f"{rec.path}: the best trial has no saved model (was the refit skipped or did it fail?)")
    model = load_native(rec.path, art["model"])
    features = load_native(rec.path, art["features"]) if "features" in art else None
    return model, features, art, rec


def _predict(model: Any, features: Any, X: pd.DataFrame, *, problem: ProblemType) -> Any:
    return problem.predict(model, features.transform(X) if features is not None else X)


def _oof_proba(rec: Any, X: pd.DataFrame, y: np.ndarray, *, problem: ProblemType, cv: int,
               seed: int) -> np.ndarray:
    """Out-of-fold probabilities of the chosen configuration on the training rows: the threshold is
    tuned on these, never on the test split."""
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import Pipeline

    if rec.kind == "ensemble":  # its nested-CV outputs from the sweep's folds (it has no params to refit)
        oof = np.asarray(read_oof(rec.path), dtype=np.float64)
        if len(oof) != len(y):
            raise RecordError(f"{rec.path}/oof.npy has {len(oof)} rows, the training split {len(y)}")
        return oof

    cls = _import(rec.meta["model"])
    steps = [] if getattr(cls, "requires_raw_frame", False) else [("features", build_preprocessor(X))]
    pipe = Pipeline([*[(n, s) for n, s in steps if s is not None], ("model", cls(**rec.params))])
    folds = problem.splitter(cv, seed=seed)
    return cross_val_predict(pipe, X, y, cv=folds, method="predict_proba")


def _baseline_scores(inc: Increment, comp: Mapping[str, Any], *, X_train: pd.DataFrame, y_train: Any,
                     X_test: pd.DataFrame, y_test: Any, problem: ProblemType, threshold: float, fp: str,
                     seed: int = 0) -> tuple[dict[str, dict[str, float]], dict[str, list[dict[str, Any]]]]:
    """Each baseline's metrics on the test split, and its outputs (one per draw).

    A baseline with a ``random_state`` is random: it is scored under ``RANDOM_DRAWS`` seeds and
    its metrics are the means over them (its expected score), so "best baseline" is never one
    lucky draw."""
    from sklearn.pipeline import Pipeline

    out: dict[str, dict[str, float]] = {}
    outputs: dict[str, list[dict[str, Any]]] = {}
    for row in comp["rows"]:
        if row["kind"] != "baseline":
            continue
        rec = read_record(inc.experiments_dir / row["record"])
        cls = _import(rec.meta["model"])
        raw = getattr(cls, "requires_raw_frame", False)
        random = "random_state" in rec.params
        draws = []
        for k in range(RANDOM_DRAWS if random else 1):
            params = {**rec.params, "random_state": seed + k} if random else rec.params
            steps = [] if raw else [("features", build_preprocessor(X_train))]
            pipe = Pipeline([*[(n, s) for n, s in steps if s is not None], ("model", cls(**params))])
            pipe.fit(X_train, y_train)
            draws.append(_outputs(problem, problem.predict(pipe, X_test), threshold))
            if k == 1 and _same_outputs(draws[0], draws[1]):
                draws, random = draws[:1], False  # random only in name (uniform probabilities)
                break
        if random:
            scores = [score(y_test, problem_type=problem, **kw) for kw in draws]
            metrics = {k: float(np.mean([m[k] for m in scores])) for k in scores[0]}
            metrics.update(n_test=int(len(y_test)), expected_over_draws=len(draws))
            if "threshold" in draws[0]:
                metrics["threshold"] = float(threshold)
        else:
            metrics = evaluate(y_test, problem_type=problem, n_boot=200, **draws[0])
        with track_experiment(f"evaluation-baseline-{row['candidate']}", increment=inc, kind="baseline-evaluation",
                              model=rec.meta["model"], meta={"data_fingerprint": fp, "candidate": row["candidate"],
                                                             "trial_record": rec.id}) as exp:
            exp.log_params({**rec.params, "split": "held-out test",
                            **({"draws": len(draws), "draw_seeds": f"{seed}..{seed + len(draws) - 1}"}
                               if random else {})})
            exp.log_metrics(_finite(metrics))
        out[row["candidate"]] = metrics
        outputs[row["candidate"]] = draws
    return out, outputs


def _same_outputs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    key = "proba" if "proba" in a else "pred"
    return bool(np.array_equal(a[key], b[key]))


def _outputs(problem: ProblemType, outputs: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """The keyword arguments :func:`evaluate` scores: probabilities and a threshold, or values."""
    if problem.output == "probabilities":
        return {"proba": outputs, "threshold": threshold}
    return {"pred": outputs}


def _previous(inc: Increment, problem_type: str) -> tuple[str, dict[str, float]] | None:
    """The newest earlier increment of the same problem type that has an evaluation record."""
    for other in reversed([i for i in list_increments(inc.root) if i.number < inc.number]):
        try:
            if other.spec().problem_type != problem_type:
                continue
        except Exception:  # noqa: BLE001 - an unreadable older spec is not this run's problem
            continue
        storage.pull(other.experiments_dir)  # a URI root fetched only its documents
        evals = list_records(other, kind="evaluation")
        if evals:
            return other.id, dict(evals[-1].metrics)
    return None


def _parent_scores(inc: Increment, problem: ProblemType, *, X_test: pd.DataFrame, y_test: pd.Series,
                   classes: list[Any] | None, n_boot: int, seed: int) -> dict[str, Any] | None:
    """The parent increment's best model (its sweep's, with its own tuned threshold) scored on
    this increment's test rows; None without a parent. A parent whose model can't score these
    rows (another type, other labels, other columns) is a note, not a failed evaluation."""
    parent = inc.parent()
    if parent is None:
        return None
    out: dict[str, Any] = {"increment": parent.id}
    storage.pull(parent.experiments_dir)
    comp = read_json(parent.experiments_dir / "comparison.json") or {}
    try:
        if problems.get(parent.spec().problem_type) is not problem:
            raise RecordError(f"{parent.id} is a {parent.spec().problem_type} increment")
        model, features, art, rec = _load_best(parent, comp)
        if (art.get("classes") is None) != (classes is None) or (
                classes is not None and [str(c) for c in art["classes"]] != [str(c) for c in classes]):
            raise RecordError(f"{parent.id}'s model has classes {art.get('classes')}, this one {classes}")
        evals = [r for r in list_records(parent, kind="evaluation") if r.meta.get("trial_record") == rec.id]
        threshold = (evals[-1].meta.get("threshold") if evals else None) or 0.5
        y_te = _encode(y_test, classes) if classes is not None else np.asarray(y_test, dtype=float)
        outputs = _predict(model, features, X_test, problem=problem)
        metrics = evaluate(y_te, problem_type=problem, n_boot=n_boot, seed=seed,
                           **_outputs(problem, outputs, threshold if problem.output == "probabilities" else None))
    except Exception as err:  # noqa: BLE001 - the parent is context; this increment's evaluation stands
        logger.warning("the parent %s's best model was not scored on %s's test rows: %s", parent.id, inc.id, err)
        return {**out, "error": f"{type(err).__name__}: {err}"}
    return {**out, "record": rec.id, "candidate": rec.meta.get("candidate"), "threshold": threshold,
            "metrics": _finite(metrics)}


def _parent_section(primary: str, metrics: Mapping[str, Any], parent: Mapping[str, Any] | None) -> str:
    if parent is None:
        return ""
    lines = ["", f"## Against the parent increment {parent['increment']}", ""]
    if "error" in parent:
        return "\n".join([*lines, f"Its best model was not scored on these test rows: {parent['error']}"]) + "\n"
    lines += [f"Its best model, {parent['candidate']} ({parent['record']}), scored on this increment's "
              "held-out test rows (the same rows as above).", "",
              "| metric | this increment | parent | difference |", "| --- | --- | --- | --- |"]
    names = [primary] + sorted(k for k in parent["metrics"] if k != primary and k in metrics
                               and not k.endswith(("_ci_low", "_ci_high")))
    for name in names:
        if name in metrics and name in parent["metrics"]:
            new, old = float(metrics[name]), float(parent["metrics"][name])
            lines.append(f"| {name} | {new:.4g} | {old:.4g} | {new - old:+.4g} |")
    return "\n".join(lines) + "\n"


def _lift_section(primary: str, lifts: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]]) -> str:
    """How the lifts were measured, and each reference's lift with its paired CI."""
    if not lifts:
        return ""
    random = [f"{n} ({int(m['expected_over_draws'])} seeds)" for n, m in baselines.items() if "expected_over_draws" in m]
    lines = ["", f"## Lift of {primary} over the baselines", "",
             "Each CI is a paired bootstrap: the model and the baseline scored on the same resampled test rows."]
    if random:
        lines.append(f"Random baselines count by their expected score, the mean over seeds: {', '.join(random)}.")
    lines += ["", "| reference | lift % | 95% CI | lift x | 95% CI |", "| --- | --- | --- | --- | --- |"]
    refs = sorted({k[len("lift_"):-len("_pct")] for k in lifts if k.startswith("lift_") and k.endswith("_pct")})
    for ref in refs:
        cells = [ref.replace("_", " ")]
        for unit in ("pct", "x"):
            key = f"lift_{ref}_{unit}"
            cells.append(f"{lifts[key]:.4g}" if key in lifts else "n/a")
            low, high = lifts.get(f"{key}_ci_low"), lifts.get(f"{key}_ci_high")
            cells.append(f"[{low:.4g}, {high:.4g}]" if low is not None and high is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_holdout(
    inc: Increment,
    spec: Any,
    *,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    cv: int = 5,
    seed: int = 0,
    data_fingerprint: str | None = None,
    n_boot: int = 1000,
) -> tuple[dict[str, Any], list[Any]]:
    """Score the sweep's best model and the baselines on the test split; check the spec's targets.

    Returns:
        ``(summary, gate_rows)``: summary has ``record``, ``candidate``, ``threshold``, ``metrics``.
    """

    comp = read_json(inc.experiments_dir / "comparison.json")
    if comp is None:
        raise RecordError(f"{inc.id} has no experiments/comparison.json; run the sweep (T-003…T-005) first")
    problem = problems.get(spec.problem_type)
    model, features, art, best = _load_best(inc, comp)
    if problem.output == "rankings":
        return evaluate_rankings(inc, spec, comp, problem=problem, model=model, best=best, X_train=X_train,
                                 y_train=y_train, X_test=X_test, y_test=y_test, seed=seed,
                                 data_fingerprint=data_fingerprint, n_boot=n_boot)
    if problem.output == "forecasts":
        return evaluate_forecasts(inc, spec, comp, problem=problem, model=model, best=best, X_train=X_train,
                                  y_train=y_train, X_test=X_test, y_test=y_test, seed=seed,
                                  data_fingerprint=data_fingerprint, n_boot=n_boot)
    primary = comp["metric"]

    choice, threshold = None, None
    classes = art.get("classes")
    if classes is not None:
        y_tr, y_te = _encode(y_train, classes), _encode(y_test, classes)
    else:
        y_tr, y_te = np.asarray(y_train, dtype=float), np.asarray(y_test, dtype=float)
    outputs = _predict(model, features, X_test, problem=problem)
    if problem.output == "probabilities":
        threshold = 0.5
        if len(classes) == 2:  # a binary decision: its threshold is tuned on out-of-fold rows
            oof = _oof_proba(best, X_train, y_tr, problem=problem, cv=cv, seed=seed)
            seen = np.isfinite(oof).all(axis=1)  # rows no fold validated (an ensemble's) are left out
            choice = tune_threshold(y_tr[seen], oof[seen, 1], targets=spec.targets)
            threshold = choice.threshold
    kw = _outputs(problem, outputs, threshold)
    metrics = evaluate(y_te, problem_type=problem, n_boot=n_boot, seed=seed, **kw)

    baselines, baseline_outputs = _baseline_scores(
        inc, comp, X_train=X_train, y_train=y_tr, X_test=X_test, y_test=y_te, problem=problem, threshold=0.5,
        fp=data_fingerprint or "", seed=seed)
    lifts = {}
    # The primary metric's lifts, and those of every metric a lift target names ("Accuracy:
    # Better than random baseline by 3x" reads accuracy against the random baselines); each CI
    # from the model and every baseline scored on the same resampled rows.
    lifted = [primary] + sorted({t.metric for t in spec.targets
                                 if t.relative_to is not None and t.metric not in ("primary", primary)})
    for name in lifted:
        if name in metrics and baselines:
            ci = (metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high"))
            paired = paired_samples(y_te, problem_type=problem, metric=name, model=kw,
                                    references=baseline_outputs, n_boot=n_boot, seed=seed)
            lifts.update(lift_metrics(
                name, metrics[name], {n: m[name] for n, m in baselines.items() if name in m},
                lower_is_better=get_metric(name).mode == "min", ci=ci if None not in ci else None,
                samples=paired, primary=name == primary))
    previous = _previous(inc, problem.name)
    parent = _parent_scores(inc, problem, X_test=X_test, y_test=y_test, classes=classes, n_boot=n_boot, seed=seed)
    gate = check_targets(spec.targets, {**metrics, **lifts}, source=None)

    notes = None
    if choice is not None:
        rate = float(np.mean(y_tr == 1))
        used = {k: v for k, v in best.params.items() if k in _IMBALANCE_PARAMS}
        if rate < 0.05:
            notes = (f"Positives are {rate:.3%} of the training rows. The held-out split and every CV fold are "
                     f"stratified, so each keeps that share. Class weighting used by the chosen model: "
                     f"{used or 'none (its search did not choose one)'}. Precision and recall are reported at "
                     f"the tuned threshold {threshold:.4f}, chosen on out-of-fold predictions of the training rows.")
    with track_experiment("evaluation", increment=inc, kind="evaluation", model=best.meta.get("model"),
                          meta={"data_fingerprint": data_fingerprint, "candidate": best.meta.get("candidate"),
                                "trial_record": best.id, "threshold": threshold}) as exp:
        exp.log_params({"candidate": best.meta.get("candidate"), "trial_record": best.id,
                        "split": "held-out test", "threshold": threshold, **{f"model.{k}": v for k, v in best.params.items()}})
        exp.log_metrics(_finite({**metrics, **lifts}))
        errors = error_analysis(X_test.reset_index(drop=True), y_te, problem_type=problem, **kw)
        atomic_write_json(exp.path / "error_analysis.json", errors)
        plots = write_plots(exp.path, y_te, problem_type=problem, curve=choice.curve if choice else None, **kw)
        if choice is not None:
            choice.curve.to_csv(exp.path / "threshold_curve.csv", index=False)
        report = render_report(metrics, problem_type=problem, threshold=choice, baselines=baselines,
                               previous=previous[1] if previous else None, errors=errors,
                               imbalance_note=notes, plots=[Path(p).name for p in plots])
        gate_md = render_gate(gate)
        report += _lift_section(primary, lifts, baselines)
        report += _parent_section(primary, metrics, parent)
        if parent is not None:
            atomic_write_json(exp.path / "parent.json", parent)
            if "metrics" in parent:
                exp.log_metrics({f"parent_{k}": v for k, v in parent["metrics"].items()
                                 if not k.endswith(("_ci_low", "_ci_high"))})
        exp.save_report("evaluation.md", report + "\n## Gate: spec targets\n\n" + gate_md)
        exp.save_report("gate.md", gate_md)
        atomic_write_json(exp.path / "gate.json", gate_json(gate))
    summary = {"record": exp.id, "candidate": best.meta.get("candidate"), "trial_record": best.id,
               "threshold": threshold, "metrics": {**metrics, **lifts}, "baselines": baselines,
               "previous": previous[0] if previous else None, "parent": parent, "metric": primary}
    return summary, gate
