"""The whole run, task by task, as ``tasks.md`` lists them: T-001 data … T-006 evaluation.

Only this module and ``cli.py`` import every stage. Each task writes its records and ticks its
line in ``tasks.md``; a ticked task is skipped on the next run (its records are reused) unless
``start`` names it or an earlier task. The config a run used is kept as ``<increment>/pipeline.yaml``
so ``specweave-ray do ID`` can run the open tasks later without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from specweave_ray._fs import atomic_write_json, atomic_write_text, read_json
from specweave_ray.exceptions import ConfigError
from specweave_ray.search.coordinator import Progress
from specweave_ray.search.experiment import ModelExperiment
from specweave_ray.spec.config import PipelineConfig, parse_config
from specweave_ray.workspace import _mlflow, storage
from specweave_ray.workspace.increment import Increment, list_increments, resolve_root, slugify
from specweave_ray.workspace.records import list_records, track_experiment

logger = logging.getLogger(__name__)
TASK_ORDER = ("T-001", "T-002", "T-003", "T-004", "T-005", "T-006", "T-007", "T-008", "T-009")
CONFIG_NAME = "pipeline.yaml"


@dataclass
class PipelineResult:
    """What a run produced; ``gate`` is the list of ``GateRow`` from the held-out evaluation."""

    increment: Increment
    data_fingerprint: str
    rows_train: int
    rows_test: int
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sweep: Any = None
    evaluation: dict[str, Any] | None = None
    gate: list[Any] = field(default_factory=list)


def ensure_increment(cfg: PipelineConfig, *, root: str | os.PathLike[str] | None = None) -> Increment:
    """Open the config's increment under the root, creating it (from its spec file) if missing."""
    from specweave_ray.spec._grammar import load_spec

    base = resolve_root(root, config_root=cfg.root)
    spec_text = None
    problem_type = cfg.problem_type
    if cfg.spec:
        spec = load_spec(cfg.spec)
        spec_text = Path(cfg.spec).read_text(encoding="utf-8")
        if problem_type and spec.problem_type != problem_type:
            raise ConfigError(f"{cfg.source}: problem_type {problem_type!r} disagrees with {cfg.spec} "
                              f"({spec.problem_type!r})")
        problem_type = spec.problem_type
    slug = slugify(cfg.increment)
    existing = [i for i in list_increments(base) if i.slug == slug]
    if existing:
        storage.pull(existing[0].path)  # a URI root: its records, for the cache and ticked tasks
        return existing[0]
    return Increment.create(cfg.increment, problem_type=problem_type or "classification", root=base,
                            spec_text=spec_text)


def save_config(inc: Increment, cfg: PipelineConfig) -> Path:
    data = cfg.model_dump(mode="json", exclude_none=True, exclude={"source"})
    return atomic_write_text(inc.path / CONFIG_NAME, yaml.safe_dump(data, sort_keys=False))


def stored_config(inc: Increment) -> PipelineConfig:
    path = inc.path / CONFIG_NAME
    if not path.exists():
        raise ConfigError(f"{inc.id} has no {CONFIG_NAME}; run it once with a config "
                          f"(specweave-ray run CONFIG) or pass --config")
    return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def _problem_type(cfg: PipelineConfig) -> str:
    from specweave_ray.spec._grammar import load_spec

    return load_spec(cfg.spec).problem_type if cfg.spec else (cfg.problem_type or "classification")


def load_data(cfg: PipelineConfig) -> pd.DataFrame:
    from specweave_ray.data._load import load_table
    from specweave_ray.data.datasets import generate

    if cfg.data.generate:
        kwargs = dict(cfg.data.params)
        if cfg.data.rows:
            kwargs["n_rows"] = cfg.data.rows
        return generate(cfg.data.generate, seed=cfg.seed, **kwargs)
    return load_table(cfg.data.path)


def candidate_experiments(cfg: PipelineConfig, problem_type: str, y: Any = None) -> list[ModelExperiment]:
    """The config's candidates (or the default set), with class weighting added for rare positives."""
    from specweave_ray.candidates.registry import default_candidates

    if cfg.candidates is None:
        exps = [ModelExperiment(c.name, c.estimator, c.params) for c in default_candidates(problem_type)]
    else:
        exps = [ModelExperiment(c.name, c.estimator, c.params, num_samples=c.num_samples, resources=c.resources)
                for c in cfg.candidates]
    return _weight_rare_class(exps, problem_type, y)


_WEIGHTING = {"LogisticRegression": "class_weight", "TorchMLPClassifier": "class_weight",
              "RandomForestClassifier": "class_weight", "XGBClassifier": "scale_pos_weight",
              "LGBMClassifier": "is_unbalance"}


def _weight_rare_class(exps: list[ModelExperiment], problem_type: str, y: Any) -> list[ModelExperiment]:
    """Binary targets with < 5% positives: each candidate that has a class-weighting parameter and
    was not given one gets it (balanced weights; XGBoost's scale_pos_weight = negatives/positives)."""
    if problem_type != "classification" or y is None:
        return exps
    counts = pd.Series(np.asarray(y)).value_counts()
    if len(counts) != 2 or counts.min() / counts.sum() >= 0.05:
        return exps
    from specweave_ray.candidates.registry import resolve_estimator

    values = {"class_weight": "balanced", "scale_pos_weight": float(counts.max() / counts.min()), "is_unbalance": True}
    out = []
    for e in exps:
        param = _WEIGHTING.get(resolve_estimator(e.estimator, problem_type=problem_type).__name__)
        out.append(replace(e, params={**e.params, param: values[param]}) if param and param not in e.params else e)
    return out


@dataclass
class _Run:
    cfg: PipelineConfig
    inc: Increment
    spec: Any
    problem_type: str
    df: pd.DataFrame
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    fp: str
    address: str | None
    use_cache: bool
    on_progress: Callable[[Progress], None] | None
    say: Callable[[str], None]
    sweep: Any = None


def run_pipeline(
    cfg: PipelineConfig,
    *,
    root: str | os.PathLike[str] | None = None,
    increment: Increment | None = None,
    start: str | None = None,
    address: str | None = None,
    use_cache: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run the increment's open tasks (T-001 … T-006) in order.

    Args:
        cfg: The pipeline config.
        root: Increments root (``--root``).
        increment: Use this increment instead of finding/creating it from ``cfg``.
        start: Rerun from this task (``"T-004"``), even if it and later ones are ticked.
        address: Ray cluster address (default ``$RAY_ADDRESS``, else an embedded local Ray).
        use_cache: Reuse trials recorded as finished (see ``run_experiments``).
    """
    from specweave_ray.data import _load as data_mod

    say = on_stage or (lambda _msg: None)
    if start is not None and start not in TASK_ORDER:
        raise ConfigError(f"--from {start!r}: the pipeline's tasks are {', '.join(TASK_ORDER)}")
    # Read and check the data before anything is written: bad input leaves no partial increment.
    problem_type = increment.spec().problem_type if increment else _problem_type(cfg)
    df = load_data(cfg)
    X, y = data_mod.split_xy(df, target=cfg.data.target)
    data_mod.check_target(y, problem_type)

    inc = increment or ensure_increment(cfg, root=root)
    spec = inc.spec()
    problem_type = spec.problem_type
    if problem_type not in ("classification", "regression", "timeseries"):
        raise ConfigError(f"{inc.spec_path}: the pipeline runs classification, regression and timeseries "
                          f"increments; {problem_type!r} is not supported yet")
    schema_path = inc.data_dir / "schema.yaml"
    if schema_path.exists():  # later runs: new data must match what the increment was built on
        data_mod.validate(df, data_mod.read_schema(schema_path), source=str(cfg.data.path or cfg.data.generate))
    for folder in (inc.experiments_dir, inc.data_dir, inc.models_dir, inc.notebooks_dir):
        folder.mkdir(parents=True, exist_ok=True)  # stage folders are not committed with a spec
    save_config(inc, cfg)
    say(f"increment {inc.id} ({problem_type}) under {storage.display(inc.root)}")
    X_train, X_test, y_train, y_test = data_mod.holdout_split(
        X, y, problem_type=problem_type, test_size=cfg.data.test_size, seed=cfg.seed,
        time_column=cfg.data.time_column)
    run = _Run(cfg, inc, spec, problem_type, df, X_train, X_test, y_train, y_test, data_mod.fingerprint(df),
               address, use_cache, on_progress, say)
    say(f"data: {len(df)} rows ({len(X_train)} train / {len(X_test)} held out), fingerprint {run.fp}")

    result = PipelineResult(increment=inc, data_fingerprint=run.fp, rows_train=len(X_train), rows_test=len(X_test))
    done = {t.id for t in inc.tasks() if t.done}
    stages: dict[str, Callable[[_Run, PipelineResult], None]] = {
        "T-001": _data, "T-002": _features, "T-003": _baselines, "T-004": _candidates, "T-005": _tuning,
        "T-006": _evaluation, "T-007": _explain, "T-008": _deploy, "T-009": _ab_plan}
    rerun_from = TASK_ORDER.index(start) if start else len(TASK_ORDER)
    for i, task in enumerate(TASK_ORDER):
        if task in done and i < rerun_from:
            result.skipped.append(task)
            _load_outputs(run, result, task)
            continue
        stages[task](run, result)
        _publish(inc)  # a URI root holds the task's outputs before the task is ticked
        inc.tick(task)
        result.ran.append(task)
    _publish(inc)  # also when every task was skipped: what an earlier run failed to upload
    return result


def _publish(inc: Increment) -> None:
    """Upload what the task (or an earlier run) wrote and the root lacks, and wait for it;
    nothing to do for a local root."""
    storage.push_now(inc.path, *_mlflow.local_store(inc.root, inc.id))


# -- stages --------------------------------------------------------------------------------
def _data(run: _Run, result: PipelineResult) -> None:
    from specweave_ray.data import _load as data_mod

    inc, target = run.inc, run.cfg.data.target
    with track_experiment("data-profile", increment=inc, kind="data", meta={"data_fingerprint": run.fp}) as exp:
        prof = data_mod.profile(run.df, target=target, problem_type=run.problem_type)
        atomic_write_json(inc.data_dir / "profile.json", prof)
        schema_path = inc.data_dir / "schema.yaml"
        if not schema_path.exists():
            data_mod.write_schema(data_mod.infer_schema(run.df, target=target), schema_path)
        sample = data_mod.sample(run.df, target=target, n=1000, problem_type=run.problem_type, seed=run.cfg.seed)
        sample.to_parquet(inc.data_dir / "sample.parquet", index=False)
        exp.log_params({"source": run.cfg.data.path or f"generate:{run.cfg.data.generate}", "target": target,
                        "test_size": run.cfg.data.test_size, "rows_train": len(run.X_train),
                        "rows_test": len(run.X_test), "leakage_suspects": prof.get("leakage_suspects")})
        exp.log_metrics({"rows": len(run.df), "columns": run.df.shape[1],
                         "missing_values": int(run.df.isna().sum().sum()),
                         "duplicate_rows": int(prof.get("duplicate_rows", 0))})
        data_mod.write_eda_report(run.df, prof, exp.path, target=target, problem_type=run.problem_type)
    run.say(f"T-001 data profile → {exp.id}")


def _features(run: _Run, result: PipelineResult) -> None:
    from specweave_ray.features import feature_types

    with track_experiment("feature-pipeline", increment=run.inc, kind="features",
                          meta={"data_fingerprint": run.fp}) as exp:
        types = feature_types(run.X_train)
        exp.log_params({"features": types, "numeric": "median impute + standard scale",
                        "categorical": "most-frequent impute + one-hot (max 20 levels, rare → infrequent)",
                        "datetime": "year, month, day, weekday, hour", "fitted": "inside each CV fold"})
        exp.log_metrics({"n_features": len(types),
                         "n_numeric": sum(t == "numeric" for t in types.values()),
                         "n_categorical": sum(t == "categorical" for t in types.values())})
    run.say(f"T-002 feature pipeline ({len(types)} columns) → {exp.id}")


def _sweep(run: _Run, experiments: list[ModelExperiment], *, refit: bool) -> Any:
    from specweave_ray.search.runner import run_experiments

    cfg = run.cfg
    return run_experiments(
        experiments, run.X_train, run.y_train, increment=run.inc, cv=cfg.sweep.cv,
        metric=cfg.metric or run.spec.primary_metric, problem_type=run.problem_type,
        baselines=cfg.baselines.enabled, rule=cfg.baselines.rule, stages=cfg.sweep.stages, seed=cfg.seed,
        address=run.address or cfg.sweep.address, num_cpus=cfg.sweep.num_cpus,
        max_concurrent=cfg.sweep.max_concurrent, use_cache=run.use_cache, refit=refit,
        autoscale=cfg.sweep.autoscale, pending_timeout_s=cfg.sweep.pending_timeout_s,
        data_fingerprint=run.fp, on_progress=run.on_progress)


def _baselines(run: _Run, result: PipelineResult) -> None:
    run.sweep = result.sweep = _sweep(run, [], refit=False)
    run.say(f"T-003 baselines: {', '.join(result.sweep.best_per_candidate)}")


def _candidates(run: _Run, result: PipelineResult) -> None:
    run.sweep = result.sweep = _sweep(run, candidate_experiments(run.cfg, run.problem_type, run.y_train), refit=False)
    best = result.sweep.best
    run.say(f"T-004 candidates: best {best.candidate} cv {result.sweep.metric}={best.score:.4f}" if best
            else "T-004 candidates: no candidate finished")


def _tuning(run: _Run, result: PipelineResult) -> None:
    """A deeper Optuna search on the best candidate: the same study continues (earlier trials are
    its prior), the budget grows to ``sweep.tuning_samples``; the others are reused from cache."""
    exps = candidate_experiments(run.cfg, run.problem_type, run.y_train)
    comp = read_json(run.inc.experiments_dir / "comparison.json", {})
    best = comp.get("best_candidate")
    budget = run.cfg.sweep.tuning_samples
    exps = [replace(e, num_samples=max(budget, e.num_samples)) if e.name == best and e.has_search_space else e
            for e in exps]
    run.sweep = result.sweep = _sweep(run, exps, refit=True)
    b = result.sweep.best
    run.say(f"T-005 tuning ({best}: {budget} trials): best {b.candidate} cv {result.sweep.metric}={b.score:.4f}"
            if b else "T-005 tuning: no candidate finished")


def _evaluation(run: _Run, result: PipelineResult) -> None:
    from specweave_ray.evaluate.holdout import evaluate_holdout

    result.evaluation, result.gate = evaluate_holdout(
        run.inc, run.spec, X_train=run.X_train, y_train=run.y_train, X_test=run.X_test, y_test=run.y_test,
        cv=run.cfg.sweep.cv, seed=run.cfg.seed, data_fingerprint=run.fp)
    run.say(f"T-006 evaluation → {result.evaluation['record']}")


def _package_for_evaluation(run: _Run) -> int:
    """The package built from the newest evaluation record, built now if there is none."""
    from specweave_ray.deploy.package import build_package, list_packages

    ev = list_records(run.inc, kind="evaluation")
    if not ev:
        raise ConfigError(f"{run.inc.id} has no evaluation record; run T-006 first")
    for meta in reversed(list_packages(run.inc)):
        if meta.get("evaluation_record") == ev[-1].id:
            return int(meta["version"])
    sample = run.X_train.sample(min(len(run.X_train), 5000), random_state=run.cfg.seed)
    path = build_package(run.inc, evaluation_record=ev[-1].id, reference_data=sample)
    return int(read_json(path)["version"])


def _explain(run: _Run, result: PipelineResult) -> None:
    """T-007: package the evaluated model (what gets explained is what ships), then global
    importance as mean |SHAP| per input column on held-out rows, and explained examples."""
    from specweave_ray.deploy._explain_report import write_explainability
    from specweave_ray.deploy.predictor import Predictor

    version = _package_for_evaluation(run)
    predictor = Predictor.load(run.inc, version=version)
    record = write_explainability(run.inc, predictor, run.X_test, run.y_test, seed=run.cfg.seed,
                                  data_fingerprint=run.fp)
    run.say(f"T-007 explainability (model-v{version}, {predictor.explainer_kind}) → {record}")


def _deploy(run: _Run, result: PipelineResult) -> None:
    """T-008: benchmark the package in process and over HTTP on loopback, gate every spec target
    (held-out metrics + latency/throughput), and mark the package passed or failed."""
    from specweave_ray.deploy.bench import run_bench
    from specweave_ray.deploy.package import mark
    from specweave_ray.evaluate.gate import check_targets, gate_json, gate_passed, render_gate

    version = _package_for_evaluation(run)
    bench_id, bench_metrics, _ = run_bench(run.inc, version=version, http=True, engine="local",
                                           total_requests=3000)
    ev = list_records(run.inc, kind="evaluation")[-1]
    rows = check_targets(run.spec.targets, {**ev.metrics, **bench_metrics})
    passed = gate_passed(rows)
    mark(run.inc, version, status="passed" if passed else "failed")
    with track_experiment("deployment-gate", increment=run.inc, kind="gate",
                          meta={"data_fingerprint": run.fp, "package": f"model-v{version}",
                                "evaluation_record": ev.id, "benchmark_record": bench_id}) as exp:
        exp.log_params({"package": f"model-v{version}", "passed": passed})
        exp.log_metrics({"targets": len(rows), "met": sum(r.status == "met" for r in rows),
                         "not_met": sum(r.status == "not met" for r in rows),
                         "not_measured": sum(r.status == "not measured" for r in rows)})
        exp.save_report("gate.md", render_gate(rows))
        atomic_write_json(exp.path / "gate.json", gate_json(rows))
    result.gate = rows
    run.say(f"T-008 model-v{version}: {'passed' if passed else 'failed'} the gate "
            f"(benchmark {bench_id}, gate {exp.id})")


def _ab_plan(run: _Run, result: PipelineResult) -> None:
    """T-009: ab-test-plan.md with the sample size computed from the measured base rate."""
    from specweave_ray.deploy.abtest import render_ab_plan

    comp = read_json(run.inc.experiments_dir / "comparison.json", {})
    spec = run.spec
    previous = [i for i in list_increments(run.inc.root) if i.number < run.inc.number]
    control = (f"the model of {previous[-1].id}" if previous else
               f"today's process, approximated by the best baseline ({comp.get('best_baseline')})")
    from specweave_ray.deploy.package import list_packages

    pkgs = list_packages(run.inc)
    candidate = (f"model-v{pkgs[-1]['version']} ({comp.get('best_candidate')})" if pkgs
                 else str(comp.get("best_candidate")))
    guardrails = [t.render() for t in spec.targets if t.metric in ("latency_p99", "latency_p95", "latency_p50",
                                                                   "throughput", "precision", "recall")]
    y = run.y_train
    kwargs: dict[str, Any] = {}
    if run.problem_type == "classification":
        counts = pd.Series(np.asarray(y)).value_counts(normalize=True)
        kwargs["baseline_rate"] = float(counts.min()) if len(counts) == 2 else float(counts.max())
        metric = ("rate of positive outcomes missed per unit (e.g. fraud losses per transaction)"
                  if len(counts) == 2 else "rate of correct decisions")
    else:
        values = np.asarray(y, dtype=float)
        kwargs.update(baseline_rate=None, baseline_mean=float(values.mean()), baseline_std=float(values.std()))
        metric = f"mean {run.cfg.data.target} per unit"
    ab = run.cfg.abtest
    text = render_ab_plan(increment_id=run.inc.id, problem_type=run.problem_type, control=control,
                          candidate=candidate, primary_metric=metric, mde_relative=ab.mde_relative,
                          daily_traffic=ab.daily_traffic, traffic_split=ab.traffic_split,
                          guardrails=guardrails, **kwargs)
    atomic_write_text(run.inc.path / "ab-test-plan.md", text)
    with track_experiment("ab-test-plan", increment=run.inc, kind="ab-plan", meta={"data_fingerprint": run.fp}) as exp:
        exp.log_params({"control": control, "candidate": candidate, "primary_metric": metric,
                        "mde_relative": ab.mde_relative, "daily_traffic": ab.daily_traffic})
        exp.save_report("ab-test-plan.md", text)
    run.say(f"T-009 A/B test plan → {storage.display(run.inc.path / 'ab-test-plan.md')}")


def _load_outputs(run: _Run, result: PipelineResult, task: str) -> None:
    """Outputs of a skipped task: everything later tasks need is on disk (comparison.json and the
    records), so only the evaluation summary is read back for the caller."""
    if task == "T-006":
        evals = list_records(run.inc, kind="evaluation")
        if evals:
            result.evaluation = {"record": evals[-1].id, **evals[-1].metrics}


__all__ = ["PipelineResult", "ensure_increment", "run_pipeline", "save_config", "stored_config"]
