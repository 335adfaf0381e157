"""Lineage in records and packages: the code that ran (commit, dirty tree), a user class's
source hash, the config hash, the seeds, the environment freeze; ``reproduce`` reruns a record."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from specweave_ray.workspace import _lineage
from specweave_ray.workspace.records import list_records, open_experiment, read_record, run_lineage


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "model.py").write_text("x = 1\n")
    _git(path, "add", "model.py")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return path


def test_git_state_names_the_commit_and_flips_dirty(repo: Path, tmp_path: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert _lineage.git_state(repo) == {"commit": head, "dirty": False}
    (repo / "model.py").write_text("x = 2\n")
    assert _lineage.git_state(repo) == {"commit": head, "dirty": True}
    _git(repo, "checkout", "--", "model.py")
    (repo / "new.py").write_text("y = 1\n")  # an untracked module may be what ran
    assert _lineage.git_state(repo)["dirty"] is True
    outside = tmp_path / "plain"
    outside.mkdir()
    assert _lineage.git_state(outside) == {"commit": None, "dirty": None}  # never fails


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect finds a class's file through its module
    spec.loader.exec_module(module)
    return module


def test_source_hash_follows_the_user_class_source(tmp_path: Path) -> None:
    src = tmp_path / "user_est.py"
    body = textwrap.dedent("""
        from sklearn.base import BaseEstimator

        class MyModel(BaseEstimator):
            def __init__(self, a=1):
                self.a = a

            def fit(self, X, y):
                return self{}
    """)
    src.write_text(body.format(""))
    first = _lineage.source_hash(_load(src, "user_est_a").MyModel)
    assert first is not None and first.startswith("sha256:")
    assert _lineage.source_hash(_load(src, "user_est_b").MyModel()) == first  # an instance: its class
    src.write_text(body.format("  # changed"))
    assert _lineage.source_hash(_load(src, "user_est_c").MyModel) not in (None, first)
    # a library's class is named by its version in the environment freeze, not hashed
    assert _lineage.source_hash(LogisticRegression) is None
    assert _lineage.source_hash(int) is None


def test_config_hash_ignores_key_order() -> None:
    assert _lineage.config_hash({"a": 1, "b": {"c": 2}}) == _lineage.config_hash({"b": {"c": 2}, "a": 1})
    assert _lineage.config_hash({"a": 1}) != _lineage.config_hash({"a": 2})


def test_every_record_names_its_lineage(increment) -> None:
    git = _lineage.git_state(Path(_lineage.__file__).parent)
    with run_lineage(config_hash="sha256:abc", seed=7):
        exp = open_experiment("eda", increment=increment, mirror=False,
                              meta={"data_fingerprint": "sha256:data"})
        exp.close()
    exp2 = open_experiment("other", increment=increment, mirror=False, meta={"lineage": {"seed": 3}})
    exp2.close()
    lin = read_record(exp.path).meta["lineage"]
    assert lin["git_commit"] == git["commit"] and lin["git_dirty"] == git["dirty"]
    assert lin["config_hash"] == "sha256:abc" and lin["seed"] == 7 and lin["data_fingerprint"] == "sha256:data"
    assert set(lin) >= {"package_version", "estimator_source_sha256", "preprocessor_source_sha256"}
    lin2 = read_record(exp2.path).meta["lineage"]
    assert lin2["seed"] == 3 and lin2["config_hash"] is None  # outside the run's block


def test_environment_freeze_is_saved_once_and_referenced(increment) -> None:
    first = open_experiment("a", increment=increment, mirror=False)
    first.close()
    second = open_experiment("b", increment=increment, mirror=False)
    second.close()
    lin = read_record(first.path).meta["lineage"]
    freeze = increment.path / lin["environment_freeze"]
    assert read_record(second.path).meta["lineage"]["environment_freeze"] == lin["environment_freeze"]
    assert len(list((increment.experiments_dir / _lineage.FREEZE_DIR).iterdir())) == 1  # once per environment
    text = freeze.read_text()
    assert "sha256:" + hashlib.sha256(text.encode()).hexdigest() == lin["environment_sha256"]
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    names = [ln.split("==")[0].lower() for ln in lines]
    assert names == sorted(names) and any(ln.startswith("scikit-learn==") for ln in lines)


# -- a small real pipeline run (T-001 … T-004 on local Ray) for the sweep's lineage and reproduce --
@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory):
    """600 fraud rows, 3-fold CV: the baselines, a logistic regression and a user-defined model,
    swept once (T-005, which refits the best)."""
    import os

    import ray
    import sweep_helpers
    from ray import cloudpickle

    from specweave_ray.pipeline._tasks import TASK_ORDER, ensure_increment, run_pipeline
    from specweave_ray.spec.config import parse_config

    cloudpickle.register_pickle_by_value(sweep_helpers)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    root = tmp_path_factory.mktemp("lineage") / "incs"
    cfg = parse_config({
        "increment": "Lineage", "problem_type": "classification", "seed": 5,
        "data": {"generate": "fraud", "rows": 600, "target": "is_fraud", "params": {"positive_rate": 0.1}},
        "sweep": {"cv": 3, "stages": 1, "num_cpus": 2},
        "candidates": [{"name": "logistic", "estimator": "logistic", "params": {"max_iter": 300}},
                       {"name": "prior", "estimator": "sweep_helpers.SleepyClassifier",
                        "params": {"sleep_s": 0.0}}]}, source="test")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("SPECWEAVE_ROOT", raising=False)
            mp.setenv("SPECWEAVE_MLFLOW", "0")
            inc = ensure_increment(cfg, root=root)
            for task in TASK_ORDER:
                if task != "T-005":  # one sweep (baselines too) that refits the best: all this needs
                    inc.tick(task)
            run_pipeline(cfg, increment=inc)
    finally:
        ray.shutdown()
    return inc, root, cfg


def _trial(inc, candidate: str):
    return next(r for r in list_records(inc) if r.meta.get("candidate") == candidate and r.kind in ("trial", "baseline"))


@pytest.mark.slow
def test_sweep_records_name_seed_config_data_and_source(swept) -> None:
    import sweep_helpers

    from specweave_ray.pipeline._tasks import config_identity, stored_config

    inc, _, cfg = swept
    logistic, prior = _trial(inc, "logistic"), _trial(inc, "prior")
    for rec in (logistic, prior, _trial(inc, "majority")):
        lin = rec.meta["lineage"]
        assert lin["seed"] == 5 and lin["config_hash"] == config_identity(stored_config(inc))
        assert lin["data_fingerprint"] == rec.meta["data_fingerprint"] and lin["data_fingerprint"]
        assert lin["git_commit"] == _lineage.code_git()["commit"]
        assert (inc.path / lin["environment_freeze"]).is_file()
    assert logistic.meta["lineage"]["estimator_source_sha256"] is None  # scikit-learn's: by version
    assert prior.meta["lineage"]["estimator_source_sha256"] == _lineage.source_hash(sweep_helpers.SleepyClassifier)
    assert logistic.meta["lineage"]["preprocessor_source_sha256"] is None  # the built-in ColumnTransformer


def _files(inc) -> dict[str, int]:
    return {str(p.relative_to(inc.path)): p.stat().st_mtime_ns for p in inc.path.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_reproduce_matches_a_deterministic_trial(swept, capsys) -> None:
    from specweave_ray.cli import main

    inc, root, _ = swept
    before = _files(inc)
    for candidate in ("logistic", "prior"):
        rec = _trial(inc, candidate)
        assert main(["reproduce", inc.id, "--root", str(root), "--experiment", rec.id[:7]]) == 0
        out = capsys.readouterr().out
        assert "reproduced: every metric matches" in out and "cv_mean" in out and "cv_fold_3" in out
    assert _files(inc) == before  # nothing written


@pytest.mark.slow
def test_reproduce_reports_an_altered_metric(swept, capsys) -> None:
    from specweave_ray.cli import main

    inc, root, _ = swept
    rec = _trial(inc, "logistic")
    path = rec.path / "metrics.json"
    original = path.read_text()
    try:
        path.write_text(json.dumps({**rec.metrics, "cv_mean": rec.metrics["cv_mean"] + 0.01}))
        assert main(["reproduce", inc.id, "--root", str(root), "--experiment", rec.id]) == 1
    finally:
        path.write_text(original)
    out = capsys.readouterr().out
    assert "not reproduced: 1 of" in out
    row = next(line for line in out.splitlines() if "cv_mean" in line)
    assert "no" in row and "-0.01" in row


@pytest.mark.slow
def test_reproduce_refuses_to_rerun_on_changed_data(swept, capsys) -> None:
    import yaml

    from specweave_ray.cli import main

    inc, root, _ = swept
    rec = _trial(inc, "logistic")
    path = inc.path / "pipeline.yaml"
    original = path.read_text()
    try:
        cfg = yaml.safe_load(original)
        cfg["data"]["rows"] = 650
        path.write_text(yaml.safe_dump(cfg))
        assert main(["reproduce", inc.id, "--root", str(root), "--experiment", rec.id]) == 1
    finally:
        path.write_text(original)
    out = capsys.readouterr().out
    assert "note: data: the stored config's data has fingerprint" in out and "not reproduced" in out


@pytest.mark.slow
def test_reproduce_bad_input_is_one_line_and_exit_2(swept, capsys) -> None:
    from specweave_ray.cli import main

    inc, root, _ = swept
    rec = _trial(inc, "logistic")
    before = _files(inc)
    sweep = next(r for r in list_records(inc) if r.kind == "sweep")
    cases = [(["nope-9999", "--experiment", rec.id], "nope-9999"),
             ([inc.id, "--experiment", "exp-999"], "exp-999"),
             ([inc.id, "--experiment", sweep.id[:7]], "sweep")]
    for argv, named in cases:
        assert main(["reproduce", *argv, "--root", str(root)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err, err
    params = rec.path / "params.json"
    params.rename(rec.path / "params.bak")
    try:
        assert main(["reproduce", inc.id, "--root", str(root), "--experiment", rec.id]) == 2
    finally:
        (rec.path / "params.bak").rename(params)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "params.json" in err
    assert main(["reproduce", inc.id, "--root", str(root), "--experiment", rec.id, "--rtol", "-1"]) == 2
    assert "--rtol" in capsys.readouterr().err
    config = inc.path / "pipeline.yaml"
    config.rename(inc.path / "pipeline.bak")
    try:
        assert main(["reproduce", inc.id, "--root", str(root), "--experiment", rec.id]) == 2
    finally:
        (inc.path / "pipeline.bak").rename(config)
    assert "has no pipeline.yaml" in capsys.readouterr().err
    assert _files(inc) == before


def test_inc_parent_is_checked_and_saved(root: Path, capsys) -> None:
    from specweave_ray.cli import main

    assert main(["inc", "Old", "--type", "classification"]) == 0
    assert main(["inc", "New", "--type", "classification", "--parent", "0042"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0042" in err
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0001-old"]  # nothing written
    assert main(["inc", "New", "--type", "classification", "--parent", "1"]) == 0
    assert "parent 0001-old" in capsys.readouterr().out
    assert json.loads((root / "0002-new" / "metadata.json").read_text()) == {"parent": "0001-old"}


def test_a_config_naming_an_unknown_parent_writes_nothing(root: Path) -> None:
    from specweave_ray.exceptions import IncrementNotFoundError
    from specweave_ray.pipeline._tasks import run_pipeline
    from specweave_ray.spec.config import parse_config

    cfg = parse_config({"increment": "Child", "problem_type": "classification", "parent": "0007",
                        "data": {"generate": "fraud", "rows": 300, "target": "is_fraud"}}, source="child.yaml")
    with pytest.raises(IncrementNotFoundError, match="0007"):
        run_pipeline(cfg, root=root)
    assert list(root.iterdir()) == []


@pytest.mark.slow
def test_the_parent_best_model_is_scored_on_the_child_test_rows(swept) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from specweave_ray import problems
    from specweave_ray.candidates.serialization import load_native
    from specweave_ray.data import generate
    from specweave_ray.evaluate.holdout import _parent_scores, _parent_section
    from specweave_ray.workspace.increment import Increment

    inc, root, _ = swept
    child = Increment.create("Child", problem_type="classification", root=root, parent=inc.id)
    assert child.parent() == inc
    new = generate("fraud", n_rows=300, seed=11, positive_rate=0.1)  # the child's own test rows
    X, y = new.drop(columns="is_fraud"), new["is_fraud"]
    out = _parent_scores(child, problems.get("classification"), X_test=X, y_test=y, classes=[0, 1],
                         n_boot=50, seed=0)
    comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
    best = read_record(inc.experiments_dir / comp["best"])
    assert out["increment"] == inc.id and out["record"] == best.id and out["candidate"] == "logistic"
    model = load_native(best.path, best.meta["artifacts"]["model"])
    features = load_native(best.path, best.meta["artifacts"]["features"])
    expected = roc_auc_score(y, model.predict_proba(features.transform(X))[:, 1])
    assert np.isclose(out["metrics"]["roc_auc"], expected)
    section = _parent_section("roc_auc", {"roc_auc": 0.9}, out)
    assert f"parent increment {inc.id}" in section and f"| roc_auc | 0.9 | {expected:.4g} |" in section
    # a parent whose model can't score these rows is a note, not a failed evaluation
    broken = _parent_scores(child, problems.get("classification"), X_test=X.drop(columns=X.columns[:2]),
                            y_test=y, classes=[0, 1], n_boot=50, seed=0)
    assert "error" in broken and "metrics" not in broken


@pytest.mark.slow
def test_the_evaluation_shows_the_parent_against_the_new_model(swept, tmp_path: Path, monkeypatch) -> None:
    """T-006 of a child (here: the parent's sweep records copied in) on new test rows."""
    import shutil

    from specweave_ray.data import generate
    from specweave_ray.evaluate import evaluate_holdout
    from specweave_ray.workspace.increment import Increment

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    inc, root, _ = swept
    child = Increment.create("Child Eval", problem_type="classification", root=root, parent=inc.id)
    shutil.copytree(inc.experiments_dir, child.experiments_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("tune"))
    train, test = (generate("fraud", n_rows=300, seed=s, positive_rate=0.1) for s in (12, 13))
    summary, _ = evaluate_holdout(child, child.spec(), X_train=train.drop(columns="is_fraud"),
                                  y_train=train["is_fraud"], X_test=test.drop(columns="is_fraud"),
                                  y_test=test["is_fraud"], cv=3, seed=0, n_boot=50)
    parent = summary["parent"]
    assert parent["increment"] == inc.id and "roc_auc" in parent["metrics"]
    ev = read_record(child.experiments_dir / summary["record"])
    assert ev.metrics["parent_roc_auc"] == parent["metrics"]["roc_auc"]
    assert json.loads((ev.path / "parent.json").read_text())["record"] == parent["record"]
    assert f"## Against the parent increment {inc.id}" in (ev.path / "evaluation.md").read_text()
    # the package names its model's lineage: the trial's, and the code that packaged it
    from specweave_ray.deploy.package import build_package

    meta = json.loads(build_package(child, reference_data=train.drop(columns="is_fraud")).read_text())
    lin, trial = meta["lineage"], read_record(child.experiments_dir / meta["trial_record"]).meta["lineage"]
    assert lin["seed"] == 5 and lin["config_hash"] == trial["config_hash"] and lin["config_hash"]
    assert lin["data_fingerprint"] == trial["data_fingerprint"] and lin["environment_sha256"]
    # and the completion summary sets the parent's model beside the new one
    from specweave_ray.finish.summary import completion_summary
    from specweave_ray.finish.validate import gather

    text = completion_summary(gather(child), [], forced=False)
    assert f"### Against the parent increment {inc.id}" in text
    assert f"| roc_auc | {ev.metrics['roc_auc']:.4g} | {parent['metrics']['roc_auc']:.4g} |" in text
    assert lin["trial_record"] == meta["trial_record"]
    assert lin["packaged_by"]["git_commit"] == _lineage.code_git()["commit"]
