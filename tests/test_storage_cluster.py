"""A sweep whose increments root is an S3 URI, with the driver on one Ray node and every trial on
another: no disk is shared, yet the records, the models and Tune's own state all land in the
bucket, and a second machine reads the results back."""

from __future__ import annotations

import json

import pytest
import ray
from ray.cluster_utils import Cluster
from s3_helpers import s3_server
from sklearn.datasets import load_breast_cancer

from specweave_ray import Increment, ModelExperiment, run_experiments
from specweave_ray.workspace import storage
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_and_two_nodes():
    with s3_server() as s3:  # before the nodes start: they inherit the AWS variables
        # the head (where the driver attaches) has no CPU for trials: they all run on the worker
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        worker = cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            yield s3, worker.node_id
        finally:
            ray.shutdown()
            cluster.shutdown()


def test_sweep_on_another_node_writes_everything_to_the_bucket(s3_and_two_nodes, tmp_path, monkeypatch):
    s3, worker_id = s3_and_two_nodes
    monkeypatch.setenv("SPECWEAVE_STAGING", str(tmp_path / "driver"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    storage.unmount()
    uri = s3.uri("cluster-root")
    inc = Increment.create("Remote Sweep", problem_type="classification", root=uri)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    exps = [ModelExperiment("xgb", "xgboost", {"n_estimators": 20, "max_depth": {"choice": [2, 3, 4]}}, num_samples=3),
            ModelExperiment("logreg", "logistic_regression", {"C": 1.0})]
    res = run_experiments(exps, X.iloc[:300], y.iloc[:300], increment=inc, cv=2, baselines=True, refit=True)

    trials = [r for r in list_records(inc) if r.kind == "trial"]
    assert trials and all(r.status == "finished" for r in trials)
    assert {r.meta["node"] for r in trials} == {worker_id}  # nothing ran beside the driver

    keys = s3.keys("cluster-root")
    prefix = f"{inc.id}/experiments/"
    for r in trials:  # every record whole in the bucket, final status included
        meta = json.loads(s3.read(f"cluster-root/{prefix}{r.id}/meta.json"))
        assert meta["status"] == "finished" and f"{prefix}{r.id}/metrics.json" in keys
    assert f"{prefix}comparison.md" in keys and f"{prefix}comparison.json" in keys
    best = res.best_per_candidate["xgb"].record_id
    assert f"{prefix}{best}/model.ubj" in keys  # the refitted model, from the worker via the driver
    # Ray Tune's storage_path is the same root: its experiment state is in the bucket too
    tune_state = [k for k in keys if k.startswith(f"{prefix}tune/{res.sweep_record}/") and "experiment_state" in k]
    assert tune_state, sorted(k for k in keys if "/tune/" in k)
    assert "mlflow.db" in keys and any(k.startswith(f"mlartifacts/{inc.id}/") for k in keys)  # MLflow too

    # another machine: an empty mirror reads the same results
    storage.unmount()
    monkeypatch.setenv("SPECWEAVE_STAGING", str(tmp_path / "laptop"))
    again = Increment.open(inc.id, root=uri)
    got = {r.id: r.metrics for r in list_records(again) if r.kind == "trial"}
    assert got == {r.id: r.metrics for r in trials}
    assert (again.experiments_dir / best / "model.ubj").read_bytes() == (inc.experiments_dir / best / "model.ubj").read_bytes()
    assert not (again.experiments_dir / "tune").exists()  # Tune's state is read by Tune, not fetched
    storage.unmount()
