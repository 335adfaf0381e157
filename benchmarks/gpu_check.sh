#!/usr/bin/env bash
# GPU check for specweave-ray (issue 6): one prepared script for a machine WITH a CUDA device.
#
#   bash benchmarks/gpu_check.sh                      # installs from the package index if needed
#   WHEELS=/path/to/wheels bash benchmarks/gpu_check.sh   # offline: pip --no-index --find-links
#
# Steps, each bounded by `timeout` and all inside TOTAL_S (default 590 s, under 10 minutes):
#   1. nvidia-smi
#   2. a venv ($VENV, default .venv-gpu) with torch==2.13.0 (the PyPI Linux wheel is the CUDA
#      build) and `pip install -e ".[test]"`; skipped when the venv already imports everything
#   3. pytest -m gpu (every test that needs a real CUDA device; none may be skipped)
#   4. a sweep of {"gpu": 0.25} trials (xgboost + torch-mlp) on generated fraud data: every trial
#      finished, was given a GPU, and its record has no device-fallback warning
#   5. XGBoost device="cuda" vs CPU: fit and batch predict on 200k rows
#   6. benchmarks/bench_inference.py (Predictor and HTTP serving), if time is left in the budget
# Results (JUnit XML, JSON) go to $OUT (default ./gpu-check-out). Exit status 0 only when every
# step passed; the last stdout line is a JSON summary.
#
# Preparing $WHEELS on a connected machine of the same platform and Python version:
#   pip download -d wheels torch==2.13.0 setuptools wheel ".[test]"
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-gpu}
OUT=${OUT:-$REPO/gpu-check-out}
TOTAL_S=${TOTAL_S:-590}
mkdir -p "$OUT"
T_START=$(date +%s)
declare -A RESULT=()
FAILED=0

left() { echo $(( TOTAL_S - ($(date +%s) - T_START) )); }

# step NAME LIMIT_S CMD...: run CMD under `timeout` (clamped to the time left), record rc.
step() {
    local name=$1 limit=$2 budget rc t0
    shift 2
    budget=$(left)
    if (( budget < 10 )); then
        echo "=== $name: SKIPPED (out of the ${TOTAL_S}s budget)"
        RESULT[$name]="skipped"; FAILED=1; return 1
    fi
    (( limit > budget )) && limit=$budget
    echo "=== $name (limit ${limit}s)"
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    (( rc == 124 || rc == 137 )) && echo "=== $name: TIMED OUT after ${limit}s"
    echo "=== $name: rc=$rc in $(( $(date +%s) - t0 ))s"
    if (( rc == 0 )); then RESULT[$name]="ok"; else RESULT[$name]="rc=$rc"; FAILED=1; fi
    return $rc
}

summary() {
    local parts=() k
    for k in "${!RESULT[@]}"; do parts+=("\"$k\": \"${RESULT[$k]}\""); done
    local IFS=,
    echo "{\"gpu_check\": {${parts[*]}}, \"seconds\": $(( $(date +%s) - T_START )), \"passed\": $(( FAILED == 0 ? 1 : 0 ))}"
}

# -- 1. the device -------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "nvidia-smi not found: this check needs a machine with a CUDA device" >&2
    RESULT[nvidia-smi]="missing"; FAILED=1; summary; exit 2
fi
step nvidia-smi 30 nvidia-smi || { summary; exit 2; }

# -- 2. the environment ----------------------------------------------------------------------
install() {
    set -e
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --quiet)
    if [[ -n "${WHEELS:-}" ]]; then
        pip+=(--no-index --find-links "$WHEELS")
    fi
    "${pip[@]}" "torch==2.13.0"
    "${pip[@]}" -e ".[test]"
}
if "$VENV/bin/python" -c "import specweave_ray, ray, xgboost, torch, optuna, mlflow, pytest" 2>/dev/null; then
    echo "=== install: $VENV already has the package and its dependencies"
    RESULT[install]="reused"
else
    step install 300 bash -c "$(declare -f install); VENV='$VENV' PYTHON='$PYTHON' WHEELS='${WHEELS:-}' install" \
        || { summary | tee "$OUT/summary.json"; exit 1; }
fi
PY="$VENV/bin/python"
timeout 120 "$PY" - <<'EOF' || { RESULT[cuda]="not usable"; FAILED=1; }
import torch, xgboost, ray
print(f"torch {torch.__version__} cuda {torch.version.cuda} available={torch.cuda.is_available()} "
      f"devices={torch.cuda.device_count()}; xgboost {xgboost.__version__} "
      f"USE_CUDA={xgboost.build_info().get('USE_CUDA')}; ray {ray.__version__}")
assert torch.cuda.is_available(), "torch sees no CUDA device"
EOF

# -- 3. the gpu tests ------------------------------------------------------------------------
gpu_tests() {
    "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs --junitxml="$OUT/gpu-tests.xml" tests || return $?
    # a gpu test that skips (no usable CUDA) is a failure here
    "$PY" - "$OUT/gpu-tests.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
suites = ET.parse(sys.argv[1]).getroot()
suites = [suites] if suites.tag == "testsuite" else list(suites)
n = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(f"gpu tests: {n} run, {skipped} skipped")
sys.exit(0 if n > 0 and skipped == 0 else 1)
EOF
}
step "pytest -m gpu" 120 bash -c "$(declare -f gpu_tests); PY='$PY' OUT='$OUT' gpu_tests"

# -- 4. a sweep of quarter-GPU trials --------------------------------------------------------
step "sweep gpu=0.25" 150 "$PY" - "$OUT" <<'EOF'
import json
import os
import sys
import tempfile
import time

from specweave_ray import Increment, ModelExperiment, run_experiments
from specweave_ray.data.datasets import make_fraud
from specweave_ray import loguniform, randint
from specweave_ray.spec import SweepConfig
from specweave_ray.workspace import list_records

out = sys.argv[1]
df = make_fraud(40_000, positive_rate=0.02, seed=0)
y = df.pop("is_fraud")
root = tempfile.mkdtemp(prefix="gpu-check-")
inc = Increment.create("GPU Check", problem_type="classification", root=root)
quarter = {"cpu": 1, "gpu": 0.25}
exps = [
    ModelExperiment("xgb-gpu", "xgboost", {"n_estimators": 200, "tree_method": "hist", "max_depth": randint(3, 9),
                                           "learning_rate": loguniform(0.03, 0.3)}, num_samples=8, resources=quarter),
    ModelExperiment("mlp-gpu", "torch-mlp", {"epochs": 6, "batch_size": 1024, "lr": loguniform(3e-4, 1e-2)},
                    num_samples=4, resources=quarter),
]
t0 = time.perf_counter()
res = run_experiments(exps, df, y, increment=inc, cv=3, metric="roc_auc", baselines=False,
                      sweep=SweepConfig(stages=2), refit=False)
seconds = time.perf_counter() - t0
trials = [r for r in list_records(inc, kind="trial")]
rows = [{"record": r.id, "candidate": r.meta.get("candidate"), "status": r.status,
         "gpu_ids": (r.meta.get("resources") or {}).get("gpu_ids"), "device_warnings": r.meta.get("device_warnings"),
         "cv_mean": r.metrics.get("cv_mean")} for r in trials]
for row in rows:
    print(row)
problems = [row for row in rows if row["status"] != "finished" or row["device_warnings"] or not row["gpu_ids"]]
summary = {"trials": len(rows), "seconds": round(seconds, 1), "best": res.best.candidate if res.best else None,
           "best_score": res.best.score if res.best else None, "problems": problems, "root": root}
with open(os.path.join(out, "sweep.json"), "w") as f:
    json.dump({"summary": summary, "trials": rows}, f, indent=1, default=str)
print(json.dumps(summary, default=str))
assert len(rows) == 12, f"expected 12 trial records, got {len(rows)}"
assert not problems, f"trials that failed, had no GPU, or fell back to CPU: {problems}"
EOF

# -- 5. XGBoost on CUDA vs CPU, 200k rows ----------------------------------------------------
step "xgboost cuda vs cpu" 120 "$PY" - "$OUT" <<'EOF'
import json
import os
import sys
import time

import numpy as np
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from specweave_ray.data.datasets import make_fraud

out = sys.argv[1]
df = make_fraud(250_000, positive_rate=0.01, seed=1)
y = df.pop("is_fraud").to_numpy()
X = df.select_dtypes("number").to_numpy(dtype=np.float32)
X_train, y_train, X_test, y_test = X[:200_000], y[:200_000], X[200_000:], y[200_000:]
params = dict(n_estimators=300, max_depth=8, learning_rate=0.1, tree_method="hist", random_state=0)
xgb.XGBClassifier(n_estimators=2, device="cuda").fit(X_train[:1000], y_train[:1000])  # CUDA context outside the timing

numbers = {"rows": len(X_train), "features": X.shape[1]}
for device in ("cpu", "cuda"):
    model = xgb.XGBClassifier(**params, device=device, n_jobs=os.cpu_count())
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    booster = model.get_booster()
    used = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    booster.inplace_predict(X_train[:1000])  # warm-up
    t0 = time.perf_counter()
    pred = booster.inplace_predict(X_train)
    predict_s = time.perf_counter() - t0
    auc = roc_auc_score(y_test, booster.inplace_predict(X_test))
    numbers[device] = {"fit_s": round(fit_s, 3), "predict_200k_s": round(predict_s, 4),
                       "rows_per_s": round(len(X_train) / predict_s), "test_roc_auc": round(float(auc), 4),
                       "device_used": used}
    print(device, numbers[device])
numbers["fit_speedup"] = round(numbers["cpu"]["fit_s"] / numbers["cuda"]["fit_s"], 2)
numbers["predict_speedup"] = round(numbers["cpu"]["predict_200k_s"] / numbers["cuda"]["predict_200k_s"], 2)
with open(os.path.join(out, "xgboost_cuda_vs_cpu.json"), "w") as f:
    json.dump(numbers, f, indent=1)
print(json.dumps(numbers))
assert numbers["cuda"]["device_used"].startswith("cuda"), "XGBoost did not train on CUDA"
assert abs(numbers["cuda"]["test_roc_auc"] - numbers["cpu"]["test_roc_auc"]) < 0.02, "CUDA and CPU models disagree"
EOF

# -- 6. the serving benchmark (benchmarks/bench_inference.py), when there is time left ---------
if [[ -f benchmarks/bench_inference.py ]] && (( $(left) > 90 )); then
    step "bench_inference" 150 "$PY" benchmarks/bench_inference.py --no-ray --requests 2000 \
        --root "$OUT/bench-inference-root" --json "$OUT/bench_inference.json"
else
    echo "=== bench_inference: skipped (no script or under 90 s left)"
    RESULT[bench_inference]="skipped"
fi

summary | tee "$OUT/summary.json"
exit $FAILED
