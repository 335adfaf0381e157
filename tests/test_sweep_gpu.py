"""GPU scheduling under logical GPUs (``ray.init(num_gpus=2)``) on a machine without CUDA."""

from __future__ import annotations

import datetime as dt

import pytest
import ray
import sweep_helpers
from ray import cloudpickle
from sklearn.datasets import load_breast_cancer

from specweave_ray import Increment, ModelExperiment, run_experiments
from specweave_ray.candidates.device import torch_cuda_usable
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sweep_helpers)


@pytest.fixture(scope="module", autouse=True)
def ray_with_logical_gpus():
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _overlap(records):
    spans = [(dt.datetime.fromisoformat(r.meta["started"]), dt.datetime.fromisoformat(r.meta["ended"]))
             for r in records]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


@pytest.mark.skipif(torch_cuda_usable(), reason="checks the CPU fallback; a real GPU is tested by the gpu marker")
def test_half_gpu_trials_get_devices_run_four_at_once_and_fall_back_to_cpu(tmp_path):
    inc = Increment.create("GPU", problem_type="classification", root=tmp_path)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X, y = X.iloc[:200], y.iloc[:200]
    exps = [ModelExperiment(f"sleepy-{i}", sweep_helpers.SleepyClassifier, {"sleep_s": 1.0},
                            resources={"cpu": 0.25, "gpu": 0.5}) for i in range(8)]
    exps.append(ModelExperiment("xgb-gpu", "xgboost", {"n_estimators": 10}, resources={"cpu": 0.25, "gpu": 0.5}))
    exps.append(ModelExperiment("mlp-gpu", "torch-mlp", {"epochs": 2}, resources={"cpu": 0.25, "gpu": 0.5}))
    res = run_experiments(exps, X, y, increment=inc, cv=2, baselines=False, refit=False)

    recs = [r for r in list_records(inc) if r.kind == "trial"]
    assert len(recs) == 10 and all(r.status == "finished" for r in recs), [r.meta.get("error") for r in recs]
    for r in recs:
        assert r.meta["resources"]["gpu"] == 0.5
        assert r.meta["resources"]["gpu_ids"] in ("0", "1")
        assert r.meta["resources"]["cuda_visible_devices"] == r.meta["resources"]["gpu_ids"]
    # 2 logical GPUs / 0.5 each: never more than 4 trials at once (CPU alone would allow 8)
    assert _overlap([r for r in recs if r.meta["candidate"].startswith("sleepy")]) <= 4
    by = {r.meta["candidate"]: r for r in recs}
    assert any("xgboost ran on CPU" in w for w in by["xgb-gpu"].meta["device_warnings"])
    assert any("torch MLP ran on CPU" in w for w in by["mlp-gpu"].meta["device_warnings"])
    assert "Device fallback" in (by["xgb-gpu"].path / "notes.md").read_text()
    assert res.best is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch_cuda_usable(), reason="needs a real CUDA device")
def test_gpu_trials_use_cuda(tmp_path):
    inc = Increment.create("Real GPU", problem_type="classification", root=tmp_path)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    exps = [ModelExperiment("xgb-gpu", "xgboost", {"n_estimators": 50}, resources={"cpu": 1, "gpu": 0.5}),
            ModelExperiment("mlp-gpu", "torch-mlp", {"epochs": 5}, resources={"cpu": 1, "gpu": 0.5})]
    run_experiments(exps, X, y, increment=inc, cv=3, baselines=False, refit=False)
    recs = [r for r in list_records(inc) if r.kind == "trial"]
    assert all(r.status == "finished" and not r.meta["device_warnings"] for r in recs)
