"""The pipeline end to end through the CLI (real Ray, MLflow, Optuna), and its bad inputs."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from specweave_ray.cli import main
from specweave_ray.data.datasets import make_fraud, make_ltv
from specweave_ray.finish.notebooks import NOTEBOOKS
from specweave_ray.workspace.increment import Increment, list_increments
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow

SMALL_CANDIDATES = [
    {"name": "logistic", "estimator": "logistic", "params": {"max_iter": 500, "C": {"loguniform": [0.01, 10.0]}},
     "num_samples": 2},
    {"name": "xgboost", "estimator": "xgboost",
     "params": {"n_estimators": 30, "max_depth": {"randint": [2, 5]}}, "num_samples": 2},
]


def _config(tmp_path: Path, **overrides) -> Path:
    cfg = {"increment": "Fraud Small", "problem_type": "classification",
           "data": {"generate": "fraud", "rows": 4000, "target": "is_fraud", "params": {"positive_rate": 0.03}},
           "baselines": {"rule": "amount > 900 and card_present == 0"},
           "sweep": {"cv": 3, "stages": 2, "tuning_samples": 3, "num_cpus": 2},
           "candidates": SMALL_CANDIDATES, "seed": 3}
    cfg.update(overrides)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_ray():
    """One embedded Ray for the module's runs: each run would start and stop its own (~10-15 s
    on 2 cores); a run joins a Ray that is up and leaves it running (``ensure_ray``)."""
    import ray

    from specweave_ray.search._ray.tune import ensure_ray

    started = ensure_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "incs"


def test_run_classification_end_to_end_then_rerun_skips(tmp_path, root, capsys):
    cfg = _config(tmp_path, notebooks={"execute": True})
    assert main(["run", str(cfg), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "gate" in out and "T-006" in out
    inc = list_increments(root)[0]
    assert [t.done for t in inc.tasks()] == [True] * 9
    for name in ("schema.yaml", "profile.json", "sample.parquet"):
        assert (inc.data_dir / name).exists()
    ev = list_records(inc, kind="evaluation")
    assert len(ev) == 1
    m = ev[0].metrics
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "threshold"):
        assert key in m
    assert m["roc_auc_ci_low"] <= m["roc_auc"] <= m["roc_auc_ci_high"]
    assert (ev[0].path / "evaluation.md").read_text().count("Gate") >= 1
    gate = json.loads((ev[0].path / "gate.json").read_text())
    assert {g["status"] for g in gate} <= {"met", "not met", "not measured"}
    baselines = list_records(inc, kind="baseline-evaluation")
    assert {b.meta["candidate"] for b in baselines} == {"random-uniform", "random-prior", "majority", "rule"}
    assert all("roc_auc" in b.metrics for b in baselines)
    assert ev[0].meta["data_fingerprint"] == list_records(inc, kind="data")[0].meta["data_fingerprint"]
    # T-007 explainability, T-008 package + benchmark + gate, T-009 A/B plan
    meta = json.loads((inc.models_dir / "model-v1.metadata.json").read_text())
    assert meta["status"] in ("passed", "failed") and meta["threshold"] == m["threshold"]
    expl = list_records(inc, kind="explainability")[0]
    assert any(k.startswith("importance_") for k in expl.metrics)
    importance = pd.read_csv(expl.path / "importance.csv", index_col="feature")
    assert (importance["ci_low"] <= importance["ci_high"]).all() and importance["native_kind"].notna().all()
    shap_values = np.load(expl.path / "shap_values.npy", allow_pickle=False)
    assert shap_values.shape[1] == len(json.loads((expl.path / "shap_features.json").read_text())["features"])
    assert all("lime" in e and "actual" in e for e in json.loads((expl.path / "examples.json").read_text()))
    bench = list_records(inc, kind="benchmark")[0].metrics
    assert {"latency_p50_ms", "latency_p99_ms", "throughput_rps"} <= set(bench)
    gate_rec = list_records(inc, kind="gate")[0]
    gate_rows = json.loads((gate_rec.path / "gate.json").read_text())
    assert {g["metric_key"]: g["status"] for g in gate_rows}["latency_p99_ms"] in ("met", "not met")
    plan = (inc.path / "ab-test-plan.md").read_text()
    assert "## Sample size (power analysis)" in plan and "day(s)" in plan
    # the notebooks, executed by the run: each cell ran, and what they print is what was recorded
    books = {name: nbformat.read(inc.notebooks_dir / name, as_version=4) for name in NOTEBOOKS}
    outs = {name: [o for c in nb.cells for o in c.get("outputs", [])] for name, nb in books.items()}
    assert all(outs.values()) and not [o for o in sum(outs.values(), []) if o["output_type"] == "error"]
    printed = "".join(o.get("text", "") for o in outs["03-model-analysis.ipynb"])
    comparison = json.loads((inc.experiments_dir / "comparison.json").read_text())
    metric = comparison["metric"]
    # T-005's ensemble is held to the spec's latency target at T-008's 16 concurrent clients
    assert comparison["ensemble"]["built"] and comparison["ensemble"]["latency_clients"] == 16
    assert comparison["ensemble"]["target_latency_p99_ms"] == 100
    assert comparison["ensemble"]["target_throughput_rps"] == 1000  # and to its throughput target
    assert "throughput target: 1000 req/s" in (inc.experiments_dir / "comparison.md").read_text()
    assert f"held-out {metric} = {m[metric]!r}" in printed and "Not recorded yet" not in printed
    n = len(list_records(inc))

    assert main(["run", str(cfg), "--root", str(root)]) == 0
    assert "skipped (already done): T-001, T-002, T-003, T-004, T-005, T-006, T-007, T-008, T-009" in \
        capsys.readouterr().out
    assert len(list_records(inc)) == n

    assert main(["do", inc.id, "--root", str(root), "--from", "T-006"]) == 0
    assert len(list_records(inc, kind="evaluation")) == 2
    assert (inc.models_dir / "model-v2.metadata.json").exists()
    assert not [r for r in list_records(inc, kind="trial") if r.meta.get("sweep") and r.status == "running"]

    # validate holds MLflow against the folder: a run per record and package, the same metrics
    def checks():
        capsys.readouterr()
        main(["validate", inc.id, "--root", str(root), "--json"])
        return {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}

    first = checks()
    assert first["mlflow"]["status"] == "pass", first["mlflow"]
    assert first["model saved"]["evidence"].startswith("model-v2 ")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    evaluation = list_records(inc, kind="evaluation")[-1]
    client.log_metric(evaluation.meta["mlflow_run_id"], "roc_auc", 0.123)
    bench = list_records(inc, kind="benchmark")[0]
    client.delete_run(bench.meta["mlflow_run_id"])
    details = checks()["mlflow"]["details"]
    assert f"{bench.id}: MLflow run {bench.meta['mlflow_run_id']} is missing" in details
    assert any(d.startswith(f"{evaluation.id}: roc_auc is ") and d.endswith(", 0.123 in MLflow") for d in details)


def test_run_data_file_with_string_labels_and_regression(tmp_path, root, monkeypatch):
    # the default candidates and budgets (no config): small data and 2 folds keep it near a minute.
    # No MLflow mirror: nothing here reads it (test_run_classification_end_to_end_then_rerun_skips
    # validates the mirror), and each of the ~90 records would also be written to sqlite
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    df = make_fraud(1000, positive_rate=0.1, seed=1)
    df["label"] = np.where(df.pop("is_fraud") == 1, "fraud", "legit")
    path = tmp_path / "tx.csv"
    df.to_csv(path, index=False)
    assert main(["run", "--data", str(path), "--target", "label", "--type", "classification", "--cv", "2",
                 "--root", str(root)]) == 0
    inc = Increment.open("tx", root=root)
    ev = list_records(inc, kind="evaluation")[0]
    assert 0.5 < ev.metrics["roc_auc"] <= 1.0
    assert "fraud" in json.dumps(json.loads((inc.experiments_dir / ev.meta["trial_record"] / "meta.json").read_text())["artifacts"]["classes"])

    ltv = make_ltv(2000, seed=2)
    p2 = tmp_path / "ltv.parquet"
    ltv.to_parquet(p2, index=False)
    cfg = _config(tmp_path, increment="LTV Small", problem_type="regression",
                  data={"path": str(p2), "target": "ltv"}, baselines={"enabled": True},
                  # one stage, 2 folds: what is checked is the regression metrics and baselines
                  sweep={"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 2},
                  candidates=[{"name": "ridge", "estimator": "ridge", "params": {"alpha": 1.0}},
                              {"name": "lightgbm", "estimator": "lightgbm",
                               "params": {"n_estimators": 40, "verbose": -1}}])
    assert main(["run", str(cfg), "--root", str(root)]) == 0
    inc = Increment.open("ltv-small", root=root)
    m = list_records(inc, kind="evaluation")[0].metrics
    assert {"rmse", "mae", "r2", "mape", "rmse_ci_low", "rmse_ci_high"} <= set(m)
    assert {b.meta["candidate"] for b in list_records(inc, kind="baseline-evaluation")} == {"mean", "median"}


def _bad_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = make_fraud(500, positive_rate=0.05, seed=0)
    (tmp_path / "good.csv").write_text(good.to_csv(index=False))
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    one = good.assign(is_fraud=0)
    one.to_csv(tmp_path / "one.csv", index=False)
    nan = good.assign(empty=np.nan)
    nan.to_csv(tmp_path / "nan.csv", index=False)
    mixed = good.astype({"amount": object})
    mixed.loc[5, "amount"] = "twelve"
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    (tmp_path / "wrongtype.yaml").write_text(yaml.safe_dump(
        {"increment": "x", "problem_type": "classification", "data": {"generate": "fraud", "target": "is_fraud"},
         "sweep": {"cv": "five"}}))
    spec = tmp_path / "spec.md"
    spec.write_text("# Bad\n\n**Problem type**: classification\n\n## Success Criteria\n- foo_score > 3\n")
    (tmp_path / "badspec.yaml").write_text(yaml.safe_dump(
        {"increment": "x", "spec": str(spec), "data": {"generate": "fraud", "target": "is_fraud"}}))
    data = ["--target", "is_fraud", "--type", "classification"]
    return {
        "missing file": (["--data", str(tmp_path / "nope.csv"), *data], "nope.csv"),
        "unreadable file": (["--data", str(tmp_path / "garbage.parquet"), *data], "garbage.parquet"),
        "target absent": (["--data", str(tmp_path / "good.csv"), "--target", "fraud", "--type", "classification"],
                          "fraud"),
        "one class": (["--data", str(tmp_path / "one.csv"), *data], "class"),
        "all-NaN feature": (["--data", str(tmp_path / "nan.csv"), *data], "empty"),
        "mixed dtypes": (["--data", str(tmp_path / "mixed.csv"), *data], "amount"),
        "config field type": ([str(tmp_path / "wrongtype.yaml")], "sweep.cv"),
        "unknown spec metric": ([str(tmp_path / "badspec.yaml")], "foo_score"),
    }


# run as `python -m specweave_ray` (what a user's shell sees: import-time warnings, the exit
# code); the other cases in process (main() is the same path, ~3 s less each)
IN_A_SUBPROCESS = ("mixed dtypes", "unknown spec metric")


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, root, capsys, caplog):
    for case, (args, needle) in _bad_cases(tmp_path).items():
        if case in IN_A_SUBPROCESS:
            proc = subprocess.run([sys.executable, "-m", "specweave_ray", "run", *args, "--root", str(root)],
                                  capture_output=True, text=True, timeout=120)
            code, stderr = proc.returncode, proc.stderr
        else:
            capsys.readouterr()
            caplog.clear()
            code, stderr = main(["run", *args, "--root", str(root)]), capsys.readouterr().err
            # a warning logged in process would be a second stderr line in a shell
            stderr += "".join(f"{r.levelname} {r.name}: {r.getMessage()}\n" for r in caplog.records
                              if r.levelno >= logging.WARNING)
        assert code == 2, (case, stderr)
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in stderr, (case, stderr)
        assert needle in lines[0], (case, lines[0])
    assert not root.exists() or not any(list_records(i) for i in list_increments(root))


def test_when_every_candidate_fails_the_task_stays_open_and_says_why(tmp_path, root, capsys):
    # a real estimator that fails on this data: the scaled features are negative
    cfg = _config(tmp_path, candidates=[{"name": "nb", "estimator": "sklearn.naive_bayes.MultinomialNB"}],
                  data={"generate": "fraud", "rows": 800, "target": "is_fraud", "params": {"positive_rate": 0.05}},
                  sweep={"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 2})
    assert main(["run", str(cfg), "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.search(r"T-004: every candidate trial failed \(1, recorded under experiments/\), so the task stays "
                     r"open: nb: .*Negative values in data passed to MultinomialNB", err), err
    inc = list_increments(root)[0]
    assert [t.id for t in inc.tasks() if t.done] == ["T-001", "T-002", "T-003"]
    failed = [r for r in list_records(inc, kind="trial") if r.meta.get("candidate") == "nb"]
    assert failed and all(r.status == "failed" for r in failed)
