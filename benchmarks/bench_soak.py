"""Soak: a 500-trial sweep of tiny trials with ~10% injected faults, checked for lost records.

One candidate with a search space over ``seed``; each trial's ``fit`` decides from its seed whether
it misbehaves (for real): raises, kills its own process (``os._exit(3)`` or SIGKILL), or hangs past
the sweep's ``trial_timeout_s``. Run in one ``run_experiments`` on an embedded Ray
(``num_cpus=2``), it prints:

* trials launched (started by Tune) vs trial records written — they must be equal;
* failures recorded, by cause, against the faults the seeds asked for — they must match;
* duplicates (two records for one Tune trial id) — must be 0;
* the driver's resident memory after the first 50 trials and at the end (growth over the run).

Usage::

    python benchmarks/bench_soak.py [--trials 500] [--fault-rate 0.1] [--timeout 1.0] [--json PATH]

The last stdout line is the numbers as JSON. A mismatch is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

os.environ.setdefault("SPECWEAVE_MLFLOW", "0")  # the records are under test, not the mirror
FAULTS = ("raise", "exit", "sigkill", "hang")
EXPECTED_CAUSE = {"raise": "exception", "exit": "exit", "sigkill": "signal", "hang": "timeout"}


def fault_of(seed: int, rate: float) -> str | None:
    """The fault a seed asks for (``rate`` of the seeds ask for one), deterministic."""
    rng = np.random.default_rng(seed)
    return FAULTS[int(rng.integers(len(FAULTS)))] if rng.random() < rate else None


class SoakClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the prior; misbehaves as :func:`fault_of` says for its ``seed``."""

    def __init__(self, seed: int = 0, rate: float = 0.1) -> None:
        self.seed = seed
        self.rate = rate

    def fit(self, X, y):
        fault = fault_of(self.seed, self.rate)
        if fault == "raise":
            raise ValueError(f"injected failure (seed {self.seed})")
        if fault == "exit":
            os._exit(3)
        if fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "hang":
            time.sleep(3600)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=1.0, help="trial_timeout_s (ends the hung trials)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from sklearn.datasets import load_breast_cancer

    from specweave_ray import Increment, ModelExperiment, randint, run_experiments
    from specweave_ray.spec import SweepConfig
    from specweave_ray.workspace.records import list_records

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X, y = X.iloc[:80, :5], y.iloc[:80]
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    inc = Increment.create("Soak", problem_type="classification", root=root)
    memory: dict[str, float] = {}  # also the launch count

    def on_progress(p) -> None:
        memory["launched"] = p.started  # Tune's trial starts, counted on the driver
        done = p.finished + p.failed
        if done >= 50 and "after_50" not in memory:
            memory["after_50"] = rss_mb()

    exp = ModelExperiment("soak", SoakClassifier, {"seed": randint(0, 2**31 - 1), "rate": args.fault_rate},
                          num_samples=args.trials)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    run_experiments([exp], X, y, increment=inc, cv=2, baselines=False, refit=False,
                          sweep=SweepConfig(num_cpus=2, trial_timeout_s=args.timeout, stages=1),
                          on_progress=on_progress)
    wall = time.perf_counter() - t0
    memory["end"] = rss_mb()

    recs = [r for r in list_records(inc) if r.kind == "trial"]
    ids = collections.Counter(r.meta["trial_id"] for r in recs)
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    asked = collections.Counter(fault_of(int(r.params["seed"]), args.fault_rate) for r in recs)
    causes = collections.Counter(r.meta["error"]["cause"]["kind"] for r in recs if r.status == "failed")
    mismatched = [r.id for r in recs
                  if (fault_of(int(r.params["seed"]), args.fault_rate) is None) != (r.status == "finished")
                  or (r.status == "failed" and r.meta["error"]["cause"]["kind"]
                      != EXPECTED_CAUSE[fault_of(int(r.params["seed"]), args.fault_rate)])]
    no_node = [r.id for r in recs if not r.meta.get("node")]
    out = {
        "trials_asked": args.trials, "trials_launched": int(memory.get("launched", 0)),
        "trial_records": len(recs), "finished": sum(r.status == "finished" for r in recs),
        "failed": sum(r.status == "failed" for r in recs),
        "faults_injected": {k: v for k, v in asked.items() if k}, "failures_by_cause": dict(causes),
        "cause_mismatches": len(mismatched), "records_without_node": len(no_node), "duplicates": duplicates,
        "driver_rss_mb_after_50": round(memory.get("after_50", float("nan")), 1),
        "driver_rss_mb_end": round(memory["end"], 1),
        "driver_rss_growth_mb": round(memory["end"] - memory.get("after_50", memory["end"]), 1),
        "wall_s": round(wall, 1), "trials_per_s": round(len(recs) / wall, 2),
        "load_avg_1m_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "timeout_s": args.timeout, "cpus": 2,
    }
    ok = (out["trial_records"] == args.trials == out["trials_launched"] and duplicates == 0
          and not mismatched and not no_node)
    print(f"trials launched {out['trials_launched']} / recorded {out['trial_records']} (asked {args.trials}); "
          f"duplicates {duplicates}")
    print(f"faults injected {out['faults_injected']}; failures recorded by cause {dict(causes)}; "
          f"cause mismatches {len(mismatched)}; records without a node {len(no_node)}")
    print(f"driver RSS {out['driver_rss_mb_after_50']} MB after 50 trials, {out['driver_rss_mb_end']} MB at the end "
          f"(+{out['driver_rss_growth_mb']} MB); {wall:.1f} s, {out['trials_per_s']} trials/s; "
          f"load {out['load_avg_1m_before_after']}")
    print("OK" if ok else f"MISMATCH: {mismatched[:5]} {no_node[:5]}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
