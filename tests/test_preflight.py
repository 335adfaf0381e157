"""Bad candidates, rules and resources are refused before the pipeline writes anything (the run
would otherwise write T-001/T-002 records, or sweep until every trial failed the same way)."""

from __future__ import annotations

import re

import pytest
import yaml

from specweave_ray.cli import main

CANDIDATE = {"name": "logistic", "estimator": "logistic", "params": {"max_iter": 200}}
CASES = {
    "unknown estimator": ({"estimator": "logistik"}, None,
                          r"unknown estimator 'logistik' for classification; use an alias"),
    "unknown parameter": ({"params": {"max_iterations": 5}}, None,
                          r"candidate 'logistic': LogisticRegression has no parameter 'max_iterations' "
                          r"\(given 5\); did you mean 'max_iter'\?"),
    "bad value": ({"params": {"C": -1.0}}, None,
                  r"candidate 'logistic': LogisticRegression\(C=-1.0, class_weight='balanced'\) is refused: "
                  r"The 'C' parameter of LogisticRegression must be a float in the range \(0.0, inf\]"),
    "search space end": ({"estimator": "random-forest", "params": {"max_depth": {"randint": [-2, 5]}}}, None,
                         r"RandomForestClassifier\(max_depth=-2, class_weight='balanced'\) is refused"),
    "bad choice": ({"params": {"solver": {"choice": ["lbfgs", "bogus"]}}}, None,
                   r"LogisticRegression\(solver='bogus', class_weight='balanced'\) is refused"),
    "rule syntax": ({}, "amount >> 900 and", r"rule 'amount >> 900 and' is not a valid expression"),
    "rule column": ({}, "amount > 900 and cardpresent == 0",
                    r"baselines.rule 'amount > 900 and cardpresent == 0' reads 'cardpresent', which the data lacks "
                    r"\(columns: amount, "),
    "too many GPUs": ({"resources": {"cpu": 1, "gpu": 4}}, None,
                      r"candidate 'logistic' asks for 4 GPU per trial but the Ray cluster has 0"),
    # decided on the CPUs the embedded Ray is being started with, before it is up
    "too many CPUs": ({"resources": {"cpu": 4}}, None,
                      r"candidate 'logistic' asks for 4 CPU per trial but the Ray cluster has 1"),
}


def _config(tmp_path, name: str, candidate: dict, rule: str | None = None):
    cfg = {"increment": name, "problem_type": "classification",
           "data": {"generate": "fraud", "rows": 600, "target": "is_fraud"},
           "sweep": {"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 1}, "candidates": [candidate]}
    if rule:
        cfg["baselines"] = {"rule": rule}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_candidate_is_refused_before_anything_is_written(case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    change, rule, message = CASES[case]
    path = _config(tmp_path, "Bad", {**CANDIDATE, **change}, rule)
    root = tmp_path / "incs"
    assert main(["run", str(path), "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.search(message, err), err
    assert not root.exists() or not any(root.iterdir())  # no increment, no MLflow store


def test_a_stage_folder_planted_as_a_link_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    root, outside = tmp_path / "incs", tmp_path / "outside"
    outside.mkdir()
    assert main(["inc", "Links", "--type", "classification", "--root", str(root)]) == 0
    models = root / "0001-links" / "models"
    if models.exists():
        models.rmdir()
    models.symlink_to(outside, target_is_directory=True)
    path = _config(tmp_path, "Links", CANDIDATE)
    capsys.readouterr()
    assert main(["run", str(path), "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(r"refusing to write .*models: it resolves to .*outside the increment 0001-links", err), err
    assert not any(outside.iterdir()) and not any((root / "0001-links" / "experiments").glob("exp-*"))


def test_a_second_run_on_a_running_increment_is_refused_naming_the_first(tmp_path, capsys, monkeypatch):
    """The first run is a real process holding the increment's run lock (as `run` does)."""
    import subprocess
    import sys

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    root = tmp_path / "incs"
    assert main(["inc", "Busy", "--type", "classification", "--root", str(root)]) == 0
    lock = root / "0001-busy" / ".run.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom specweave_ray._fs import exclusive\n"
        f"with exclusive({str(lock)!r}, busy=RuntimeError):\n    print('held', flush=True)\n    time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        path = _config(tmp_path, "Busy", CANDIDATE)
        capsys.readouterr()
        assert main(["run", str(path), "--root", str(root)]) == 2
        err = capsys.readouterr().err.strip()
        assert re.search(rf"0001-busy is being run by pid {holder.pid} on .* since .*; wait for that run to end", err), err
        assert not any((root / "0001-busy" / "experiments").glob("exp-*"))
    finally:
        holder.kill()
        holder.wait()


def test_the_embedded_ray_starts_in_the_background_and_lives_until_shutdown(monkeypatch):
    """The pre-flight starts the run's embedded Ray in a thread (T-001 and T-002 run meanwhile)
    and the sweep's ``ensure_ray`` waits for it. That thread lives until ``shutdown``: Ray's
    processes are bound to the thread that started them (``PR_SET_PDEATHSIG``), so had it ended
    after ``ray.init``, the GCS and raylet would have died and this task never run."""
    import threading

    import ray

    from specweave_ray import ModelExperiment
    from specweave_ray.data import generate
    from specweave_ray.search import _ray, preflight

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    X = generate("fraud", n_rows=200, seed=0).drop(columns=["is_fraud"])
    started = preflight([ModelExperiment("logistic", "logistic", {"max_iter": 50})], X,
                        problem_type="classification", sweep={"num_cpus": 1})
    try:
        assert started
        assert _ray.planned_node() == {"CPU": 1.0, "GPU": None}
        assert _ray.ensure_ray(num_cpus=1) is False  # waited for the start, and started no second Ray
        assert ray.cluster_resources()["CPU"] == 1.0
        starter = next(t for t in threading.enumerate() if t.name == "specweave-ray-start")
        assert ray.get(ray.remote(lambda: "ran").remote()) == "ran"
    finally:
        _ray.shutdown()
    assert not starter.is_alive() and not ray.is_initialized() and _ray.planned_node() is None
