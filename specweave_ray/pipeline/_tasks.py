"""The whole run, task by task, as ``tasks.md`` lists them: T-001 data … T-009 A/B plan, then
the increment's notebooks, written from what the tasks recorded.

Each task is one call into its stage; this module (with ``cli.py``) is the only one that imports
every stage. Each task writes its records and ticks its line in ``tasks.md``; a ticked task is
skipped on the next run (its records are reused) unless ``start`` names it or an earlier task.
The config a run used is kept as ``<increment>/pipeline.yaml`` so ``specweave-ray do ID`` can run
the open tasks later without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from specweave_ray import data as data_mod
from specweave_ray import problems
from specweave_ray._fs import atomic_write_text, exclusive, read_json
from specweave_ray.deploy import Predictor, package_for_evaluation
from specweave_ray.deploy._explain_report import write_explainability
from specweave_ray.deploy._release import release_gate, write_ab_plan
from specweave_ray.deploy.bench import HTTP_CLIENTS
from specweave_ray.evaluate import evaluate_holdout
from specweave_ray.exceptions import ConfigError, IncrementError, SweepError
from specweave_ray.finish.notebooks import NOTEBOOKS, write_notebooks
from specweave_ray.problems import ProblemType
from specweave_ray.search import (
    Progress,
    SweepResults,
    candidates_for,
    deepen,
    preflight,
    run_experiments,
    shutdown_ray,
)
from specweave_ray.spec import ModelExperiment, PipelineConfig, Spec, load_spec, parse_config
from specweave_ray.workspace import (
    Increment,
    _mlflow,
    list_increments,
    list_records,
    resolve_root,
    run_lineage,
    slugify,
    storage,
)
from specweave_ray.workspace._lineage import config_hash

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
    sweep: SweepResults | None = None
    evaluation: dict[str, Any] | None = None
    gate: list[Any] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)  # task → why the problem type skips it


def ensure_increment(cfg: PipelineConfig, *, root: str | os.PathLike[str] | None = None) -> Increment:
    """Open the config's increment under the root, creating it (from its spec file) if missing."""
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
    existing = _existing(cfg, root=root)
    if existing is not None:
        check_parent(cfg, existing)
        storage.pull(existing.path)  # a URI root: its records, for the cache and ticked tasks
        return existing
    return Increment.create(cfg.increment, problem_type=problem_type, root=base, spec_text=spec_text,
                            parent=cfg.parent)


def check_parent(cfg: PipelineConfig, inc: Increment) -> None:
    """A config's ``parent`` must be the increment's own (``metadata.json``), never a new one.

    Raises:
        ConfigError: the increment follows another parent, or none.
        IncrementNotFoundError: the named parent is not under the root.
    """
    if cfg.parent is None:
        return
    named, own = Increment.open(cfg.parent, root=inc.root), inc.parent()
    if own is None or own.id != named.id:
        raise ConfigError(f"{cfg.source}: parent {cfg.parent!r} ({named.id}) is not {inc.id}'s parent "
                          f"({own.id if own else 'none'}); a parent is set when the increment is created")


def _config_data(cfg: PipelineConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json", exclude_none=True, exclude={"source"})


def _existing(cfg: PipelineConfig, *, root: str | os.PathLike[str] | None) -> Increment | None:
    """The config's increment when it exists under the root (found by its slug)."""
    base = resolve_root(root, config_root=cfg.root)
    slug = slugify(cfg.increment)
    return next((i for i in list_increments(base) if i.slug == slug), None)


def save_config(inc: Increment, cfg: PipelineConfig) -> Path:
    return atomic_write_text(inc.path / CONFIG_NAME, yaml.safe_dump(_config_data(cfg), sort_keys=False))


def config_identity(cfg: PipelineConfig) -> str:
    """The config hash every record of a run names: of what ``pipeline.yaml`` holds."""
    return config_hash(_config_data(cfg))


def stored_config(inc: Increment) -> PipelineConfig:
    path = inc.path / CONFIG_NAME
    if not path.exists():
        raise ConfigError(f"{inc.id} has no {CONFIG_NAME}; run it once with a config "
                          f"(specweave-ray run CONFIG) or pass --config")
    return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def _problem(cfg: PipelineConfig) -> ProblemType:
    # the config's validator: a problem_type, or a spec whose spec.md names one
    return problems.get(load_spec(cfg.spec).problem_type if cfg.spec else cfg.problem_type)


def primary_metric(cfg: PipelineConfig, problem: ProblemType, *, spec: Spec | None) -> str:
    """The run's primary metric: the config's, else the spec's, else the type's default; ``k``
    (``--k``) sets a ranking metric's list length.

    Raises:
        ConfigError: the metric does not apply to the type, or ``k`` is given for a metric with
            no cut-off.
    """
    name = cfg.metric or (spec.primary_metric if spec is not None else None) or problem.default_metric
    if cfg.k is not None:
        name = problem.with_k(name, cfg.k)
    return problem.metric(name).name


def load_data(cfg: PipelineConfig) -> pd.DataFrame:
    if cfg.data.generate:
        kwargs = dict(cfg.data.params)
        if cfg.data.rows:
            kwargs["n_rows"] = cfg.data.rows
        return data_mod.generate(cfg.data.generate, seed=cfg.seed, **kwargs)
    return data_mod.load_table(cfg.data.path)


def framed_data(cfg: PipelineConfig, problem: ProblemType) -> tuple[pd.DataFrame, Any, pd.Series, str | None]:
    """``(table, X, y, target)``: the config's data framed by the problem type, its target
    checked; the table is what the data fingerprint is of (the framed interactions for a type
    whose models don't read features)."""
    df = load_data(cfg)
    X, y = problem.frame(df, target=cfg.data.target, columns=cfg.data.columns)
    problem.check_target(y)
    if not problem.uses_features:  # the stages read the framed table (interactions, relevance)
        return X.assign(**{str(y.name): y}), X, y, str(y.name)
    return df, X, y, cfg.data.target


def holdout(cfg: PipelineConfig, problem: ProblemType, X: Any, y: pd.Series) -> tuple[Any, Any, Any, Any]:
    """``(X_train, X_test, y_train, y_test)``: the held-out split every task of a run shares."""
    return problem.holdout_split(X, y, test_size=cfg.data.test_size, seed=cfg.seed,
                                 time_column=cfg.data.time_column if problem.uses_features else None)


@dataclass
class _Run:
    cfg: PipelineConfig
    inc: Increment
    spec: Spec
    problem: ProblemType
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
    metric: str | None = None
    target: str | None = None
    sweep: SweepResults | None = None
    deadline: float | None = None  # time.monotonic() by which the whole run should end (--time-budget)

    def candidates(self) -> list[ModelExperiment]:
        return candidates_for(self.problem, self.cfg.candidates, self.y_train)


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
    """Run the increment's open tasks (T-001 … T-009) in order.

    Args:
        cfg: The pipeline config.
        root: Increments root (``--root``).
        increment: Use this increment instead of finding/creating it from ``cfg``.
        start: Rerun from this task (``"T-004"``), even if it and later ones are ticked.
        address: Ray cluster address (default ``$RAY_ADDRESS``, else an embedded local Ray).
        use_cache: Reuse trials recorded as finished (see ``run_experiments``).
    """
    say = on_stage or (lambda _msg: None)
    # the whole run's budget counts from here: reading the data and starting Ray are in it
    deadline = time.monotonic() + cfg.time_budget_s if cfg.time_budget_s is not None else None
    if start is not None and start not in TASK_ORDER:
        raise ConfigError(f"--from {start!r}: the pipeline's tasks are {', '.join(TASK_ORDER)}")
    # Read and check the data before anything is written: bad input leaves no partial increment.
    problem = problems.get(increment.spec().problem_type) if increment else _problem(cfg)
    df, X, y, target = framed_data(cfg, problem)
    metric = primary_metric(cfg, problem, spec=increment.spec() if increment else
                            (load_spec(cfg.spec) if cfg.spec else None))
    problem.check_data(X, y, metric=metric, cv=cfg.sweep.cv)
    if increment is not None:
        check_parent(cfg, increment)
    elif cfg.parent is not None:  # an unknown parent is refused before the increment is created
        Increment.open(cfg.parent, root=resolve_root(root, config_root=cfg.root))
    # Everything the sweeps could refuse, also before anything is written. Ray starts here once
    # for the run's three sweeps (each would start and stop its own), and only if one will run.
    known = increment or _existing(cfg, root=root)
    with contextlib.ExitStack() as stack:
        if known is not None:  # an existing increment: refuse a second run before Ray starts
            for folder in _stage_folders(known):  # a stage folder planted as a link out of the increment
                known.check_inside(folder)
            stack.enter_context(_run_lock(known))
        sweep_cfg = cfg.sweep.model_copy(update={"address": address or cfg.sweep.address})
        started_ray = preflight(candidates_for(problem, cfg.candidates, y), X, problem_type=problem.name,
                                baselines=cfg.baselines.enabled, rule=cfg.baselines.rule, seed=cfg.seed,
                                sweep=sweep_cfg, cluster=_sweeps_pending(known, start=start))
        try:
            return _run_tasks(cfg, df, X, y, problem=problem, metric=metric, target=target, root=root,
                              increment=increment, start=start, address=address, use_cache=use_cache,
                              on_progress=on_progress, say=say, locked=known is not None, deadline=deadline)
        finally:
            if started_ray:
                shutdown_ray()


def _stage_folders(inc: Increment) -> tuple[Path, ...]:
    return inc.experiments_dir, inc.data_dir, inc.models_dir, inc.notebooks_dir


def _sweeps_pending(inc: Increment | None, *, start: str | None) -> bool:
    """Whether this run will sweep: a new increment (None), an open T-003…T-005, or ``--from`` one of them."""
    if start is not None and TASK_ORDER.index(start) <= TASK_ORDER.index("T-005"):
        return True
    if inc is None:
        return True
    done = {t.id for t in inc.tasks() if t.done}
    return not {"T-003", "T-004", "T-005"} <= done


def _run_tasks(cfg: PipelineConfig, df: pd.DataFrame, X: Any, y: Any, *, problem: ProblemType, metric: str,
               target: str, root: str | os.PathLike[str] | None, increment: Increment | None, start: str | None,
               address: str | None, use_cache: bool, on_progress: Callable[[Progress], None] | None,
               say: Callable[[str], None], locked: bool, deadline: float | None = None) -> PipelineResult:
    inc = increment or ensure_increment(cfg, root=root)
    with _run_lock(inc) if not locked else contextlib.nullcontext():
        return _run_locked(inc, cfg, df, X, y, problem=problem, metric=metric, target=target, start=start,
                           address=address, use_cache=use_cache, on_progress=on_progress, say=say,
                           deadline=deadline)


def _run_lock(inc: Increment) -> Any:
    """One run at a time on an increment: a second would interleave its records with the first's."""
    return exclusive(inc.path / ".run.lock", busy=lambda holder: IncrementError(
        f"{inc.id} is being run by {holder}; wait for that run to end (or stop it), then run again"))


def _run_locked(inc: Increment, cfg: PipelineConfig, df: pd.DataFrame, X: Any, y: Any, *, problem: ProblemType,
                metric: str, target: str, start: str | None, address: str | None, use_cache: bool,
                on_progress: Callable[[Progress], None] | None, say: Callable[[str], None],
                deadline: float | None = None) -> PipelineResult:
    spec = inc.spec()
    problem = problems.get(spec.problem_type)
    schema_path = inc.data_dir / "schema.yaml"
    if schema_path.exists():  # later runs: new data must match what the increment was built on
        data_mod.validate(df, data_mod.read_schema(schema_path), source=str(cfg.data.path or cfg.data.generate))
    for folder in _stage_folders(inc):
        inc.check_inside(folder).mkdir(parents=True, exist_ok=True)  # not committed with a spec
    save_config(inc, cfg)
    say(f"increment {inc.id} ({problem.name}) under {storage.display(inc.root)}")
    X_train, X_test, y_train, y_test = holdout(cfg, problem, X, y)
    run = _Run(cfg, inc, spec, problem, df, X_train, X_test, y_train, y_test, data_mod.fingerprint(df),
               address, use_cache, on_progress, say, metric=metric, target=target, deadline=deadline)
    say(f"data: {len(df)} rows ({len(X_train)} train / {len(X_test)} held out), fingerprint {run.fp}")

    result = PipelineResult(increment=inc, data_fingerprint=run.fp, rows_train=len(X_train), rows_test=len(X_test))
    done = {t.id for t in inc.tasks() if t.done}
    stages: dict[str, Callable[[_Run, PipelineResult], None]] = {
        "T-001": _data, "T-002": _features, "T-003": _baselines, "T-004": _candidates, "T-005": _tuning,
        "T-006": _evaluation, "T-007": _explain, "T-008": _deploy, "T-009": _ab_plan}
    rerun_from = TASK_ORDER.index(start) if start else len(TASK_ORDER)
    with run_lineage(config_hash=config_identity(cfg), seed=cfg.seed, data_fingerprint=run.fp):
        for i, task in enumerate(TASK_ORDER):
            if task in done and i < rerun_from:
                result.skipped.append(task)
                _load_outputs(run, result, task)
                continue
            reason = problem.skipped_tasks.get(task)
            if reason is not None:  # the type says the task can't run for it yet: no made-up result
                result.not_applicable[task] = reason
                say(f"{task} not run for {problem.name}: {reason}")
            else:
                stages[task](run, result)
            _publish(inc)  # a URI root holds the task's outputs before the task is ticked
            inc.tick(task)
            result.ran.append(task)
    if result.ran or not all((inc.notebooks_dir / name).exists() for name in NOTEBOOKS):
        # every task skipped: the records, and so the notebooks written from them, are unchanged
        paths = write_notebooks(inc, execute=cfg.notebooks.execute, timeout=cfg.notebooks.timeout_s)
        say(f"notebooks → {storage.display(inc.notebooks_dir)} ({', '.join(p.name for p in paths)})")
    _publish(inc)  # also when every task was skipped: what an earlier run failed to upload
    return result


def _publish(inc: Increment) -> None:
    """Upload what the task (or an earlier run) wrote and the root lacks, and wait for it;
    nothing to do for a local root."""
    storage.push_now(inc.path, *_mlflow.local_store(inc.root, inc.id))


# -- tasks: each one call into its stage ------------------------------------------------------
def _data(run: _Run, result: PipelineResult) -> None:
    cfg = run.cfg
    record = data_mod.record_data(
        run.inc, run.df, target=run.target, problem=run.problem,
        source=cfg.data.path or f"generate:{cfg.data.generate}", test_size=cfg.data.test_size,
        rows_train=len(run.X_train), rows_test=len(run.X_test), seed=cfg.seed, fingerprint=run.fp,
        split=run.problem.split_report(run.X_train, run.X_test))
    run.say(f"T-001 data profile → {record}")


def _features(run: _Run, result: PipelineResult) -> None:
    if run.problem.uses_features:
        record, n = data_mod.record_features(run.inc, run.X_train, fingerprint=run.fp)
    elif run.problem.output == "forecasts":
        record, n = data_mod.record_series(run.inc, run.X_train, run.y_train, fingerprint=run.fp)
    else:
        record, n = data_mod.record_interactions(run.inc, run.X_train, run.y_train, fingerprint=run.fp)
    run.say(f"T-002 feature pipeline ({n} columns) → {record}")


# The run's budget (--time-budget) across its sweeps. Each sweep's share covers its trials, refits
# and ensemble (run_experiments stops the trials early enough to leave those their time);
# T-006…T-009 (the held-out evaluation, explanations, the deploy package and its serving check,
# the A/B plan) run to their end, so RESERVE of the whole budget is kept for them. Each sweep gets its weight's share of what
# is left (minus the reserve) when it starts, so time a sweep did not use goes to the next one and
# an overrun is taken from the next one; T-005, the last, gets all of it. Baselines are cheap.
_BUDGET_RESERVE = 0.25
_BUDGET_WEIGHTS = {"T-003": 0.1, "T-004": 0.45, "T-005": 0.45}
_MIN_SWEEP_BUDGET_S = 1.0  # past the deadline a sweep still runs the trials it can start in a second


def sweep_budget(task: str, *, left_s: float, total_s: float) -> float:
    """The Tune budget of sweep ``task`` when ``left_s`` of the run's ``total_s`` are left."""
    later = list(_BUDGET_WEIGHTS)[list(_BUDGET_WEIGHTS).index(task):]
    share = _BUDGET_WEIGHTS[task] / sum(_BUDGET_WEIGHTS[t] for t in later)
    return max(_MIN_SWEEP_BUDGET_S, (left_s - _BUDGET_RESERVE * total_s) * share)


def _sweep(run: _Run, experiments: list[ModelExperiment], *, refit: bool, task: str) -> SweepResults:
    cfg = run.cfg
    update: dict[str, Any] = {"address": run.address or cfg.sweep.address}
    if run.deadline is not None and cfg.time_budget_s is not None:
        update["time_budget_s"] = sweep_budget(task, left_s=run.deadline - time.monotonic(),
                                               total_s=cfg.time_budget_s)
        run.say(f"{task} time budget: {update['time_budget_s']:.0f} s")
    if cfg.sweep.ensemble_latency_p99_ms is None:  # the spec's latency target bounds the ensemble's
        update["ensemble_latency_p99_ms"] = next(
            (t.value for t in run.spec.targets if t.metric == "latency_p99" and t.relative_to is None
             and t.op in ("<", "<=")), None)
        # T-008 holds that target against the HTTP p99 of its concurrent clients (deploy.bench)
        update["ensemble_latency_clients"] = HTTP_CLIENTS
    if cfg.sweep.ensemble_throughput_rps is None:  # and its throughput target, the served req/s
        update["ensemble_throughput_rps"] = next(
            (t.value for t in run.spec.targets if t.metric == "throughput" and t.relative_to is None
             and t.op in (">", ">=")), None)
    sweep = cfg.sweep.model_copy(update=update)
    return run_experiments(
        experiments, run.X_train, run.y_train, increment=run.inc, problem_type=run.problem.name,
        metric=run.metric, seed=cfg.seed,
        baselines=cfg.baselines.enabled, rule=cfg.baselines.rule, sweep=sweep,
        use_cache=run.use_cache, refit=refit, data_fingerprint=run.fp, on_progress=run.on_progress)


def _baselines(run: _Run, result: PipelineResult) -> None:
    run.sweep = result.sweep = _sweep(run, [], refit=False, task="T-003")
    run.say(f"T-003 baselines: {', '.join(result.sweep.best_per_candidate)}")


def _candidates(run: _Run, result: PipelineResult) -> None:
    run.sweep = result.sweep = _sweep(run, run.candidates(), refit=False, task="T-004")
    best = _best_or_cause(result.sweep, "T-004")
    run.say(f"T-004 candidates: best {best.candidate} cv {result.sweep.metric}={best.score:.4f}")


def _best_or_cause(sweep: SweepResults, task: str) -> Any:
    """The sweep's best candidate trial; when none finished, a ``SweepError`` with the failures'
    own causes, so the task stays open (its failed trials are recorded) and says why."""
    if sweep.best is not None:
        return sweep.best
    failed = [t for t in sweep.failed if t.kind == "candidate"]
    if not failed:
        raise SweepError(f"{task}: no candidate trial finished")
    causes: dict[str, list[str]] = {}
    for t in failed:
        causes.setdefault((t.error or "no error recorded").strip().splitlines()[-1][:300], []).append(t.candidate)
    told = "; ".join(f"{', '.join(sorted(set(names)))}: {cause}" for cause, names in causes.items())
    raise SweepError(f"{task}: every candidate trial failed ({len(failed)}, recorded under experiments/), "
                     f"so the task stays open: {told}")


def _tuning(run: _Run, result: PipelineResult) -> None:
    comp = read_json(run.inc.experiments_dir / "comparison.json", {})
    # an ensemble is not searched: a rerun deepens the best single candidate's search
    best = ((comp.get("ensemble") or {}).get("best_single") or {}).get("candidate") \
        if (comp.get("ensemble") or {}).get("chosen") else comp.get("best_candidate")
    budget = run.cfg.sweep.tuning_samples
    run.sweep = result.sweep = _sweep(run, deepen(run.candidates(), best, budget), refit=True, task="T-005")
    b = _best_or_cause(result.sweep, "T-005")
    run.say(f"T-005 tuning ({best}: {budget} trials): best {b.candidate} cv {result.sweep.metric}={b.score:.4f}")


def _evaluation(run: _Run, result: PipelineResult) -> None:
    result.evaluation, result.gate = evaluate_holdout(
        run.inc, run.spec, X_train=run.X_train, y_train=run.y_train, X_test=run.X_test, y_test=run.y_test,
        cv=run.cfg.sweep.cv, seed=run.cfg.seed, data_fingerprint=run.fp)
    run.say(f"T-006 evaluation → {result.evaluation['record']}")


def _explain(run: _Run, result: PipelineResult) -> None:
    """T-007: package the evaluated model (what gets explained is what ships), then explain it."""
    version = package_for_evaluation(run.inc, reference_data=run.X_train, seed=run.cfg.seed)
    predictor = Predictor.load(run.inc, version=version)
    record = write_explainability(run.inc, predictor, run.X_test, run.y_test, seed=run.cfg.seed,
                                  data_fingerprint=run.fp)
    run.say(f"T-007 explainability (model-v{version}, {predictor.explainer_kind}) → {record}")


def _deploy(run: _Run, result: PipelineResult) -> None:
    version = package_for_evaluation(run.inc, reference_data=run.X_train, seed=run.cfg.seed)
    gate = release_gate(run.inc, run.spec, version=version, fingerprint=run.fp)
    result.gate = gate.rows
    verdict = f"{gate.verdict} the gate" if gate.verdict in ("passed", "failed") else \
        f"{gate.verdict} in spec.md, so not passed"
    run.say(f"T-008 model-v{version}: {verdict} (benchmark {gate.benchmark_record}, gate {gate.gate_record})")


def _ab_plan(run: _Run, result: PipelineResult) -> None:
    ab = run.cfg.abtest
    path = write_ab_plan(run.inc, run.spec, target=run.target,
                         comparison=read_json(run.inc.experiments_dir / "comparison.json", {}),
                         mde_relative=ab.mde_relative, daily_traffic=ab.daily_traffic,
                         traffic_split=ab.traffic_split, fingerprint=run.fp)
    run.say(f"T-009 A/B test plan → {storage.display(path)}")


def _load_outputs(run: _Run, result: PipelineResult, task: str) -> None:
    """Outputs of a skipped task: everything later tasks need is on disk (comparison.json and the
    records), so only the evaluation summary is read back for the caller."""
    if task == "T-006":
        evals = list_records(run.inc, kind="evaluation")
        if evals:
            result.evaluation = {"record": evals[-1].id, **evals[-1].metrics}


__all__ = ["PipelineResult", "check_parent", "config_identity", "ensure_increment", "framed_data", "holdout", "run_pipeline",
           "save_config", "stored_config"]
