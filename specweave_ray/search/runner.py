"""``run_experiments``: candidates → Ray Tune sweep → coordinator → records and comparison.

>>> from sklearn.datasets import load_breast_cancer                        # doctest: +SKIP
>>> from specweave_ray import ModelExperiment, run_experiments
>>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
>>> res = run_experiments([ModelExperiment("xgboost", "xgboost", {"max_depth": 3})], X, y,
...                       increment="0001", cv=3, metric="roc_auc")
>>> res.best.candidate, res.table.columns[:3].tolist()
('xgboost', ['candidate', 'kind', 'record'])
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray import problems
from specweave_ray._fs import atomic_write_json, read_json
from specweave_ray.candidates._ensemble import OUTPUTS
from specweave_ray.candidates.baselines import baseline_estimators
from specweave_ray.candidates.registry import resolve_estimator
from specweave_ray.candidates.serialization import save_native
from specweave_ray.candidates.staged import budget_of
from specweave_ray.exceptions import CandidateError, SweepError
from specweave_ray.problems import ProblemType
from specweave_ray.search import _ray
from specweave_ray.search._cache import cache_key
from specweave_ray.search._ensemble import add_ensembles
from specweave_ray.search._inputs import trial_inputs
from specweave_ray.search.coordinator import (
    Coordinator,
    Progress,
    TrialResult,
    best_per_candidate,
    cached_records,
    write_comparison,
)
from specweave_ray.search.trial import refit as refit_model
from specweave_ray.spec.config import SweepConfig, sweep_config
from specweave_ray.spec.experiment import ModelExperiment
from specweave_ray.workspace import _mlflow, storage
from specweave_ray.workspace._lineage import code_dirty_state, source_hash
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import (
    code_version,
    mark_interrupted,
    open_experiment,
    resolve_increment,
    sync_mlflow,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResults:
    """What a sweep produced: every trial, each candidate's best, where the best models went."""

    increment: Increment
    metric: str
    mode: str
    trials: tuple[TrialResult, ...]
    best_per_candidate: Mapping[str, TrialResult]
    comparison: Mapping[str, Any]
    models: Mapping[str, Path] = field(default_factory=dict)
    classes: tuple[Any, ...] | None = None
    sweep_record: str | None = None

    @property
    def best(self) -> TrialResult | None:
        """The best candidate trial (baselines excluded)."""
        name = self.comparison.get("best_candidate")
        return self.best_per_candidate.get(name) if name else None

    @property
    def failed(self) -> tuple[TrialResult, ...]:
        return tuple(t for t in self.trials if t.status == "failed")

    @property
    def table(self) -> pd.DataFrame:
        """One row per candidate (best trial) and baseline, sorted by the primary metric."""
        cols = ["candidate", "kind", "record", "cv_mean", "cv_std", "lift_over_best_baseline_pct",
                "fit_time_s", "best", "node"]
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in self.comparison["rows"]], columns=cols)


def _fingerprint(X: Any, y: Any) -> str:
    h = hashlib.sha256()
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    h.update(repr(list(map(str, frame.columns))).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(pd.Series(np.asarray(y)), index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()[:32]


def _baselines(problem: ProblemType, *, rule: str | None, seed: int) -> list[ModelExperiment]:
    return [ModelExperiment(name, type(est), est.get_params(), kind="baseline")
            for name, est in baseline_estimators(problem, rule=rule, random_state=seed).items()]


def _one_actor(experiments: Sequence[ModelExperiment], budgets: Mapping[str, int]) -> int | None:
    """1 when every trial left to run is a baseline's (T-003): their fits take milliseconds, and
    each further Tune actor is a fresh Ray worker importing pandas and scikit-learn (~4 CPU s),
    which on 2 cores delays the first trial (measured: a baseline-only sweep's first trial record
    13.5 s -> 7.5 s, the sweep 14.1 s -> 8.5 s, medians of 3 at load 7). None: the cluster's slots."""
    running = [e for e in experiments if budgets.get(e.name, 0) > 0]
    return 1 if running and all(e.kind == "baseline" for e in running) else None


def run_experiments(
    experiments: Sequence[ModelExperiment],
    X: Any,
    y: Any,
    *,
    increment: Increment | str | int | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    problem_type: str | None = None,
    metric: str | None = None,
    cv: int | Any | None = None,
    seed: int = 0,
    baselines: bool = True,
    rule: str | None = None,
    sweep: SweepConfig | Mapping[str, Any] | None = None,
    preprocessor: Any = "auto",
    use_cache: bool = True,
    refit: bool = True,
    data_fingerprint: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    time_budget_s: float | None = None,
) -> SweepResults:
    """Run every candidate's trials as Ray Tune trials in parallel and record them all.

    Args:
        experiments: The candidates.
        X, y: Training data (DataFrame or array; string labels are fine).
        increment: Increment handle, id, number or folder.
        problem_type: A registered problem type or alias (inferred from ``y`` when omitted).
        metric: Primary metric (default: the problem type's, e.g. roc_auc or rmse).
        cv: Folds, or a scikit-learn splitter (e.g. ``TimeSeriesSplit``); default
            ``sweep.cv`` folds of the problem type's splitter (stratified for classification).
        baselines: Also run the problem type's baselines (random/majority, mean/median) as trials.
        rule: A rule-based baseline, e.g. ``"balance > 1800"``.
        sweep: How the sweep runs (:class:`~specweave_ray.spec.SweepConfig` or a mapping of its
            fields): ASHA ``stages``,
            the cluster ``address`` (default ``$RAY_ADDRESS``, else an embedded local Ray),
            ``num_cpus``, ``max_concurrent``, ``autoscale`` (trials that fit on no node yet
            wait for one instead of failing fast) and ``pending_timeout_s`` (past it the sweep
            stops, finished trials stay recorded, and :class:`SweepError` names the candidates);
            ``trial_timeout_s`` and ``trial_memory_mb`` limit each trial (it runs in a forked
            child of its worker; past a limit it is recorded failed with cause ``timeout`` or
            ``oom``, as a dead one is with its exit code or signal and its node).
        preprocessor: ``"auto"`` (built from the columns), an unfitted transformer, or None.
        use_cache: Reuse trials recorded as finished with the same data, params, CV and code.
        refit: Fit each candidate's best params on all data and save the model natively.
        data_fingerprint: The dataset's fingerprint to record (default: of ``X`` and ``y``).
        on_progress: Called with a :class:`Progress` after every trial.
        time_budget_s: Wall-clock budget of the whole call (default ``sweep.time_budget_s``),
            counted from its start: Ray's start, the trials, the refits and the ensemble. The
            trials are stopped early enough to leave the refits and the ensemble the time the
            finished trials say they will take (:func:`after_sweep_s`); the trials still running
            then are recorded ``interrupted`` with the reason "stopped by the time budget", the
            ones not started are not run, and the comparison, refits and ensemble are built from
            the finished ones.

    Returns:
        :class:`SweepResults`.

    Raises:
        ConfigError, CandidateError: invalid metric/cv/candidates.
        SweepError: the cluster cannot host a candidate's resources (at once, or on an autoscaling
            cluster within ``pending_timeout_s``).
    """
    started = time.monotonic()  # a time budget counts from here (Ray's start is in it)
    sweep_cfg = sweep_config(sweep)
    if time_budget_s is not None:
        sweep_cfg = sweep_config({**sweep_cfg.model_dump(), "time_budget_s": time_budget_s})
    inc = resolve_increment(increment, root)
    experiments = list(experiments)
    if not experiments and not baselines:
        raise CandidateError("run_experiments needs at least one ModelExperiment (or baselines=True)")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise CandidateError(f"candidate names must be unique, got {names}")
    problem = problems.get(problem_type) if problem_type else problems.infer(y)
    metric_def = problem.metric(metric or problem.default_metric)
    if baselines:
        experiments = _baselines(problem, rule=rule, seed=seed) + experiments
    classes_by_name = {e.name: resolve_estimator(e.estimator, problem_type=problem) for e in experiments}
    experiments = [replace(e, estimator=classes_by_name[e.name]) for e in experiments]
    stages = sweep_cfg.stages
    inputs = trial_inputs(problem, X, y, cv=sweep_cfg.cv if cv is None else cv, seed=seed,
                          preprocessor=preprocessor)
    classes, y_arr, folds, cv_repr, preprocessor = (inputs.classes, inputs.y, inputs.folds, inputs.cv,
                                                    inputs.preprocessor)
    train_fp = _fingerprint(X, y)  # cache identity: exactly the rows and labels the trials see
    fingerprint = data_fingerprint or train_fp  # recorded: the dataset the user named
    version = code_version()
    lineage = {"seed": seed, "data_fingerprint": fingerprint,
               "preprocessor_source_sha256": source_hash(preprocessor) if preprocessor is not None else None}

    # -- result cache: finished trials with the same identity are reused, never rerun -------
    finished = cached_records(inc) if use_cache else []
    by_key = {r.meta["cache_key"]: r for r in finished}
    budgets, prior, reuse = {}, {}, []
    contexts = {}
    # staged fitting (ASHA's rungs) changes what a trial scores: part of the identity
    stages_of = {e.name: stages if (e.has_search_space and e.num_samples > 1 and stages > 1
                                    and budget_of(classes_by_name[e.name]()) is not None) else 1
                 for e in experiments}
    # the code that really runs: the commit, and the uncommitted edits when the tree is dirty;
    # the preprocessor's source when it is the user's class
    same = {"fingerprint": train_fp, "cv": cv_repr, "version": version, "metric": metric_def.name,
            "code_dirty": code_dirty_state(), "preprocessor": preprocessor}

    def key_of(name: str, params: Mapping[str, Any]) -> str:
        return cache_key(candidate=name, estimator=classes_by_name[name], params=params, stages=stages_of[name], **same)

    for e in experiments:
        ctx = key_of(e.name, {k: (v.to_json() if hasattr(v, "to_json") else repr(v)) for k, v in e.params.items()})
        contexts[e.name] = ctx
        if e.has_search_space:
            # by context, not by key: a search may have tried the same params twice
            earlier = [r for r in finished if r.meta.get("cache_context") == ctx][: e.num_samples]
            reuse += earlier
            prior[e.name] = [({k: r.params[k] for k in e.search_space if k in r.params}, r.metrics["cv_mean"])
                             for r in earlier if "cv_mean" in r.metrics]
            budgets[e.name] = max(0, e.num_samples - len(earlier))
        else:
            key = key_of(e.name, e.fixed_params)
            hit = by_key.get(key)
            budgets[e.name] = 0 if hit else e.num_samples
            reuse += [hit] if hit else []

    # a driver killed earlier left records `running`: they become `interrupted` (and unreused)
    mark_interrupted(inc)
    started_ray = _ray.ensure_ray(address=sweep_cfg.address, num_cpus=sweep_cfg.num_cpus)
    sweep_exp = coordinator = None
    try:
        _ray.check_resources(experiments, autoscale=sweep_cfg.autoscale,
                             pending_timeout_s=sweep_cfg.pending_timeout_s)
        sweep_exp = open_experiment("sweep", increment=inc, kind="sweep", mirror=True, meta={
            "data_fingerprint": fingerprint, "metric": metric_def.name, "problem_type": problem.name,
            "lineage": lineage})
        sweep_exp.log_params({"candidates": names, "cv": cv_repr, "metric": metric_def.name, "seed": seed,
                              "problem_type": problem.name, "budgets": budgets, "cached": len(reuse)})
        coordinator = Coordinator(
            inc, metric=metric_def, candidates={e.name: e for e in experiments},
            meta={"data_fingerprint": fingerprint, "cv": cv_repr, "sweep": sweep_exp.id, "metric": metric_def.name,
                  "problem_type": problem.name, "lineage": lineage},
            parent_run_id=None, total=sum(budgets.values()) + len(reuse), on_progress=on_progress,
            cache_key_fn=key_of,
            contexts=contexts)
        if _mlflow.enabled():
            coordinator.open_parent_run(lambda: _mlflow.start_run(
                inc.root, inc.id, name=sweep_exp.id, tags={"specweave.kind": "sweep"}))
            # records a killed driver wrote but did not mirror: mirrored now, on the mirror thread
            coordinator.mirror_later(lambda: sync_mlflow(inc, skip=(sweep_exp.id,)))
        for rec in reuse:
            coordinator.add_cached(rec)
        payload = {
            "X": X, "y": y_arr, "folds": folds, "metric": metric_def.name, "preprocessor": preprocessor,
            "problem_type": problem.name, "keep_oof": sweep_cfg.ensemble,
            "limits": {"timeout_s": sweep_cfg.trial_timeout_s, "memory_mb": sweep_cfg.trial_memory_mb,
                       "isolate": sweep_cfg.isolate_trials},
            "candidates": {e.name: {"cls": classes_by_name[e.name], "cpus": e.resources["cpu"],
                                    # rule baselines read named raw columns, not encoded features
                                    "raw": bool(getattr(classes_by_name[e.name], "requires_raw_frame", False)),
                                    "stages": stages_of[e.name]}
                           for e in experiments},
        }
        # Tune's own state beside the records, on the root's filesystem (trials on other nodes
        # write there directly; DESIGN.md: no shared disk is assumed)
        tune_path, tune_fs = storage.tune_storage(inc.experiments_dir / "tune")
        try:
            payload_ref = _ray.run_tune(experiments, payload, coordinator=coordinator, metric=metric_def.name,
                                         mode=metric_def.mode, budgets=budgets, prior=prior, seed=seed,
                                         pending_timeout_s=sweep_cfg.pending_timeout_s,
                                         max_concurrent=sweep_cfg.max_concurrent or _one_actor(experiments, budgets),
                                         name=sweep_exp.id,
                                         storage_path=tune_path, storage_filesystem=tune_fs,
                                         time_budget_s=sweep_cfg.time_budget_s,
                                         deadline=(started + sweep_cfg.time_budget_s
                                                   if sweep_cfg.time_budget_s is not None else None),
                                         after_sweep=_after_sweep_estimate(
                                             coordinator, experiments, n_folds=len(folds), refit=refit,
                                             in_tasks=not started_ray,
                                             ensemble=sweep_cfg.ensemble and problem.output in OUTPUTS)
                                         if sweep_cfg.time_budget_s is not None else None)
        except KeyboardInterrupt:
            # Ctrl-C: the trials still running get an `interrupted` record (the next run reruns
            # them; the finished ones are reused), and so does the sweep
            coordinator.record_interrupted()
            coordinator.flush()
            sweep_exp.close(status="interrupted")
            raise
        if sweep_cfg.time_budget_s is not None:
            # the budget stopped these trials without a completion event (see run_tune): each
            # launched trial still gets its record, none is left `running`
            stopped = coordinator.record_interrupted(
                reason=f"stopped by the time budget ({sweep_cfg.time_budget_s:g} s)", by="time_budget")
            if stopped:
                logger.info("time budget: %d running trial(s) stopped and recorded interrupted", len(stopped))
        coordinator.flush()
        if coordinator.parent_run_id:
            sweep_exp.update_meta(mlflow_run_id=coordinator.parent_run_id)
        trials = list(coordinator.results.values())
        summary = write_comparison(inc, trials, metric_def)
        best = best_per_candidate(trials, metric_def)
        models: dict[str, Path] = {}
        if refit and best:
            chosen = {n: (next(e for e in experiments if e.name == n), dict(t.params)) for n, t in best.items()}
            # Fitted here, in threads, rather than as Ray tasks: the baselines (a prior, a rule, a
            # mean: a Ray task would start a worker for a millisecond's fit), and on the embedded
            # Ray every CPU candidate (this machine is the cluster; a task's fresh worker costs
            # 1.5–3 s of process start and imports on 2 cores, more than most refits). GPU
            # candidates and a real cluster's refits stay Ray tasks.
            here = {n: c for n, c in chosen.items()
                    if c[0].kind == "baseline" or (started_ray and float(c[0].resources["gpu"]) == 0)}
            fitted = {**_refit_here(payload, here, threads=_ray.slots(experiments)),
                      **_ray.refit_best(payload_ref, {n: c for n, c in chosen.items() if n not in here})}
            for name, out in fitted.items():
                if isinstance(out, Exception):
                    continue
                models[name] = _save_model(inc, best[name], out, classes=classes)
        oof = coordinator.out_of_fold(best) if sweep_cfg.ensemble else {}
        if refit and oof and problem.output in OUTPUTS:
            try:
                ensembles, ens_info = add_ensembles(
                    inc, oof=oof, best=best, y=y_arr, folds=folds, metric=metric_def, output=problem.output, X=X,
                    fitted={n: out[:2] for n, out in fitted.items()
                            if not isinstance(out, Exception) and not payload["candidates"][n]["raw"]},
                    meta=coordinator.meta, classes=classes, rounds=sweep_cfg.ensemble_rounds,
                    target_p99_ms=sweep_cfg.ensemble_latency_p99_ms,
                    clients=sweep_cfg.ensemble_latency_clients, target_rps=sweep_cfg.ensemble_throughput_rps,
                    seed=seed)
            except Exception as err:  # noqa: BLE001 - the single candidates stand; the comparison says why
                logger.warning("the ensemble was not built: %s: %s", type(err).__name__, err)
                ensembles, ens_info = [], {"built": False, "chosen": None,
                                           "reason": f"the ensemble failed: {type(err).__name__}: {err}"}
            summary = write_comparison(inc, trials + ensembles, metric_def, ensemble=ens_info)
            best = best_per_candidate(trials + ensembles, metric_def)
            models.update({t.candidate: inc.experiments_dir / t.record_id for t in ensembles})
        sweep_exp.log_metrics({"trials": len(trials), "failed": sum(t.status == "failed" for t in trials),
                               "cached": len(reuse),
                               **({f"best_{metric_def.name}": best[summary["best_candidate"]].score}
                                  if summary.get("best_candidate") else {})})
        sweep_exp.log_note(f"Best: {summary.get('best_candidate')} ({summary.get('best')}); "
                           f"{summary['failed']} failed of {summary['trials']} trials.")
        sweep_exp.close()
        # a URI root: the records and MLflow runs are there before this returns
        storage.push_now(inc.experiments_dir, *_mlflow.local_store(inc.root, inc.id))
    except SweepError as err:
        if coordinator is not None:  # the finished trials' queued records, written before the sweep's
            try:
                coordinator.flush()
            except Exception:  # noqa: BLE001 - the SweepError is what the caller must see
                logger.exception("writing the trials' records failed")
        if sweep_exp is not None:  # stopped mid-sweep: finished trials are recorded, the sweep says why
            sweep_exp.close(error=err)
        raise
    finally:
        if started_ray:
            _ray.shutdown()
    return SweepResults(increment=inc, metric=metric_def.name, mode=metric_def.mode, trials=tuple(trials),
                        best_per_candidate=best, comparison=summary, models=models,
                        classes=tuple(classes.tolist()) if classes is not None else None, sweep_record=sweep_exp.id)


def _save_model(inc: Increment, trial: TrialResult, fitted: tuple[Any, Any, list[str], str], *,
                classes: Any) -> Path:
    """Save a refitted model natively in its best trial's record and note it in meta.json."""
    model, pre, warnings, node = fitted
    path = inc.experiments_dir / trial.record_id
    info = {"model": save_native(model, path, name="model"), "refit_node": node, "refit_warnings": warnings}
    if pre is not None:
        info["features"] = save_native(pre, path, name="features")
    if classes is not None:
        info["classes"] = classes.tolist()
    meta = read_json(path / "meta.json", {})
    meta.setdefault("artifacts", {}).update(info)
    atomic_write_json(path / "meta.json", meta)
    if _mlflow.enabled() and meta.get("mlflow_run_id"):
        try:
            client = _mlflow.client_for(inc.root)
            for fname in [*info["model"]["files"], *(info.get("features", {}).get("files", {}))]:
                client.log_artifact(meta["mlflow_run_id"], str(path / fname), artifact_path="model")
        except Exception as err:  # noqa: BLE001
            logger.warning("MLflow artifact upload for %s failed: %s", trial.record_id, err)
    return path


# What the refits and the ensemble cost after a budgeted sweep stops, beyond the fits themselves:
# a refit is a Ray task in a fresh worker (its process start and imports: 1.5–3 s measured on 2
# loaded cores), the ensemble a greedy search and a stack over the out-of-fold outputs (~1–2.5 s
# there for three members on 569 rows), Tune's teardown of the stopped trials (~0.5 s).
_REFIT_TASK_S = 2.5
_ENSEMBLE_S = 2.5
_TEARDOWN_S = 1.0


def after_sweep_s(trials: Any, experiments: Sequence[ModelExperiment], *, n_folds: int, refit: bool,
                  ensemble: bool, slots: int, in_tasks: bool = True) -> float:
    """Seconds a budgeted sweep keeps for what runs after its trials: each candidate's refit on
    all training rows (its finished trials' median fit time per fold, scaled from ``k-1`` folds'
    rows to all ``k``; the refits run ``slots`` at a time, each in a fresh Ray worker when
    ``in_tasks``), the ensemble, the teardown."""
    if not refit:
        return _TEARDOWN_S
    per_fold: dict[str, list[float]] = {}
    scale = 1 / max(n_folds - 1, 1)  # a fold's fit time → a fit on all k folds' rows (k/(k-1) of them)
    for t in list(trials):
        if t.status == "finished" and t.kind != "baseline" and t.metrics.get("fit_time_s") is not None:
            per_fold.setdefault(t.candidate, []).append(float(t.metrics["fit_time_s"]) * scale)
    names = [e.name for e in experiments if e.kind != "baseline"]
    fits = sorted((float(np.median(per_fold[n])) if n in per_fold else 0.0 for n in names), reverse=True)
    waves = [fits[i:i + max(1, slots)] for i in range(0, len(fits), max(1, slots))]
    refits = sum((_REFIT_TASK_S if in_tasks else 0.0) + max(w) for w in waves)
    return _TEARDOWN_S + refits + (_ENSEMBLE_S if ensemble and len(names) > 1 else 0.0)


def _after_sweep_estimate(coordinator: Coordinator, experiments: Sequence[ModelExperiment], **kw: Any
                          ) -> Callable[[], float]:
    """:func:`after_sweep_s` as the budget's stopper asks for it at every Tune step: the cluster's
    slots read once, the estimate recomputed only when a trial has been recorded since."""
    slots = _ray.slots(experiments)
    memo: dict[str, Any] = {"n": -1, "s": 0.0}

    def estimate() -> float:
        n = len(coordinator.results)
        if n != memo["n"]:
            memo["n"], memo["s"] = n, after_sweep_s(list(coordinator.results.values()), experiments,
                                                    slots=slots, **kw)
        return memo["s"]

    return estimate


def _refit_here(payload: Mapping[str, Any], chosen: Mapping[str, tuple[ModelExperiment, dict[str, Any]]], *,
                threads: int) -> dict[str, Any]:
    """``_ray.refit_best``'s result, fitted in this process, ``threads`` at a time (the boosters
    and scikit-learn's solvers release the GIL while they fit)."""
    node = _ray.node_id()

    def one(name: str, params: Mapping[str, Any]) -> Any:
        cand = payload["candidates"][name]
        try:
            model, pre, warnings = refit_model(cand["cls"], params, payload["X"], payload["y"], cpus=cand["cpus"],
                                               preprocessor=None if cand["raw"] else payload["preprocessor"])
            return model, pre, warnings, node
        except Exception as err:  # noqa: BLE001 - as refit_best: a failed refit is reported, the sweep stands
            logger.warning("refit of %s failed: %s", name, err)
            return err

    if not chosen:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(chosen))), thread_name_prefix="refit") as pool:
        futures = {name: pool.submit(one, name, params) for name, (_, params) in chosen.items()}
        return {name: f.result() for name, f in futures.items()}
