"""The whole pipeline through the CLI into an S3 root (moto on loopback), then a second machine
with an empty mirror: the status, the ticked tasks, the model package and the cache all come
back from the bucket."""

from __future__ import annotations

import pandas as pd
import pytest
from s3_helpers import s3_server
from test_pipeline import _config

from specweave_ray.cli import main
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.workspace import storage
from specweave_ray.workspace.increment import list_increments
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow


def test_run_into_an_s3_root_then_use_it_from_another_machine(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SPECWEAVE_STAGING", str(tmp_path / "driver"))
    storage.unmount()
    cfg = _config(tmp_path, candidates=[{"name": "xgboost", "estimator": "xgboost",
                                         "params": {"n_estimators": 30, "max_depth": {"randint": [2, 5]}},
                                         "num_samples": 2}],
                  # small: the test is about where the records go, not the search
                  data={"generate": "fraud", "rows": 1500, "target": "is_fraud", "params": {"positive_rate": 0.05}},
                  sweep={"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 2})
    with s3_server() as s3:
        uri = s3.uri("ml/increments")
        assert main(["run", str(cfg), "--root", uri]) == 0
        out = capsys.readouterr().out
        # the root as named, never the local mirror
        assert "under s3://specweave-test/ml/increments" in out
        assert "records: s3://specweave-test/ml/increments/0001-fraud-small/experiments" in out
        assert "→ s3://specweave-test/ml/increments/0001-fraud-small/ab-test-plan.md" in out
        keys = s3.keys("ml/increments")
        inc_id = "0001-fraud-small"
        for key in ("spec.md", "tasks.md", "pipeline.yaml", "ab-test-plan.md", "data/schema.yaml",
                    "data/profile.json", "experiments/comparison.md", "models/model-v1.metadata.json"):
            assert f"{inc_id}/{key}" in keys, key
        assert any(k.startswith(f"{inc_id}/experiments/tune/") for k in keys)  # Tune's storage_path
        assert "mlflow.db" in keys

        # another machine: nothing local
        storage.unmount()
        monkeypatch.setenv("SPECWEAVE_STAGING", str(tmp_path / "laptop"))
        monkeypatch.setenv("COLUMNS", "200")  # rich would fold the table to 80 columns
        assert main(["status", "--root", uri]) == 0
        table = capsys.readouterr().out
        assert inc_id in table and "9/9" in table
        (inc,) = list_increments(uri)
        predictor = Predictor.load(inc_id, version=1, root=uri)  # sha256-checked files fetched from the bucket
        assert predictor.version == 1
        rows = pd.read_parquet(inc.data_dir / "sample.parquet")[predictor.input_columns].head(5)
        probs = predictor.predict_proba(rows.to_dict("records"))
        assert probs.shape[0] == 5
        n = len(list_records(inc_id, root=uri))
        # the rerun sees the bucket's ticks and records: nothing is redone, nothing duplicated
        assert main(["run", str(cfg), "--root", uri]) == 0
        assert "skipped (already done): T-001, T-002, T-003, T-004, T-005, T-006, T-007, T-008, T-009" in \
            capsys.readouterr().out
        assert len(list_records(inc_id, root=uri)) == n
    storage.unmount()
