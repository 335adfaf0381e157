"""The whole run, stage by stage: increment → data → features → baselines + candidates sweep.

Only this module and ``cli.py`` import every stage. Each stage writes its record and ticks its
task in ``tasks.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import PipelineConfig
from .coordinator import Progress
from .exceptions import ConfigError
from .experiment import ModelExperiment
from .increment import Increment, list_increments, resolve_root, slugify
from .records import track_experiment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    increment: Increment
    sweep: Any               # SweepResults
    data_fingerprint: str
    rows_train: int
    rows_test: int


def ensure_increment(cfg: PipelineConfig, *, root: str | os.PathLike[str] | None = None) -> Increment:
    """Open the config's increment under the root, creating it (from its spec file) if missing."""
    from .spec import load_spec

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
        return existing[0]
    return Increment.create(cfg.increment, problem_type=problem_type or "classification", root=base,
                            spec_text=spec_text)


def load_data(cfg: PipelineConfig) -> pd.DataFrame:
    from .data import load_table
    from .datasets import generate

    if cfg.data.generate:
        kwargs = dict(cfg.data.params)
        if cfg.data.rows:
            kwargs["n_rows"] = cfg.data.rows
        return generate(cfg.data.generate, seed=cfg.seed, **kwargs)
    return load_table(cfg.data.path)


def candidate_experiments(cfg: PipelineConfig, problem_type: str) -> list[ModelExperiment]:
    from .candidates.registry import default_candidates

    if cfg.candidates is None:
        return [ModelExperiment(c.name, c.estimator, c.params) for c in default_candidates(problem_type)]
    return [ModelExperiment(c.name, c.estimator, c.params, num_samples=c.num_samples, resources=c.resources)
            for c in cfg.candidates]


def run_pipeline(
    cfg: PipelineConfig,
    *,
    root: str | os.PathLike[str] | None = None,
    address: str | None = None,
    use_cache: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run the config end to end on an embedded local Ray (or ``address``)."""
    from . import data as data_mod
    from .features import feature_types
    from .runner import run_experiments

    say = on_stage or (lambda _msg: None)
    inc = ensure_increment(cfg, root=root)
    spec = inc.spec()
    problem_type = spec.problem_type
    for folder in (inc.experiments_dir, inc.data_dir, inc.models_dir, inc.notebooks_dir):
        folder.mkdir(parents=True, exist_ok=True)  # stage folders are not committed with a spec
    if problem_type not in ("classification", "regression", "timeseries"):
        raise ConfigError(f"{inc.spec_path}: the pipeline runs classification, regression and timeseries "
                          f"increments; {problem_type!r} is not supported yet")
    say(f"increment {inc.id} ({problem_type}) under {inc.root}")

    # T-001 data: load, validate against an earlier schema, profile, sample, hold out a test split
    df = load_data(cfg)
    target = cfg.data.target
    X, y = data_mod.split_xy(df, target=target)
    data_mod.check_target(y, problem_type)
    schema_path = inc.data_dir / "schema.yaml"
    if schema_path.exists():
        data_mod.validate(df, data_mod.read_schema(schema_path), source=str(cfg.data.path or cfg.data.generate))
    fp = data_mod.fingerprint(df)
    with track_experiment("data-profile", increment=inc, kind="data", meta={"data_fingerprint": fp}) as exp:
        prof = data_mod.profile(df, target=target, problem_type=problem_type)
        from ._fs import atomic_write_json

        atomic_write_json(inc.data_dir / "profile.json", prof)
        if not schema_path.exists():
            data_mod.write_schema(data_mod.infer_schema(df, target=target), schema_path)
        sample = data_mod.sample(df, target=target, n=1000, problem_type=problem_type, seed=cfg.seed)
        sample.to_parquet(inc.data_dir / "sample.parquet", index=False)
        exp.log_params({"source": cfg.data.path or f"generate:{cfg.data.generate}", "target": target,
                        "test_size": cfg.data.test_size})
        exp.log_metrics({"rows": len(df), "columns": df.shape[1],
                         "missing_values": int(df.isna().sum().sum()),
                         "duplicate_rows": int(prof.get("duplicate_rows", 0))})
        data_mod.write_eda_report(df, prof, exp.path, target=target, problem_type=problem_type)
    inc.tick("T-001")
    X_train, X_test, y_train, y_test = data_mod.holdout_split(
        X, y, problem_type=problem_type, test_size=cfg.data.test_size, seed=cfg.seed,
        time_column=cfg.data.time_column)
    say(f"data: {len(df)} rows ({len(X_train)} train / {len(X_test)} held out), fingerprint {fp}")

    # T-002 features: the ColumnTransformer is fitted inside each CV fold by the sweep
    with track_experiment("feature-pipeline", increment=inc, kind="features", meta={"data_fingerprint": fp}) as exp:
        types = feature_types(X_train)
        exp.log_params({"features": types})
        exp.log_metrics({"n_features": len(types),
                         "n_numeric": sum(t == "numeric" for t in types.values()),
                         "n_categorical": sum(t == "categorical" for t in types.values())})
    inc.tick("T-002")

    # T-003 baselines, T-004 candidates, T-005 tuning: one Ray Tune sweep
    experiments = candidate_experiments(cfg, problem_type)
    say(f"sweep: {len(experiments)} candidates + baselines, {cfg.sweep.cv}-fold CV")
    sweep = run_experiments(
        experiments, X_train, y_train, increment=inc, cv=cfg.sweep.cv, metric=cfg.metric or spec.primary_metric,
        problem_type=problem_type, baselines=cfg.baselines.enabled, rule=cfg.baselines.rule,
        stages=cfg.sweep.stages, seed=cfg.seed, address=address or cfg.sweep.address,
        num_cpus=cfg.sweep.num_cpus, max_concurrent=cfg.sweep.max_concurrent, use_cache=use_cache,
        data_fingerprint=fp, on_progress=on_progress)
    for task in ("T-003", "T-004", "T-005"):
        inc.tick(task)
    return PipelineResult(increment=inc, sweep=sweep, data_fingerprint=fp,
                          rows_train=len(X_train), rows_test=len(X_test))
