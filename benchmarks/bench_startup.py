"""Start-up of a run: import time, ``--help``, and from ``specweave-ray run`` to its first trial.

Every figure is a whole process, timed from outside (the median of ``--repeats``), beside its
baseline measured in the same run: a bare ``python -c pass`` for the imports, and a bare
``ray.init(num_cpus=2); ray.shutdown()`` for Ray's own start. "First trial" is the moment the
first trial record's ``meta.json`` appears under ``experiments/`` (the coordinator writes it when
the trial reports), polled every 20 ms. A run starts Ray once for its three sweeps (T-003…T-005);
before, each sweep started and stopped its own, so the saved time is two Ray starts.

    python benchmarks/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CONFIG = {"increment": "Startup", "problem_type": "classification",
          "data": {"generate": "fraud", "rows": 2000, "target": "is_fraud", "params": {"positive_rate": 0.05}},
          "sweep": {"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 2},
          "candidates": [{"name": "logistic", "estimator": "logistic", "params": {"max_iter": 300}}]}


def _time(cmd: list[str], *, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def _median(cmd: list[str], repeats: int, **kw) -> float:
    return statistics.median(_time(cmd, **kw) for _ in range(repeats))


def _first_trial(repeats: int) -> tuple[float, float, float]:
    """(to the first trial record, to the first T-001 record, whole run) in seconds, medians."""
    firsts, data, totals = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "cfg.yaml"
            cfg.write_text(yaml.safe_dump(CONFIG))
            root = Path(tmp) / "incs"
            env = {**os.environ, "SPECWEAVE_MLFLOW": "0", "SPECWEAVE_SIGNING_KEY_FILE": str(Path(tmp) / "key")}
            t0 = time.perf_counter()
            proc = subprocess.Popen([str(BIN / "specweave-ray"), "run", str(cfg), "--root", str(root)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            first = profile = None
            while proc.poll() is None:
                exp = root / "0001-startup" / "experiments"
                if profile is None and any(exp.glob("exp-*-data-profile/meta.json")):
                    profile = time.perf_counter() - t0
                if first is None and any(exp.glob("exp-*-trial-*/meta.json")):
                    first = time.perf_counter() - t0
                time.sleep(0.02)
            totals.append(time.perf_counter() - t0)
            if proc.returncode != 0 or first is None:
                raise SystemExit(f"the run failed (exit {proc.returncode}) or recorded no trial")
            firsts.append(first)
            data.append(profile or first)
    return statistics.median(firsts), statistics.median(data), statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    py = sys.executable
    bare = _median([py, "-c", "pass"], args.repeats * 2)
    imp = _median([py, "-c", "import specweave_ray"], args.repeats * 2)
    full = _median([py, "-c", "import specweave_ray.pipeline"], args.repeats)
    helps = _median([str(BIN / "specweave-ray"), "--help"], args.repeats * 2)
    ray_start = _median([py, "-c", "import ray; ray.init(num_cpus=2, include_dashboard=False); ray.shutdown()"],
                        args.repeats)
    first, profile, total = _first_trial(args.repeats)
    rows = [("python -c pass (baseline)", bare, 1.0),
            ("import specweave_ray", imp, imp / bare),
            ("import specweave_ray.pipeline (every stage)", full, full / bare),
            ("specweave-ray --help", helps, helps / bare),
            ("ray.init(num_cpus=2) + shutdown (baseline)", ray_start, 1.0),
            ("run: process start -> T-001 record", profile, profile / ray_start),
            ("run: process start -> first trial record", first, first / ray_start),
            ("run: whole (2,000 rows, 1 candidate, 9 tasks)", total, total / ray_start)]
    print(f"{'what':<50} {'median s':>9} {'ratio':>7}")
    for what, s, ratio in rows:
        print(f"{what:<50} {s:9.3f} {ratio:7.2f}")
    print(f"to the first trial: {first:.2f} s (target <= 5 s: {'met' if first <= 5 else 'not met'}); "
          f"one Ray start per run saves ~{2 * ray_start:.1f} s against one per sweep")
    print(json.dumps({"python_s": bare, "import_s": imp, "import_all_s": full, "help_s": helps,
                      "ray_start_s": ray_start, "first_trial_s": first, "t001_s": profile, "run_s": total}))


if __name__ == "__main__":
    main()
