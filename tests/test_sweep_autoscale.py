"""Autoscaling clusters: trials that fit on no node wait for one (not forever), on real Ray nodes.

``ray.cluster_utils.Cluster`` plays the cluster; a node added by the test plays the autoscaler
(a, b). In (c) Ray's own autoscaler (v1, with its fake multi-node provider, the one Ray's
``AutoscalingCluster`` uses) launches the GPU node, and the sweep finds out by itself that the
cluster autoscales.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import datetime

import pytest
import ray
import sweep_helpers
from ray import cloudpickle
from ray.cluster_utils import Cluster
from sklearn.datasets import load_breast_cancer

from specweave_ray import Increment, ModelExperiment, run_experiments
from specweave_ray.exceptions import SweepError
from specweave_ray.search._ray.resources import autoscaler_node_types
from specweave_ray.spec import SweepConfig
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sweep_helpers)

GPU = {"cpu": 1, "gpu": 1}


@pytest.fixture()
def env(monkeypatch):
    monkeypatch.delenv("SPECWEAVE_ALLOW_AUTOSCALE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")  # records are the subject here; spare the sqlite store
    return monkeypatch


@pytest.fixture()
def inc(tmp_path, env):
    return Increment.create("Autoscale", problem_type="classification", root=tmp_path / "incs")


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:120], y.iloc[:120]


@pytest.fixture()
def cpu_head(env):
    """One node, 1 CPU, no GPU; the test adds nodes."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _sleepy(name, **kw):
    return ModelExperiment(name, sweep_helpers.SleepyClassifier, {"sleep_s": 0.05}, **kw)


def _in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, box) where box gets ``result`` or ``error``."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _trials(inc):
    return [r for r in list_records(inc) if r.kind == "trial"]


def _wait_for_status(timeout_s=20.0):
    """Until the autoscaler monitor's status in the GCS maps the head node to a type.

    Its first status can come before that (CI once read an empty mapping), and an empty mapping
    reads as "no autoscaler" whatever the cluster is.
    """
    from ray.experimental.internal_kv import _internal_kv_get

    def mapping():
        raw = _internal_kv_get("__autoscaling_status")
        return (json.loads(raw).get("autoscaler_report") or {}).get("node_type_mapping") if raw else None

    deadline = time.monotonic() + timeout_s
    while not mapping():
        assert time.monotonic() < deadline, "the autoscaler monitor wrote no status naming a node"
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_gpu_trials_wait_for_a_node_that_joins_and_run_there(cpu_head, inc, data):
    X, y = data
    _wait_for_status()
    assert autoscaler_node_types() == []  # a fixed cluster: its monitor runs read-only
    exps = [_sleepy("gpu-a", resources=GPU), _sleepy("gpu-b", resources=GPU)]
    thread, box = _in_thread(lambda: run_experiments(
        exps, X, y, increment=inc, cv=2, baselines=False, refit=False,
        sweep=SweepConfig(autoscale=True, pending_timeout_s=60)))
    time.sleep(4)
    assert thread.is_alive() and not _trials(inc), box  # waiting, not failed fast
    added_at = time.time()
    node = cpu_head.add_node(num_cpus=1, num_gpus=1)
    thread.join(timeout=90)
    assert not thread.is_alive(), "the sweep did not finish after the GPU node joined"
    assert "error" not in box, box.get("error")
    recs = _trials(inc)
    assert sorted(r.meta["candidate"] for r in recs) == ["gpu-a", "gpu-b"]
    assert all(r.status == "finished" for r in recs)
    assert {r.meta["node"] for r in recs} == {node.node_id}
    assert min(datetime.fromisoformat(r.meta["started"]).timestamp() for r in recs) >= added_at
    assert box["result"].best_per_candidate.keys() == {"gpu-a", "gpu-b"}


@pytest.mark.timeout(120)
def test_no_node_within_the_timeout_stops_the_sweep_naming_the_candidate(cpu_head, inc, data, caplog):
    X, y = data
    # the CPU candidate first: with one slot (1 CPU) it runs before the GPU trial takes the slot
    exps = [_sleepy("cpu-ok"), _sleepy("gpu-mlp", resources=GPU)]
    caplog.set_level(logging.WARNING, logger="specweave_ray")
    t0 = time.monotonic()
    thread, box = _in_thread(lambda: run_experiments(
        exps, X, y, increment=inc, cv=2, baselines=False, refit=False,
        sweep=SweepConfig(autoscale=True, pending_timeout_s=3)))
    thread.join(timeout=90)
    assert not thread.is_alive(), "the sweep hung past its pending timeout"
    err = box.get("error")
    assert isinstance(err, SweepError), box
    with pytest.raises(SweepError, match=r"within the pending timeout of 3 s .*candidate 'gpu-mlp' asks for "
                                         r"1 CPU \+ 1 GPU per trial .*the cluster has 1 CPU, 0 GPU on 1 node"):
        raise err
    assert "cpu-ok" not in str(err)
    assert time.monotonic() - t0 < 60
    assert "the cluster autoscales (sweep.autoscale is true)" in caplog.text
    # the finished trial stays recorded; the GPU one never started, so it left no record
    recs = _trials(inc)
    assert [(r.meta["candidate"], r.status) for r in recs] == [("cpu-ok", "finished")]
    sweep = [r for r in list_records(inc) if r.kind == "sweep"]
    assert [s.status for s in sweep] == ["failed"]
    assert "pending timeout" in sweep[0].meta["error"]["message"]


def test_without_autoscale_a_candidate_no_node_fits_fails_fast(cpu_head, inc, data):
    X, y = data
    cpu_head.add_node(num_cpus=1)
    with pytest.raises(SweepError, match="asks for 1 GPU per trial but the Ray cluster has 0.*sweep.autoscale"):
        run_experiments([_sleepy("gpu", resources=GPU)], X, y, increment=inc, cv=2, baselines=False)
    # two 1-CPU nodes: 2 CPUs in all, but a trial's bundle is never split over nodes
    with pytest.raises(SweepError, match="asks for 2 CPU per trial on one node but no node has that"):
        run_experiments([_sleepy("wide", resources={"cpu": 2})], X, y, increment=inc, cv=2, baselines=False)
    assert not _trials(inc)


# -- (c) Ray's autoscaler launches the node --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def autoscaling_cluster(env, tmp_path):
    """A head (1 CPU) whose autoscaler may launch one 1-CPU/1-GPU node, as ``AutoscalingCluster``
    would; that class cannot be used here: Ray 2.60's wheel lacks the ``example.yaml`` it reads,
    and it runs ``ray stop --force``, which would end every Ray on the machine."""
    port = _free_port()
    gcs = f"{ray.util.get_node_ip_address()}:{port}"
    config = {
        "cluster_name": "specweave-fake", "max_workers": 1,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0,
                           "max_workers": 1}},
        "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.05,  # 3 s: the node goes (with its processes) once the sweep ends
        "docker": {}, "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": []}
    path = tmp_path / "autoscaler.json"
    path.write_text(json.dumps(config))
    env.setenv("RAY_FAKE_CLUSTER", "1")  # read by the monitor the head starts
    env.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "autoscaling_config": str(path), "gcs_server_port": port})
    ray.init(address=cluster.address, log_to_driver=False)
    head = ray.get_runtime_context().get_node_id()
    yield head
    deadline = time.monotonic() + 30  # let the autoscaler end the node it launched
    while sum(n["Alive"] for n in ray.nodes()) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.timeout(150)
def test_the_autoscaler_is_seen_and_launches_the_gpu_node(autoscaling_cluster, inc, data, caplog):
    head = autoscaling_cluster
    X, y = data
    _wait_for_status()
    assert autoscaler_node_types() == ["ray.head.default"]  # the config's name, not node_<id>
    caplog.set_level(logging.WARNING, logger="specweave_ray")
    thread, box = _in_thread(lambda: run_experiments(
        [_sleepy("gpu", resources=GPU)], X, y, increment=inc, cv=2, baselines=False, refit=False,
        sweep=SweepConfig(pending_timeout_s=90)))  # autoscale not said: seen in the autoscaler's status
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in box, box
    assert "the cluster autoscales (a Ray autoscaler with a cluster config manages its nodes" in caplog.text
    recs = _trials(inc)
    assert [r.status for r in recs] == ["finished"]
    workers = {n["NodeID"] for n in ray.nodes()} - {head}
    assert len(workers) == 1 and recs[0].meta["node"] in workers


@pytest.mark.parametrize("bad", [0, -1.0])
def test_pending_timeout_must_be_positive(bad, inc, data):
    from specweave_ray.exceptions import ConfigError
    from specweave_ray.spec.config import parse_config

    raw = {"increment": "x", "problem_type": "classification", "data": {"generate": "fraud", "target": "is_fraud"}}
    cfg = parse_config({**raw, "sweep": {"autoscale": True, "pending_timeout_s": 30}})
    assert (cfg.sweep.autoscale, cfg.sweep.pending_timeout_s) == (True, 30.0)
    assert parse_config(raw).sweep.autoscale is None  # unset: the environment or the cluster says
    with pytest.raises(ConfigError, match=r"sweep\.pending_timeout_s: Input should be greater than 0"):
        parse_config({**raw, "sweep": {"pending_timeout_s": bad}})
    X, y = data
    with pytest.raises(ConfigError, match=r"^sweep: pending_timeout_s: Input should be greater than 0"):
        run_experiments([_sleepy("a")], X, y, increment=inc, sweep={"pending_timeout_s": bad})
