"""Every command, given bad arguments: exit 2, one line on stderr naming the problem, no
traceback, nothing written (table-driven; the increments root is the legacy fixture's copy)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from specweave_ray.cli import build_parser, main

FIXTURE = Path(__file__).parent / "fixtures" / "legacy" / "root"
CASES = [
    # (argv after the command name, what stderr must say)
    (["inc"], "the following arguments are required: name"),
    (["inc", "X", "--type", "clasification"], "unknown problem type 'clasification'"),
    (["status", "9"], "no increment '9'"),
    (["run"], "give a CONFIG file, or --data FILE --target COLUMN --type TYPE"),
    (["run", "missing.yaml"], "missing.yaml"),
    (["run", "--data", "missing.csv", "--target", "y", "--type", "classification"], "missing.csv"),
    (["run", "--cv", "x"], "argument --cv: invalid int value: 'x'"),
    (["run", "--time-budget", "1x"], "--time-budget '1x': give seconds or a duration like 90, 60s, 2m, 1h"),
    (["run", "--time-budget", "0s"], "--time-budget '0s': the budget must be a positive duration"),
    (["do", "9"], "no increment '9'"),
    (["do", "1", "--from", "T-099"], "T-099"),
    (["serve", "9"], "no increment '9'"),
    (["serve", "1", "--version", "v7"], "no model package v7"),
    (["serve", "1", "--port", "http"], "argument --port: invalid int value"),
    (["bench", "1", "--version", "latest!"], "--version must be 'latest' or a model version such as 3 or v3"),
    (["drift", "1"], "the following arguments are required: --data"),
    (["drift", "1", "--data", "missing.parquet", "--trust-unsigned", "--version", "1"], "missing.parquet"),
    (["validate"], "the following arguments are required: id"),
    (["validate", "0009-x"], "no increment '0009-x'"),
    (["done", "../escape"], "points outside the increments root"),
    (["sync-docs", "9"], "no increment '9'"),
    (["sync-mlflow"], "the following arguments are required: id"),
    (["sync-mlflow", "9"], "no increment '9'"),
    (["issue", "1"], "the following arguments are required: title"),
    (["issue", "1", " "], "the issue title is empty"),
    (["bogus"], "invalid choice: 'bogus'"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad-args") / "incs"
    shutil.copytree(FIXTURE, path)
    return path


@pytest.mark.parametrize(("argv", "says"), CASES, ids=[" ".join(a) or "-" for a, _ in CASES])
def test_bad_arguments_exit_2_with_one_line(argv, says, root, capsys, monkeypatch):
    monkeypatch.chdir(root.parent)
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    try:
        code = main([*argv[:1], *(["--root", str(root)] if argv[0] != "bogus" else []), *argv[1:]])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert says in err, err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert "SPECWEAVE_TRUST_UNSIGNED" not in os.environ  # --trust-unsigned holds for its command only


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("60s", 60.0), ("2m", 120.0), ("1.5h", 5400.0)])
def test_time_budget_durations(text, seconds):
    assert build_parser().parse_args(["run", "--time-budget", text]).time_budget == seconds
