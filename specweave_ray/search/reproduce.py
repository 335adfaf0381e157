"""Rerun one trial record — its estimator, params, folds and stage — and compare its metrics.

The rerun goes through the sweep's own code: :func:`~specweave_ray.search._inputs.trial_inputs`
builds the folds and feature pipeline as ``run_experiments`` did, and
:func:`~specweave_ray.search.trial.run_cv` is the body every trial ran. It runs in this process,
on CPU (no Ray): a record trained on a GPU may differ within its device's noise.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from specweave_ray.exceptions import RecordError
from specweave_ray.problems import ProblemType
from specweave_ray.search._inputs import trial_inputs
from specweave_ray.search.trial import INFO_PREFIX, run_cv
from specweave_ray.workspace._lineage import source_hash
from specweave_ray.workspace.records import Record, environment

__all__ = ["MetricCheck", "Reproduction", "rerun_trial", "RTOL", "ATOL"]

RTOL, ATOL = 1e-6, 1e-9        # deterministic models agree to rounding; timings never compared
REPRODUCIBLE_KINDS = ("trial", "baseline")


@dataclass(frozen=True)
class MetricCheck:
    name: str
    recorded: float
    rerun: float | None
    matches: bool

    @property
    def difference(self) -> float | None:
        return None if self.rerun is None else self.rerun - self.recorded


@dataclass(frozen=True)
class Reproduction:
    """The rerun of one record: every compared metric, and what changed since (notes)."""

    record: str
    candidate: str | None
    checks: tuple[MetricCheck, ...]
    rtol: float
    atol: float
    notes: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return bool(self.checks) and all(c.matches for c in self.checks)


def _compared(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The record's scores: everything numeric but the timings (they never repeat)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith("_time_s")}


def _estimator_class(record: Record) -> type:
    path = record.meta.get("model")
    module, _, name = str(path or "").rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as err:
        raise RecordError(f"{record.id}: its estimator {path!r} (meta.json \"model\") cannot be imported "
                          f"here ({err}); install or put on the path the code that defined it") from err
    return obj


def check_reproducible(record: Record) -> None:
    """Raises RecordError for a record that is no finished trial (what a rerun could compare)."""
    if record.kind not in REPRODUCIBLE_KINDS:
        raise RecordError(f"{record.id} is a {record.kind!r} record; reproduce reruns a trial or "
                          f"baseline record ({', '.join(REPRODUCIBLE_KINDS)})")
    if record.status != "finished":
        raise RecordError(f"{record.id} is {record.status!r}, not finished: it has no metrics to reproduce")
    if not _compared(record.metrics):
        raise RecordError(f"{record.id}: metrics.json holds no scores to compare")


def rerun_trial(record: Record, X: Any, y: Any, *, problem: ProblemType, cv: int | Any, seed: int,
                rtol: float = RTOL, atol: float = ATOL) -> Reproduction:
    """Rerun ``record`` on the training data ``X``, ``y`` the sweep saw and compare.

    Args:
        record: A finished trial or baseline record.
        X, y: The sweep's training rows (the pipeline's split of the stored config's data).
        problem: The increment's problem type.
        cv, seed: The sweep's folds setting and seed (the folds' description must match the
            record's ``cv``).
        rtol, atol: A metric matches when ``|rerun - recorded| <= atol + rtol * |recorded|``.

    Raises:
        RecordError: not a finished trial, its estimator can't be imported, or the folds differ.
    """
    check_reproducible(record)
    cls = _estimator_class(record)
    inputs = trial_inputs(problem, X, y, cv=cv, seed=seed)
    notes = []
    if record.meta.get("cv") and record.meta["cv"] != inputs.cv:
        raise RecordError(f"{record.id} was cross-validated with {record.meta['cv']}, the stored config "
                          f"gives {inputs.cv}")
    lineage = record.meta.get("lineage") or {}
    env = environment()
    if lineage.get("git_commit") and lineage["git_commit"] != env["git_commit"]:
        notes.append(f"code: recorded at commit {lineage['git_commit'][:12]}, now "
                     f"{(env['git_commit'] or 'no git')[:12]}")
    if lineage.get("git_dirty"):
        notes.append("code: the record's tree was dirty (uncommitted changes ran)")
    recorded_src = lineage.get("estimator_source_sha256")
    if recorded_src and recorded_src != source_hash(cls):
        notes.append(f"code: the source of {record.meta.get('model')} changed since the record")

    metrics = record.metrics
    stages = int(metrics.get("n_stages", 1) or 1)
    stage = int(metrics.get("stage", stages) or stages)
    metric = record.meta.get("metric") or problem.default_metric
    reached: dict[str, Any] = {}

    def report(result: dict[str, Any]) -> None:
        if int(result.get("stage", 1)) >= stage:
            reached.update(result)
            raise StopIteration  # the record's stage is reached: the rest of the rerun is unused

    raw = bool(getattr(cls, "requires_raw_frame", False))
    cpus = int((record.meta.get("resources") or {}).get("cpu", 1) or 1)
    with contextlib.suppress(StopIteration):  # raised by report() at the record's stage
        reached.update(run_cv(cls, dict(record.params), X, inputs.y, inputs.folds, metric=metric,
                              preprocessor=None if raw else inputs.preprocessor, stages=stages, cpus=cpus,
                              report=report, problem_type=problem.name))
    rerun = {k: v for k, v in reached.items() if not k.startswith(INFO_PREFIX)}
    checks = []
    for name, value in _compared(metrics).items():
        got = rerun.get(name)
        got = float(got) if isinstance(got, (int, float)) and not isinstance(got, bool) else None
        ok = got is not None and math.isclose(got, value, rel_tol=rtol, abs_tol=atol)
        checks.append(MetricCheck(name, value, got, ok))
    return Reproduction(record.id, record.meta.get("candidate"), tuple(checks), rtol, atol, tuple(notes))
