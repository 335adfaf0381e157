"""MLflow unreachable (a tracking URI on a closed loopback port): the folder records are written,
ONE warning, bounded time; ``specweave-ray sync-mlflow`` replays what MLflow lacks, once."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from specweave_ray import track_experiment
from specweave_ray.cli import main
from specweave_ray.workspace import _mlflow
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


@pytest.fixture
def down_uri(monkeypatch):
    uri = f"http://user:hunter2@127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("SPECWEAVE_MLFLOW", raising=False)
    yield uri
    _mlflow._DOWN.pop(uri, None)


def test_records_are_written_with_one_warning_and_sync_replays_them_once(down_uri, tmp_path, monkeypatch,
                                                                          caplog, capsys):
    inc = Increment.create("Offline", problem_type="classification", root=tmp_path / "inc")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            with track_experiment(f"e{i}", increment=inc) as exp:
                exp.log_metric("score", i / 10)
                exp.log_metric("loss", 1.0 - i / 10, step=1)
    # bounded: one 2 s connect probe, not MLflow's retry loop per record (minutes)
    assert time.monotonic() - t0 < 30
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "mlflow" in r.getMessage().lower()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage() and "sync-mlflow" in warnings[0].getMessage()
    assert "hunter2" not in warnings[0].getMessage()  # no password in the log either
    recs = list_records(inc)
    assert [r.metrics["score"] for r in recs] == [0.0, 0.1, 0.2, 0.3, 0.4]  # on disk, all of them
    assert all(r.status == "finished" and not r.meta["mlflow_run_id"] and r.meta["mlflow_error"] for r in recs)
    assert all("hunter2" not in r.meta["mlflow_error"] for r in recs)

    # still down: sync-mlflow says so, exit 2, one line
    assert main(["sync-mlflow", inc.id, "--root", str(inc.root)]) == 2
    assert "could not be mirrored" in capsys.readouterr().err

    # the store is back (here: a sqlite store): the records missing from it are replayed, once
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    assert main(["sync-mlflow", inc.id, "--root", str(inc.root)]) == 0
    assert "5 record(s) mirrored" in capsys.readouterr().out
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp_id = client.get_experiment_by_name(inc.id).experiment_id
    runs = client.search_runs([exp_id])
    assert len(runs) == 5
    by_id = {r.meta["mlflow_run_id"]: r for r in list_records(inc)}
    for run in runs:
        rec = by_id[run.info.run_id]
        assert run.data.metrics["score"] == pytest.approx(rec.metrics["score"]) and not rec.meta.get("mlflow_error")
    assert [m.value for m in client.get_metric_history(runs[0].info.run_id, "loss")]  # the step history too
    assert main(["sync-mlflow", inc.id, "--root", str(inc.root)]) == 0
    assert "0 record(s) mirrored, 5 already in MLflow" in capsys.readouterr().out
    assert len(client.search_runs([exp_id])) == 5  # idempotent
