"""The inference benchmark against the spec, and the ``bench`` / ``drift`` / ``serve`` commands."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_serve import build_tiny_package

from specweave_ray.cli import main
from specweave_ray.deploy.bench import bench_inprocess, json_rows, run_bench
from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records

LATENCY_KEYS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build_tiny_package(tmp_path_factory.getbasetemp() / "tiny-package")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")  # records, not their MLflow mirror, are tested here
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps table cells at the default 80
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def inc(package: tuple[Path, str]) -> Increment:
    root, inc_id = package
    return Increment.open(inc_id, root=root)


@pytest.fixture(scope="module")
def features(inc: Increment) -> pd.DataFrame:
    return pd.read_parquet(inc.data_dir / "sample.parquet").drop(columns=["is_fraud"])


class _Constant:
    def predict(self, rows: Any) -> np.ndarray:
        return np.zeros(len(rows) if isinstance(rows, (list, pd.DataFrame)) else 1)


def test_bench_inprocess_reports_latency_and_batch_throughput() -> None:
    rows = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", None]})
    out = bench_inprocess(_Constant(), rows, n_single=50, batch_sizes=(1, 8), batch_budget_s=0.01)
    assert out["latency_p50_ms"] <= out["latency_p95_ms"] <= out["latency_p99_ms"]
    for key in ("batch_throughput_rows_s_1", "batch_throughput_rows_s_8",
                "batch_records_throughput_rows_s_8", "single_row_throughput_rows_s"):
        assert out[key] > 0
    with pytest.raises(ConfigError, match="n_single must be a positive integer"):
        bench_inprocess(_Constant(), rows, n_single=0)
    with pytest.raises(ConfigError, match="batch size must be a positive integer"):
        bench_inprocess(_Constant(), rows, batch_sizes=(0,))
    with pytest.raises(DataError, match="non-empty DataFrame"):
        bench_inprocess(_Constant(), rows.head(0))


def test_json_rows_are_what_a_client_sends() -> None:
    rows = pd.DataFrame({"a": [1.5, np.nan], "b": pd.array(["x", None], dtype="string"), "c": [1, 2]})
    assert json_rows(rows) == [{"a": 1.5, "b": "x", "c": 1}, {"a": None, "b": None, "c": 2}]


@pytest.mark.slow
def test_run_bench_in_process_writes_the_record_and_gate(inc: Increment) -> None:
    record_id, metrics, gate = run_bench(inc, n_single=300, batch_sizes=(1, 64))
    for key in (*LATENCY_KEYS, "throughput_rps", "batch_throughput_rows_s_1",
                "batch_throughput_rows_s_64", "inprocess_latency_p99_ms"):
        assert metrics[key] > 0, key
    assert metrics["throughput_rps"] == metrics["single_row_throughput_rows_s"]
    rec = next(r for r in list_records(inc, kind="benchmark") if r.id == record_id)
    assert rec.status == "finished" and rec.meta["model"] == "model-v1"
    assert rec.metrics["latency_p99_ms"] == pytest.approx(metrics["latency_p99_ms"])
    assert {g.target.metric for g in gate} == {"latency_p99", "throughput"}
    assert all(g.status != "not measured" for g in gate)
    assert "latency_p99 < 100 ms" in (rec.path / "gate.md").read_text()
    assert {g["metric"] for g in json.loads((rec.path / "gate.json").read_text())} == {
        "latency_p99", "throughput"}


@pytest.mark.slow
def test_run_bench_over_http_gates_the_end_to_end_numbers(inc: Increment) -> None:
    record_id, metrics, gate = run_bench(inc, http=True, n_single=100, batch_sizes=(16,),
                                         concurrency=4, total_requests=300)
    assert metrics["http_requests"] == 300 and metrics["http_errors"] == 0
    assert metrics["throughput_rps"] == metrics["http_throughput_rps"] > 0
    for key in LATENCY_KEYS:
        assert metrics[key] == metrics[f"http_{key}"] > 0
        assert metrics[f"inprocess_{key}"] > 0
    by_metric = {g.target.metric: g for g in gate}
    assert by_metric["latency_p99"].value == pytest.approx(metrics["http_latency_p99_ms"])
    assert by_metric["throughput"].value == pytest.approx(metrics["http_throughput_rps"])
    assert by_metric["throughput"].status in ("met", "not met")
    gate_md = (inc.experiments_dir / record_id / "gate.md").read_text()
    assert "over HTTP on loopback, engine local" in gate_md


@pytest.mark.slow
def test_run_bench_refuses_an_unknown_engine(inc: Increment) -> None:
    with pytest.raises(ConfigError, match="engine must be one of local, ray-serve"):
        run_bench(inc, http=True, engine="gunicorn")


@pytest.mark.slow
def test_cli_bench_prints_the_table_and_gate(inc: Increment, capsys: pytest.CaptureFixture[str]) -> None:
    before = len(list_records(inc, kind="benchmark"))
    assert main(["bench", inc.id, "--root", str(inc.root), "--single", "200"]) == 0
    out = capsys.readouterr().out
    assert "latency_p99_ms" in out and "batch_throughput_rows_s_2048" in out
    assert "latency_p99 < 100 ms" in out and "throughput >= 1000 req/s" in out
    assert len(list_records(inc, kind="benchmark")) == before + 1


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "match"), [
    (["--version", "v7"], "no model package v7"),
    (["--version", "zero"], "--version must be 'latest' or a model version"),
    (["--engine", "local"], "--engine picks the HTTP engine; add --http"),
])
def test_cli_bench_bad_input_exits_2(inc: Increment, argv: list[str], match: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", inc.id, "--root", str(inc.root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("specweave-ray bench: error: ") and match in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_drift_passes_on_the_training_sample_and_fails_on_a_shift(
        inc: Increment, features: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same = tmp_path / "same.parquet"
    features.to_parquet(same)
    assert main(["drift", inc.id, "--root", str(inc.root), "--data", str(same)]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "| amount |" in out and "predictions" in out
    shifted = features.copy()
    shifted["amount"] = shifted["amount"] * 5 + 300
    shifted["foreign"] = 1
    moved = tmp_path / "shifted.parquet"
    shifted.to_parquet(moved)
    assert main(["drift", inc.id, "--root", str(inc.root), "--data", str(moved), "--psi", "0.2"]) == 1
    out = capsys.readouterr().out
    assert "DRIFT DETECTED" in out and "amount" in out
    records = list_records(inc, kind="drift")
    assert [r.metrics["drift_passed"] for r in records[-2:]] == [1, 0]
    assert records[-1].metrics["drifted_features"] >= 1
    assert (records[-1].path / "drift-report.md").read_text().startswith("# Drift report")


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "match"), [
    (["--data", "missing.parquet"], "data file not found"),
    (["--data", "{good}", "--psi", "0"], "psi_threshold must be a number > 0"),
    (["--data", "{bad}"], "lacks 1 column(s)"),
])
def test_cli_drift_bad_input_exits_2(inc: Increment, features: pd.DataFrame, tmp_path: Path,
                                     argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad, good = tmp_path / "bad.parquet", tmp_path / "good.parquet"
    features.drop(columns=["amount"]).to_parquet(bad)
    features.to_parquet(good)
    argv = [a.replace("{bad}", str(bad)).replace("{good}", str(good)) for a in argv]
    assert main(["drift", inc.id, "--root", str(inc.root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("specweave-ray drift: error: ") and match in err


@pytest.mark.slow
def test_cli_serve_refuses_bad_options(inc: Increment, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", inc.id, "--root", str(inc.root), "--replicas", "3"]) == 2
    assert "--replicas needs --engine ray-serve" in capsys.readouterr().err
    assert main(["serve", inc.id, "--root", str(inc.root), "--compile", "--engine", "ray-serve"]) == 2
    assert "--compile needs --engine local" in capsys.readouterr().err
    assert main(["serve", inc.id, "--root", str(inc.root), "--port", "70000"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", inc.id, "--root", str(inc.root), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", inc.id, "--root", str(inc.root), "--version", "9"]) == 2
    assert "no model package v9" in capsys.readouterr().err


@pytest.mark.slow
def test_package_compiles_against_its_background_rows(inc: Increment, features: pd.DataFrame, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from specweave_ray.deploy.predictor import Predictor

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plain = Predictor.load(inc.id, root=inc.root)
    p = Predictor.load(inc.id, root=inc.root).compile()  # checked on model-v1.background.parquet
    assert p.family == "xgboost" and p.compiled.parent == tmp_path / "specweave-ray" / "compiled"
    records = features.head(50).to_dict("records")
    np.testing.assert_allclose(p.predict_proba(records[0]), plain.predict_proba(records[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.predict_proba(records), plain.predict_proba(records), rtol=1e-5, atol=1e-6)
