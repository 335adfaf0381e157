"""``validate``, ``done`` and ``sync-docs`` on real finished increments (the legacy fixture's fraud
and LTV runs, copied), through the CLI. MLflow against a live store is checked in
``test_pipeline.py``, where a run writes one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from specweave_ray.cli import main
from specweave_ray.deploy._signing import sign
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records

FIXTURE = Path(__file__).parent / "fixtures" / "legacy" / "root"
FRAUD, LTV = "0001-fraud-detection", "0002-ltv-prediction"
# the fraud run met these four of its seven targets (tests/fixtures/legacy)
UNMET = ("- precision >= 0.8\n", "- recall >= 0.7\n", "- f1 >= 0.75\n")


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project folder holding ``.specweave/increments`` with the two finished increments."""
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(FIXTURE, tmp_path / ".specweave" / "increments")
    # the fixture predates signed packages: sign its metadata as a build today would
    for path in (tmp_path / ".specweave" / "increments").glob("*/models/model-v*.metadata.json"):
        path.write_text(json.dumps(sign(json.loads(path.read_text())), indent=2))
    return tmp_path


def _root(project: Path) -> str:
    return str(project / ".specweave" / "increments")


def _validate(project: Path, inc: str, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["validate", inc, "--root", _root(project), "--json"])
    return code, {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}


def _meet_only_what_was_met(project: Path) -> None:
    spec = project / ".specweave" / "increments" / FRAUD / "spec.md"
    text = spec.read_text()
    for line in UNMET:
        assert line in text
        text = text.replace(line, "")
    spec.write_text(text)


def test_validate_reports_each_check_with_its_evidence(project, capsys):
    code, checks = _validate(project, FRAUD, capsys)
    assert code == 1
    assert list(checks) == ["tasks", "experiments logged", "baselines and candidates", "model saved",
                            "metrics documented", "success criteria", "explainability", "benchmark", "mlflow"]
    assert {n for n, c in checks.items() if c["status"] == "fail"} == {"success criteria"}
    assert checks["success criteria"]["evidence"] == "4/7 targets met"
    assert [d.split(":")[0] for d in checks["success criteria"]["details"]] == [u[2:-1] for u in UNMET]
    assert "model-v1 (xgboost), signature and sha256 of 5 files verified" in checks["model saved"]["evidence"]
    assert checks["mlflow"]["status"] == "skip"  # the fixture was recorded with MLflow off
    # text through a pipe: one line a check, the failing targets indented under it
    assert main(["validate", LTV, "--root", _root(project)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  success criteria: 3/6 targets met" in out and "      RMSE < 10: not met (measured 600.2" in out


def test_validate_fails_on_open_tasks_unclosed_records_and_changed_packages(project, capsys):
    inc = Increment.open(FRAUD, root=_root(project))
    _meet_only_what_was_met(project)
    assert _validate(project, FRAUD, capsys)[0] == 0
    inc.tick("T-009", done=False)
    code, checks = _validate(project, FRAUD, capsys)
    assert code == 1 and checks["tasks"]["details"] == ["T-009 open: A/B test plan"]
    tasks = inc.tasks_path.read_text().replace("T-009: A/B test plan", "T-009: A/B test plan (skipped: no live traffic)")
    inc.tasks_path.write_text(tasks)
    code, checks = _validate(project, FRAUD, capsys)
    assert code == 0 and checks["tasks"]["details"] == ["T-009 skipped: no live traffic"]

    trial = inc.experiments_dir / "exp-010-xgboost-trial-001"
    meta = json.loads((trial / "meta.json").read_text())
    (trial / "meta.json").write_text(json.dumps({**meta, "status": "running"}))
    (inc.experiments_dir / "exp-009-logistic-trial-001" / "metrics.json").unlink()
    with (inc.models_dir / "model-v1.reference.json").open("a") as f:
        f.write(" ")
    meta_path = inc.models_dir / "model-v1.metadata.json"
    signed = meta_path.read_text()
    meta_path.write_text(json.dumps({**json.loads(signed), "threshold": 0.0}))
    assert "signature mismatch" in _validate(project, FRAUD, capsys)[1]["model saved"]["evidence"]
    meta_path.write_text(signed)
    code, checks = _validate(project, FRAUD, capsys)
    assert code == 1
    assert checks["experiments logged"]["details"] == [
        "exp-009-logistic-trial-001: missing metrics.json",
        "exp-010-xgboost-trial-001: status 'running' (a record still running was never closed)"]
    assert checks["model saved"]["status"] == "fail" and "hash mismatch for model-v1.reference.json" in \
        checks["model saved"]["evidence"]


def test_a_spec_target_added_after_the_run_is_not_measured(project, capsys):
    spec = project / ".specweave" / "increments" / LTV / "spec.md"
    lift = "- lift over best baseline >= 20%\n"
    spec.write_text(spec.read_text().replace(lift, lift + "- MAPE < 10%\n- Explainability: Must explain the top-9 drivers\n"))
    code, checks = _validate(project, LTV, capsys)
    assert code == 1
    assert checks["metrics documented"]["details"] == ["not measured: MAPE < 10%"]
    assert "MAPE < 10%: not measured" in checks["success criteria"]["details"][-1]
    assert checks["explainability"]["status"] == "fail"
    assert "each explained answer must cover its top 9" in checks["explainability"]["details"][0]


def test_done_refuses_a_failing_increment_and_writes_nothing(project, capsys):
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    assert main(["done", FRAUD, "--root", _root(project)]) == 1
    err = capsys.readouterr().err
    assert "done refused: 1 check(s) fail (success criteria)" in err and "--force" in err
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_done_writes_the_summary_marks_done_and_syncs_docs(project, capsys):
    _meet_only_what_was_met(project)
    assert main(["done", FRAUD, "--root", _root(project)]) == 0
    inc = Increment.open(FRAUD, root=_root(project))
    summary = (inc.path / "COMPLETION-SUMMARY.md").read_text()
    comparison = json.loads((inc.experiments_dir / "comparison.json").read_text())
    runs = [r for r in list_records(inc) if r.kind in ("baseline", "trial")]
    assert summary.startswith("## Fraud Detection - COMPLETE\n")
    assert f"### Experiments Run: {len(runs)}\n" in summary
    assert all(f". {r.id} (" in summary for r in runs)
    best = comparison["best"]
    best_row = next(r for r in comparison["rows"] if r["record"] == best)
    assert f"{best} (xgboost): pr_auc={best_row['cv_mean']:.4f} ✅ BEST" in summary
    assert "- Algorithm: xgboost (`xgboost.sklearn.XGBClassifier`)" in summary
    assert "- ✅ Inference latency: 16.2 ms" in summary and "(target: latency_p99 < 100 ms)" in summary
    assert "- ✅ A/B test plan documented (`ab-test-plan.md`)" in summary
    size = sum((inc.models_dir / n).stat().st_size for n in json.loads(
        (inc.models_dir / "model-v1.metadata.json").read_text())["files"])
    assert f"- Model size: {size / 1024:.1f} KB" in summary
    done = json.loads((inc.path / "completion.json").read_text())
    assert done["forced"] is False and done["package"] == "model-v1"
    capsys.readouterr()
    assert main(["status", "--root", _root(project), "--json"]) == 0
    assert {r["id"]: r["state"] for r in json.loads(capsys.readouterr().out)["increments"]}[FRAUD] == "done"
    assert (project / "docs" / "runbooks" / f"{FRAUD}.md").is_file()
    # and the notebooks, executed: the model analysis prints the recorded best candidate
    analysis = json.loads((inc.notebooks_dir / "03-model-analysis.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in analysis["cells"] if c["cell_type"] == "code"
                      for o in c.get("outputs", []))
    assert best in printed


def test_done_force_is_recorded(project, capsys):
    assert main(["done", LTV, "--root", _root(project), "--force"]) == 0
    inc = Increment.open(LTV, root=_root(project))
    done = json.loads((inc.path / "completion.json").read_text())
    assert done["forced"] is True and done["failed_checks"] == ["success criteria"]
    summary = (inc.path / "COMPLETION-SUMMARY.md").read_text()
    assert "- COMPLETE (forced: validation failed)" in summary
    assert "- ❌ success criteria: 3/6 targets met\n  - RMSE < 10: not met" in summary
    capsys.readouterr()
    assert main(["status", "--root", _root(project), "--json"]) == 0
    states = {r["id"]: r["state"] for r in json.loads(capsys.readouterr().out)["increments"]}
    assert states == {FRAUD: "open", LTV: "done (forced)"}


def test_sync_docs_writes_relative_docs_and_a_rerun_replaces(project, capsys):
    for inc in (LTV, FRAUD, LTV):
        assert main(["sync-docs", inc, "--root", _root(project)]) == 0
    docs = project / "docs"
    arch = (docs / "architecture" / "ml-models.md").read_text()
    assert arch.count("<!-- specweave:model ") == 2
    assert arch.index(f"specweave:model {FRAUD}") < arch.index(f"specweave:model {LTV}")
    assert "- Outputs: a predicted value of `" in arch and "- Outputs: class probabilities over [0, 1]" in arch
    assert sorted(p.name for p in (docs / "adr").iterdir()) == [
        "0001-fraud-detection-algorithm-choice.md", "0002-ltv-prediction-algorithm-choice.md"]
    adr = (docs / "adr" / "0001-fraud-detection-algorithm-choice.md").read_text()
    assert "## Options considered" in adr and "| xgboost (chosen) | candidate |" in adr
    assert "- Status: Proposed (the model fails its gate)" in adr
    runbook = (docs / "runbooks" / f"{FRAUD}.md").read_text()
    assert (f"specweave-ray do {FRAUD} --root .specweave/increments --from T-001 --config "
            f".specweave/increments/{FRAUD}/pipeline.yaml") in runbook
    assert "| precision | < 0.8 | spec target `precision >= 0.8` |" in runbook
    for text in (arch, adr, runbook):
        assert str(project) not in text  # relative paths only: the docs stay true in a clone
    # the record link in ml-models.md resolves from the docs folder
    link = arch.split("- Records: [")[1].split("](")[1].split(")")[0]
    assert (docs / "architecture" / link / "spec.md").is_file()


@pytest.mark.parametrize("command", ["validate", "done", "sync-docs"])
def test_bad_input_is_one_line_and_exit_2(project, capsys, command):
    root = _root(project)
    assert main([command, "9", "--root", root]) == 2
    assert capsys.readouterr().err.strip().endswith(f"no increment '9' under {root} (known: {FRAUD}, {LTV})")
    Increment.create("Empty", problem_type="regression", root=root)
    assert main([command, "3", "--root", root]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "0003-empty has no experiment records" in err
    bad = project / ".specweave" / "increments" / FRAUD / "experiments" / "exp-005-majority-trial-001" / "meta.json"
    bad.write_text("{not json")
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    assert main([command, FRAUD, "--root", root]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "exp-005-majority-trial-001: unreadable JSON" in err
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def _fake_gh(folder: Path, *, authenticated: bool) -> Path:
    """A stand-in for the GitHub CLI (it needs an account and the network, neither of which a
    test has): records its arguments, answers ``auth status`` and ``issue create`` as gh does."""
    folder.mkdir()
    log = folder / "calls.txt"
    script = folder / "gh"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {log}
if [ "$1" = auth ]; then exit {0 if authenticated else 1}; fi
if [ "$1" = issue ]; then echo "https://github.com/acme/models/issues/7"; fi
""")
    script.chmod(0o755)
    return log


def test_issue_carries_metrics_drift_and_the_command_and_gh_files_it(project, capsys, monkeypatch, tmp_path):
    from specweave_ray.data.datasets import make_fraud

    root = _root(project)
    monkeypatch.chdir(project)
    new = make_fraud(600, seed=5).drop(columns="is_fraud")
    new["amount"] *= 4  # spending shifted: amount drifts
    new.to_parquet(project / "new.parquet")
    assert main(["drift", FRAUD, "--root", root, "--data", "new.parquet", "--version", "1"]) == 1
    log = _fake_gh(tmp_path / "bin", authenticated=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    capsys.readouterr()
    assert main(["issue", FRAUD, "Retrain with new data", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "filed: https://github.com/acme/models/issues/7" in out
    path = next((project / ".specweave" / "increments" / FRAUD / "issues").iterdir())
    text = path.read_text()
    assert text.startswith("# Retrain with new data\n\nFiled: https://github.com/acme/models/issues/7\n")
    assert "| roc_auc >= 0.85 | 0.8838 | [0.7491, 1] | met |" in text
    assert "**drift detected**" in text and "| amount |" in text
    assert (f"specweave-ray do {FRAUD} --root .specweave/increments --from T-001 --config "
            f".specweave/increments/{FRAUD}/pipeline.yaml") in text
    calls = log.read_text().splitlines()
    assert calls[0] == "auth status"
    assert calls[1].startswith(f"issue create --title [{FRAUD}] Retrain with new data --body-file ")
    # not authenticated: written, not filed, and said why
    (tmp_path / "bin" / "gh").unlink()
    shutil.rmtree(tmp_path / "bin")
    _fake_gh(tmp_path / "bin", authenticated=False)
    assert main(["issue", FRAUD, "Retrain with new data", "--root", root]) == 0
    assert "not filed: gh is not authenticated (gh auth login)" in capsys.readouterr().out
    assert main(["issue", FRAUD, "  ", "--root", root]) == 2
    assert "the issue title is empty" in capsys.readouterr().err
