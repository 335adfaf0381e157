"""Tests for the ``specweave-ray`` command's ``inc`` and ``status``: output and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from specweave_ray.cli import main
from specweave_ray.exceptions import IncrementError, IncrementNotFoundError
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import track_experiment


@pytest.fixture(autouse=True)
def _wide_offline(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # after `root`, which clears SPECWEAVE_MLFLOW
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps table cells at the default 80
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")  # these tests are about the CLI, not the mirror


def _one_line_error(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(f"specweave-ray {command}: error: ")
    return lines[0]


def test_inc_creates_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_root = Path(os.environ["SPECWEAVE_ROOT"])
    root = tmp_path / "incs"
    assert main(["inc", "Fraud Detection", "--type", "classification", "--root", str(root)]) == 0
    assert list(env_root.iterdir()) == []  # --root beats SPECWEAVE_ROOT
    out = capsys.readouterr().out
    assert str(root / "0001-fraud-detection") in out and "spec.md" in out
    assert (root / "0001-fraud-detection" / "tasks.md").is_file()
    assert main(["--root", str(root), "inc", "Churn", "--type", "regression"]) == 0  # --root before the command
    assert (root / "0002-churn").is_dir()


def test_inc_refuses_a_duplicate_unless_exist_ok(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inc", "Fraud Detection", "--type", "classification"]) == 0
    capsys.readouterr()
    assert main(["inc", "Fraud Detection", "--type", "classification"]) == 2
    err = _one_line_error(capsys.readouterr().err, "inc")
    assert "'0001-fraud-detection' already exists" in err and "--exist-ok" in err
    assert main(["inc", "Fraud Detection", "--type", "classification", "--exist-ok"]) == 0
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0001-fraud-detection"]


def test_inc_refuses_a_name_without_letters(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inc", "!!!", "--type", "classification"]) == 2
    assert "no letters or digits" in _one_line_error(capsys.readouterr().err, "inc")
    assert not [p for p in root.iterdir() if p.is_dir()]


def test_debug_shows_the_traceback(root: Path) -> None:
    with pytest.raises(IncrementError, match="no letters or digits"):
        main(["inc", "!!!", "--type", "classification", "--debug"])
    with pytest.raises(IncrementNotFoundError, match="no increment '9999'"):
        main(["--debug", "status", "9999"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["inc"], "the following arguments are required: name, --type"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["status", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_usage_exits_2_with_argparse_message(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="^2$"):
        main(argv)
    err = capsys.readouterr().err
    # one line (not argparse's usage block), pointing at --help
    assert err.count("\n") == 1 and message in err and "--help)" in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["inc", "Vision", "--type", "vision"], "unknown problem type 'vision'; known: classification"),
    (["run", "--data", "x.csv", "--target", "y", "--type", "forecasts of the weather"],
     "unknown problem type 'forecasts of the weather'"),
])
def test_an_unknown_or_planned_type_is_refused_before_anything_is_written(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "never"
    assert main([*argv, "--root", str(root)]) == 2
    assert message in _one_line_error(capsys.readouterr().err, argv[0])
    assert not root.exists()


def test_the_type_help_names_every_available_type() -> None:
    from specweave_ray import problems
    from specweave_ray.cli import TYPE_HELP

    named = TYPE_HELP.split(":", 1)[1].split("(")[0].replace(" or ", ", ").split(",")
    assert sorted(n.strip() for n in named) == sorted(problems.names())


def test_an_alias_names_the_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inc", "Churn", "--type", "binary", "--root", str(tmp_path)]) == 0
    assert Increment.open("0001", root=tmp_path).spec().problem_type == "classification"


def test_status_lists_increments(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    assert f"no increments under {root}" in capsys.readouterr().out
    fraud = Increment.create("Fraud Detection", problem_type="classification")
    Increment.create("House Prices", problem_type="regression")
    fraud.tick("T-001")
    for name in ("eda", "baseline"):
        with track_experiment(name, increment=fraud):
            pass
    assert main(["status"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()
            if "0001-" in line or "0002-" in line}
    fraud_row, house_row = rows["0001-fraud-detection"], rows["0002-house-prices"]
    assert "Fraud Detection" in fraud_row and "classification" in fraud_row and "1/9" in fraud_row
    assert fraud_row.split("│")[4].strip() == "2"  # experiments
    assert "House Prices" in house_row and "regression" in house_row and "0/9" in house_row


def test_status_of_one_increment_shows_its_experiments(increment: Increment,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with track_experiment("eda", increment=increment):
        pass
    with pytest.raises(ValueError, match="bad"):
        with track_experiment("broken", increment=increment, kind="trial"):
            raise ValueError("bad")
    assert main(["status", "0001"]) == 0
    out = capsys.readouterr().out
    eda = next(line for line in out.splitlines() if "exp-001-eda" in line)
    broken = next(line for line in out.splitlines() if "exp-002-broken" in line)
    assert "experiment" in eda and "finished" in eda
    assert "trial" in broken and "failed" in broken
    assert "tasks: 0/9 done" in out
    assert main(["status", "fraud-detection"]) == 0


def test_status_of_an_unknown_increment_exits_2(increment: Increment,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "9999"]) == 2
    assert "no increment '9999'" in _one_line_error(capsys.readouterr().err, "status")
    assert main(["status", "../escape"]) == 2
    assert "outside the increments root" in _one_line_error(capsys.readouterr().err, "status")


def _run(cmd: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPECWEAVE_ROOT": str(root), "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_module_and_console_script(tmp_path: Path) -> None:
    root = tmp_path / "incs"
    script = Path(sys.executable).with_name("specweave-ray")
    assert script.exists(), "the console script is installed with the package"

    done = _run([sys.executable, "-m", "specweave_ray", "inc", "Fraud Detection", "--type", "classification"], root)
    assert done.returncode == 0, done.stderr
    assert (root / "0001-fraud-detection" / "spec.md").is_file()

    again = _run([str(script), "inc", "Fraud Detection", "--type", "classification"], root)
    assert again.returncode == 2
    _one_line_error(again.stderr, "inc")

    status = _run([str(script), "status"], root)
    assert status.returncode == 0 and "0001-fraud-detection" in status.stdout and "0/9" in status.stdout

    debug = _run([sys.executable, "-m", "specweave_ray", "status", "9999", "--debug"], root)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "IncrementNotFoundError" in debug.stderr

    usage = _run([str(script), "inc"], root)
    assert usage.returncode == 2 and usage.stderr.startswith("specweave-ray inc: error: ") and \
        usage.stderr.count("\n") == 1


def test_status_through_a_pipe_prints_whole_ids_and_names(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("COLUMNS")  # a pipe: no terminal width (rich would assume 80 columns)
    title = "Fraud Detection For Card Present Transactions In Southern Europe"
    inc = Increment.create(title, problem_type="classification")
    with track_experiment("baseline", increment=inc, meta={"node": "a" * 56}):
        pass
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert inc.id in out and title in out and "…" not in out
    assert main(["status", inc.id]) == 0
    out = capsys.readouterr().out
    assert "exp-001-baseline" in out and "a" * 56 in out and "…" not in out


def test_status_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    inc = Increment.create("Fraud Detection", problem_type="classification")
    inc.tick("T-001")
    with track_experiment("eda", increment=inc):
        pass
    assert main(["status", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["root"] == str(root)
    assert listed["increments"] == [{
        "id": "0001-fraud-detection", "title": "Fraud Detection", "type": "classification",
        "experiments": 1, "best": None, "tasks_done": 1, "tasks": 9, "state": "open"}]
    assert main(["status", "0001", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert [e["record"] for e in one["experiments"]] == ["exp-001-eda"]
    assert one["experiments"][0]["status"] == "finished"
    assert [t["id"] for t in one["tasks"] if t["done"]] == ["T-001"]
    assert one["state"] == "open"
