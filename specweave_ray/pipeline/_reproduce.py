"""``specweave-ray reproduce ID --experiment exp-NNN``: rerun one trial record from the
increment's stored config (same data, same held-out split, same folds) and compare its metrics.

Everything the rerun needs is checked first (the increment, the record and its files, the
stored config, the data's fingerprint); nothing is written, here or in the increment.
"""

from __future__ import annotations

import hashlib
import os
import re

from specweave_ray import data as data_mod
from specweave_ray import problems
from specweave_ray.exceptions import ConfigError, RecordError
from specweave_ray.pipeline._tasks import CONFIG_NAME, framed_data, holdout, stored_config
from specweave_ray.search.reproduce import ATOL, RTOL, Reproduction, check_reproducible, rerun_trial
from specweave_ray.workspace import _lineage
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import RECORD_FILES, Record, read_record, resolve_increment

__all__ = ["find_record", "reproduce"]

_REF_RE = re.compile(r"^(?:exp-)?(\d+)$")


def find_record(inc: Increment, ref: str) -> Record:
    """The record ``ref`` names: ``exp-003``, ``3`` or the folder name ``exp-003-xgboost-trial-001``.

    Raises:
        RecordError: no such record, or one of its files is missing or unreadable.
    """
    folders = sorted(p for p in inc.experiments_dir.iterdir() if p.is_dir() and p.name.startswith("exp-")) \
        if inc.experiments_dir.is_dir() else []
    m = _REF_RE.match(ref.strip())
    found = [p for p in folders if p.name == ref.strip()
             or (m and p.name.split("-")[1].isdigit() and int(p.name.split("-")[1]) == int(m.group(1)))]
    if not found:
        have = f"{folders[0].name[:7]} … {folders[-1].name[:7]}" if folders else "none"
        raise RecordError(f"{inc.id} has no experiment {ref!r} (its records: {have})")
    path = found[0]
    for name in sorted(RECORD_FILES):
        if not (path / name).is_file():
            raise RecordError(f"{path / name} is missing: the record is incomplete, nothing to rerun")
    return read_record(path)


def reproduce(increment: Increment | str | int | os.PathLike[str], experiment: str, *,
              root: str | os.PathLike[str] | None = None, rtol: float = RTOL, atol: float = ATOL) -> Reproduction:
    """Rerun one trial or baseline record and compare its metrics with what it recorded.

    Raises:
        IncrementNotFoundError: no such increment.
        RecordError: no such record, a missing record file, or a record that is no finished trial.
        ConfigError: the increment has no stored config (``pipeline.yaml``).
    """
    inc = resolve_increment(increment, root)
    record = find_record(inc, experiment)
    check_reproducible(record)
    if not (inc.path / CONFIG_NAME).is_file():
        raise ConfigError(f"{inc.id} has no {CONFIG_NAME}: reproduce reruns records of pipeline runs "
                          "(specweave-ray run CONFIG), whose stored config names the data")
    cfg = stored_config(inc)
    problem = problems.get(inc.spec().problem_type)
    lineage = record.meta.get("lineage") or {}
    notes = []
    env_now = "sha256:" + hashlib.sha256(_lineage.freeze().encode("utf-8")).hexdigest()
    if lineage.get("environment_sha256") and lineage["environment_sha256"] != env_now:
        notes.append(f"environment: differs from the record's freeze ({lineage.get('environment_freeze')})")
    df, X, y, _ = framed_data(cfg, problem)
    fp, recorded_fp = data_mod.fingerprint(df), record.meta.get("data_fingerprint")
    if recorded_fp and fp != recorded_fp:
        return Reproduction(record.id, record.meta.get("candidate"), (), rtol, atol, (
            *notes, f"data: the stored config's data has fingerprint {fp}, the record {recorded_fp}: "
                    "not rerun"))
    X_train, _, y_train, _ = holdout(cfg, problem, X, y)
    seed = lineage.get("seed")
    out = rerun_trial(record, X_train, y_train, problem=problem, cv=cfg.sweep.cv,
                      seed=cfg.seed if seed is None else int(seed), rtol=rtol, atol=atol)
    return Reproduction(out.record, out.candidate, out.checks, rtol, atol, (*notes, *out.notes))
