"""Faults injected for real on a two-node ``ray.cluster_utils.Cluster`` (one Ray for the module):
a trial's process exits or SIGKILLs itself, goes over its memory limit, hangs past its time limit,
or dies on the second node only; Ctrl-C of a ``specweave-ray``-style driver; records left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import fault_helpers
import pytest
import ray
from fault_helpers import FaultyClassifier
from ray import cloudpickle
from ray.cluster_utils import Cluster
from sklearn.datasets import load_breast_cancer

from specweave_ray import Increment, ModelExperiment, run_experiments
from specweave_ray.spec import SweepConfig
from specweave_ray.workspace.records import list_records, mark_interrupted, open_experiment

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(fault_helpers)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = c.add_node(num_cpus=1, env_vars={fault_helpers.NODE_ENV: "second"})
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    c.second_node_id = second.node_id
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:120], y.iloc[:120]


def _trials(inc):
    return {r.meta["candidate"]: r for r in list_records(inc) if r.kind == "trial"}


def test_each_fault_is_recorded_failed_with_its_cause_and_node(cluster, data, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    inc = Increment.create("Faults", problem_type="classification", root=tmp_path)
    exps = [ModelExperiment(m, FaultyClassifier, {"mode": m}) for m in ("exit", "sigkill", "hog", "hang", "raise")]
    # exit on the second node only: on the head they wait until one has run on the second node
    # (its marker), holding the head's one CPU, so at least one must land there however slowly the
    # second node's worker starts
    exps += [ModelExperiment(f"second-{i}", FaultyClassifier, {"mode": "exit-on-second",
                                                               "marker": str(tmp_path / "ran-on-second")})
             for i in range(6)]
    exps.append(ModelExperiment("ok", FaultyClassifier, {"mode": "ok"}))
    t0 = time.monotonic()
    res = run_experiments(exps, *data, increment=inc, cv=2, baselines=False, refit=False,
                          sweep=SweepConfig(trial_timeout_s=4, trial_memory_mb=300))
    assert time.monotonic() - t0 < 90  # the hung trial was ended by its time limit
    by = _trials(inc)
    assert len(by) == len(exps) and by["ok"].status == "finished"
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    expect = {"exit": {"kind": "exit", "exit_code": 3}, "sigkill": {"kind": "signal", "signal": "SIGKILL"},
              "hog": {"kind": "oom"}, "hang": {"kind": "timeout"}, "raise": {"kind": "exception"}}
    for name, cause in expect.items():
        meta = by[name].meta
        assert meta["status"] == "failed", name
        assert cause.items() <= meta["error"]["cause"].items(), (name, meta["error"])
        # failed before any report, and still the node it ran on
        assert meta["node"] in alive, (name, meta["node"])
    assert "exited with code 3" in by["exit"].meta["error"]["message"]
    assert "SIGKILL" in by["sigkill"].meta["error"]["message"]
    assert "memory limit of 300 MB" in by["hog"].meta["error"]["message"]
    assert "time limit of 4 s" in by["hang"].meta["error"]["message"]
    assert by["raise"].meta["error"]["type"] == "ValueError" and "boom" in by["raise"].meta["error"]["message"]
    seconds = [by[f"second-{i}"].meta for i in range(6)]
    on_second = [m for m in seconds if m["node"] == cluster.second_node_id]
    assert on_second, "no trial ran on the second node"
    assert all(m["status"] == "failed" and m["error"]["cause"] == {"kind": "exit", "exit_code": 3} for m in on_second)
    # elsewhere they finished once the marker was there (or, when the second node's worker was
    # slower to start than the time limit, were ended by it while they waited: never another cause)
    waited = [m for m in seconds if m["node"] != cluster.second_node_id and m["status"] != "finished"]
    assert all(m["status"] == "failed" and m["error"]["cause"]["kind"] == "timeout" for m in waited), waited
    assert len(res.failed) == 5 + len(on_second) + len(waited)
    assert cluster.second_node_id in {r.meta["node"] for r in by.values() if r.status == "failed"}


_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    import fault_helpers
    from ray import cloudpickle
    from sklearn.datasets import load_breast_cancer
    from specweave_ray import ModelExperiment, run_experiments
    cloudpickle.register_pickle_by_value(fault_helpers)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    run_experiments(fault_helpers.held({hold!r}), X.iloc[:120], y.iloc[:120], increment={inc!r}, cv=2,
                    baselines=False, refit=False)
""")


def test_ctrl_c_records_running_trials_interrupted_and_the_rerun_finishes_them(cluster, data, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    inc = Increment.create("Interrupt", problem_type="classification", root=tmp_path)
    hold = tmp_path / "hold"
    hold.touch()  # c2…c5 wait while it exists: they are running when Ctrl-C comes
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(here=str(Path(__file__).parent), inc=str(inc.path), hold=str(hold)))
    env = {**os.environ, "SPECWEAVE_MLFLOW": "0", "RAY_ADDRESS": cluster.address}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Ctrl-C once c0 and c1 are recorded and a held trial is running (it touches hold.started):
        # waited for, not slept for, so a loaded machine can't send it too early
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
                len([r for r in list_records(inc) if r.kind == "trial"]) >= 2
                and Path(f"{hold}.started").exists()):
            time.sleep(0.2)
        time.sleep(0.5)  # let the other slot's held trial start too (not required)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recs = [r for r in list_records(inc) if r.kind == "trial"]
    status = {r.meta["candidate"]: r.status for r in recs}
    finished_ids = sorted(r.id for r in recs if r.status == "finished")
    assert sorted(c for c, s in status.items() if s == "finished") == ["c0", "c1"], (status, err[-2000:])
    interrupted = sorted(c for c, s in status.items() if s == "interrupted")
    assert interrupted and set(interrupted) <= {"c2", "c3", "c4", "c5"}, status  # recorded, not missing
    assert all(r.meta["error"]["cause"]["kind"] == "interrupted" for r in recs if r.status == "interrupted")
    assert next(r for r in list_records(inc) if r.kind == "sweep").status == "interrupted"

    # the next start reruns what was interrupted (or never started); the finished ones are reused
    hold.unlink()
    res = run_experiments(fault_helpers.held(str(hold)), *data, increment=inc, cv=2, baselines=False, refit=False)
    assert {t.candidate for t in res.trials if t.cached} == {"c0", "c1"}
    after = [r for r in list_records(inc) if r.kind == "trial"]
    done = [r for r in after if r.status == "finished"]
    assert sorted(r.meta["candidate"] for r in done) == [f"c{i}" for i in range(6)]  # each once
    assert sorted(r.id for r in done if r.meta["candidate"] in ("c0", "c1")) == finished_ids  # not recomputed
    assert sorted(r.meta["candidate"] for r in after if r.status == "interrupted") == interrupted  # kept


def test_running_leftovers_of_a_dead_process_become_interrupted(tmp_path):
    inc = Increment.create("Leftovers", problem_type="classification", root=tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = open_experiment("mine", increment=inc, mirror=False)
    theirs = open_experiment("theirs", increment=inc, mirror=False)
    meta = json.loads((theirs.path / "meta.json").read_text())
    meta["writer"]["pid"] = dead.pid  # written by a process that is gone
    (theirs.path / "meta.json").write_text(json.dumps(meta))
    assert mark_interrupted(inc) == [theirs.id]
    by = {r.id: r.status for r in list_records(inc)}
    assert by == {mine.id: "running", theirs.id: "interrupted"}


def test_records_a_dead_driver_left_unmirrored_are_mirrored_by_the_next_run(cluster, data, tmp_path, monkeypatch):
    monkeypatch.delenv("SPECWEAVE_MLFLOW", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    inc = Increment.create("Unmirrored", problem_type="classification", root=tmp_path)
    # what a driver killed between writing its records and mirroring them leaves behind
    script = ("import os, sys\nfrom specweave_ray.workspace.records import open_experiment\n"
              "for i in range(2):\n"
              "    e = open_experiment(f'left{i}', increment=sys.argv[1], mirror=False, metrics={'m': i})\n"
              "    e.close()\n"
              "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", script, str(inc.path)], check=True, timeout=120)
    assert all(not r.meta["mlflow_run_id"] for r in list_records(inc))
    run_experiments([ModelExperiment("ok", FaultyClassifier, {})], *data, increment=inc, cv=2, baselines=False,
                    refit=False)
    recs = list_records(inc)
    assert all(r.meta["mlflow_run_id"] and not r.meta.get("mlflow_error") for r in recs), \
        [(r.id, r.meta.get("mlflow_error")) for r in recs]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{inc.root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(inc.id).experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(r.meta["mlflow_run_id"] for r in recs)  # once each


@pytest.mark.timeout(240)  # bounded: a trial on a removed node must not hold the sweep
def test_a_node_removed_mid_sweep_fails_its_trial_with_the_node_and_the_rest_finish(cluster, data, tmp_path,
                                                                                   monkeypatch):
    """A third node joins the module's cluster; the trial placed there holds until the test
    removes the node (its raylet and workers killed, as when a spot node goes away). That trial is
    recorded failed, naming the worker's death and the removed node; every other trial finishes on
    the remaining nodes, and the sweep returns."""
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    third = cluster.add_node(num_cpus=1, env_vars={fault_helpers.NODE_ENV: "third"})
    cluster.wait_for_nodes()
    inc = Increment.create("Node Removed", problem_type="classification", root=tmp_path)
    marker = tmp_path / "on-third"
    # 1.5 s each elsewhere, so the run lasts until the third node's worker is up and takes one
    exps = [ModelExperiment(f"t{i}", FaultyClassifier, {"mode": "hold-on-third", "sleep_s": 1.5,
                                                        "marker": str(marker)}) for i in range(8)]
    out: dict = {}

    def remove_once_held() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.2)
        out["held"] = marker.exists()
        cluster.remove_node(third)

    remover = threading.Thread(target=remove_once_held, daemon=True)
    remover.start()
    try:
        res = run_experiments(exps, *data, increment=inc, cv=2, baselines=False, refit=False)
    finally:
        remover.join(timeout=150)
    assert out.get("held"), "no trial was placed on the third node"
    by = _trials(inc)
    assert len(by) == len(exps)  # every trial recorded once
    failed = [r.meta for r in by.values() if r.status == "failed"]
    assert len(failed) == 1 and len(res.failed) == 1, {c: r.status for c, r in by.items()}
    assert failed[0]["node"] == third.node_id, failed[0]
    cause = failed[0]["error"]["cause"]
    assert cause["kind"] == "node_died" and cause["node"] == third.node_id, failed[0]["error"]
    assert "SIGTERM" in cause["detail"] and "its node has died" in failed[0]["error"]["message"], failed[0]["error"]
    finished = [r.meta for r in by.values() if r.status == "finished"]
    assert len(finished) == len(exps) - 1 and all(m["node"] != third.node_id for m in finished)
