"""Two Ray nodes on one machine (``ray.cluster_utils.Cluster``): trials run on both, every record
lands in the driver's increment with the node that ran it."""

from __future__ import annotations

import numpy as np
import pytest
import ray
import sweep_helpers
from ray import cloudpickle
from ray.cluster_utils import Cluster
from sklearn.datasets import load_breast_cancer

from specweave_ray import Increment, ModelExperiment, run_experiments
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sweep_helpers)


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_trials_spread_over_both_nodes_and_are_all_recorded(two_nodes, tmp_path):
    inc = Increment.create("Cluster", problem_type="classification", root=tmp_path)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X, y = X.iloc[:200], y.iloc[:200]
    exps = [ModelExperiment(f"sleepy-{i}", sweep_helpers.SleepyClassifier, {"sleep_s": 0.5}) for i in range(6)]
    exps.append(ModelExperiment("xgb", "xgboost", {"n_estimators": 20}))
    res = run_experiments(exps, X, y, increment=inc, cv=2, baselines=False, refit=True)

    recs = [r for r in list_records(inc) if r.kind == "trial"]
    assert len(recs) == 7 and all(r.status == "finished" for r in recs)
    node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    used = {r.meta["node"] for r in recs}
    assert used <= node_ids and len(used) == 2, used
    # the best model of each candidate came back to the driver whatever node refitted it
    for path in res.models.values():
        assert (path / "meta.json").exists()
    assert (inc.experiments_dir / res.best_per_candidate["xgb"].record_id / "model.ubj").exists()


_EMBEDDED = """
import sys
import ray
from specweave_ray.search._ray.tune import ensure_ray
assert ensure_ray(num_cpus=1)
print(ray.get_runtime_context().gcs_address, len(ray.nodes()))
ray.shutdown()
"""


def test_the_embedded_ray_is_a_new_one_while_another_cluster_is_up(two_nodes):
    """``ray start --head`` (here the Cluster) writes /tmp/ray/ray_current_cluster; a plain
    ``ray.init(num_cpus=…)`` would join that cluster and refuse its own num_cpus. The embedded Ray
    (no address, no $RAY_ADDRESS) is a new one-node Ray."""
    import os
    import subprocess
    import sys

    from ray._private.utils import read_ray_address

    assert read_ray_address() == two_nodes.address  # the trap is armed
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", _EMBEDDED], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    address, nodes = out.stdout.split()[-2:]
    assert address != two_nodes.address and nodes == "1"


def test_one_forecast_trial_fits_its_series_in_chunks_on_both_nodes(two_nodes, tmp_path):
    """``ets`` with ``resources: {cpu: 2}`` on two one-CPU nodes: the trial holds two one-CPU
    bundles (PACK spills onto the second node), each chunk of series is a task in one, and the
    refit (chunked the same way) forecasts like the fit in one process."""
    from test_forecast_chunks import panel

    from specweave_ray._fs import read_json
    from specweave_ray.candidates.forecasters import ETSForecaster
    from specweave_ray.candidates.serialization import load_native

    inc = Increment.create("Chunks", problem_type="timeseries", root=tmp_path)
    X, y = panel(60)
    params = {"model": "AAN", "damped": False}
    res = run_experiments([ModelExperiment("ets", "ets", params, resources={"cpu": 2})], X, y, increment=inc,
                          problem_type="timeseries", metric="mase", cv=1, baselines=False, use_cache=False)
    rec, = [r for r in list_records(inc) if r.kind == "trial"]
    assert rec.status == "finished", rec.meta.get("error")
    node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    chunks = rec.meta["chunks"]
    assert chunks["tasks"] == 2 and set(chunks["nodes"]) <= node_ids and len(set(chunks["nodes"])) == 2, chunks
    assert rec.metrics["series_fallbacks"] == 0 and rec.metrics["series_timed_out"] == 0
    path = res.models["ets"]
    model = load_native(path, read_json(path / "meta.json")["artifacts"]["model"])
    assert model.chunks_ == 2
    whole = ETSForecaster(**params).fit(X, y)
    a, b = whole.forecast(), model.forecast()
    assert a[["unique_id", "ds"]].equals(b[["unique_id", "ds"]]) and np.allclose(a["yhat"], b["yhat"])
