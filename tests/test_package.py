"""Model packages built from a real pipeline run: files, hashes, versions, tampering, MLflow."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from specweave_ray.deploy.package import (
    build_package,
    latest_version,
    list_packages,
    load_package,
    mark,
)
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.exceptions import RecordError, SpecweaveError
from specweave_ray.spec.config import parse_config
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Increment:
    """One small fraud pipeline run (2000 rows, XGBoost and logistic, 2-fold CV) and package v1."""
    from specweave_ray.pipeline._tasks import TASK_ORDER, ensure_increment, run_pipeline

    root = tmp_path_factory.mktemp("package") / "incs"
    cfg = {"increment": "Fraud Package", "problem_type": "classification", "seed": 3,
           "data": {"generate": "fraud", "rows": 2000, "target": "is_fraud", "params": {"positive_rate": 0.04}},
           "sweep": {"cv": 2, "stages": 1, "tuning_samples": 2, "num_cpus": 2},
           "candidates": [
               {"name": "xgboost", "estimator": "xgboost", "num_samples": 2,
                "params": {"n_estimators": 30, "max_depth": {"randint": [2, 5]}}},
               {"name": "logistic", "estimator": "logistic", "params": {"max_iter": 500}}]}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SPECWEAVE_ROOT", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SPECWEAVE_MLFLOW", raising=False)
        config = parse_config(cfg, source="test")
        inc = ensure_increment(config, root=root)
        for task in TASK_ORDER[TASK_ORDER.index("T-006") + 1:]:
            inc.tick(task)  # later tasks package and benchmark on their own; here we build by hand
        run_pipeline(config, increment=inc)
        build_package(inc)  # v1, registered in MLflow
    return inc


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SPECWEAVE_MLFLOW", raising=False)


def _meta(inc: Increment, k: int) -> dict:
    return json.loads((inc.models_dir / f"model-v{k}.metadata.json").read_text())


def test_package_files_metadata_and_hashes(run: Increment) -> None:
    meta = _meta(run, 1)
    ev = list_records(run, kind="evaluation")[-1]
    assert meta["version"] == 1 and meta["increment"] == run.id and meta["status"] == "candidate"
    assert meta["problem_type"] == "classification" and meta["target"] == "is_fraud"
    assert meta["evaluation_record"] == ev.id and meta["trial_record"] == ev.meta["trial_record"]
    assert meta["candidate"] == ev.meta["candidate"] and meta["threshold"] == ev.meta["threshold"]
    assert meta["classes"] == [0, 1]
    assert meta["data_fingerprint"] == ev.meta["data_fingerprint"]
    assert meta["metrics"]["roc_auc_ci_low"] <= meta["metrics"]["roc_auc"] <= meta["metrics"]["roc_auc_ci_high"]
    assert {"numpy", "scikit-learn", "mlflow"} <= set(meta["packages"])
    # the chosen model's format: an ensemble (search/_ensemble.py) when it beat the best single one
    assert meta["format"] in ("xgboost-ubj", "pickle", "ensemble") and meta["params"]
    # the input schema is the data schema without the target
    schema = meta["input_schema"]
    assert "is_fraud" not in schema and "amount" in schema
    assert schema["amount"]["kind"] == "number" and schema["amount"]["dtype"] == "float64"
    assert schema["merchant_category"]["kind"] == "string" and "grocery" in schema["merchant_category"]["categories"]
    assert {"nullable", "min", "max"} <= set(schema["hour"])
    assert len(meta["feature_names"]) == meta["n_features"] == len(meta["feature_groups"])
    assert meta["fast_path"] is True
    # every file of v1 is listed with its sha256, and nothing else is
    on_disk = {p.name for p in run.models_dir.glob("model-v1.*")} - {"model-v1.metadata.json"}
    assert set(meta["files"]) == on_disk
    for name, digest in meta["files"].items():
        assert hashlib.sha256((run.models_dir / name).read_bytes()).hexdigest() == digest
    assert "model-v1.features.pkl" in meta["files"]
    background = pd.read_parquet(run.models_dir / meta["explainer_background"])
    assert 0 < len(background) <= 100 and "is_fraud" not in background.columns
    assert list(background.columns) == list(schema)
    if meta["reference"] is not None:  # the drift stage wrote a monitoring baseline
        ref = json.loads((run.models_dir / meta["reference"]).read_text())
        assert "amount" in ref["features"] and ref["prediction"] is not None


def test_versions_count_up_and_latest_follows_the_gate(run: Increment) -> None:
    path = build_package(run, register=False)
    assert path.name == "model-v2.metadata.json"
    assert [m["version"] for m in list_packages(run)] == [1, 2]
    assert _meta(run, 2)["mlflow"] is None
    assert latest_version(run) == 2
    assert load_package(run)[0]["version"] == 2  # nothing passed yet: the newest
    mark(run, 2, status="failed")
    assert latest_version(run) == 1 and load_package(run)[0]["version"] == 1
    mark(run, 1, status="passed")
    assert load_package(run, "latest")[0]["version"] == 1
    assert load_package(run, "v2")[0]["status"] == "failed"
    mark(run, 2, status="passed")
    assert load_package(run)[0]["version"] == 2 and Predictor.load(run).version == 2
    with pytest.raises(RecordError, match="status"):
        mark(run, 1, status="shipped")
    with pytest.raises(RecordError, match="no model package v9"):
        load_package(run, 9)


def _fresh(run: Increment) -> tuple[dict, int]:
    path = build_package(run, register=False)
    meta = json.loads(path.read_text())
    return meta, meta["version"]


def test_tampered_model_file_is_refused(run: Increment) -> None:
    meta, k = _fresh(run)
    model_file = next(f for f in meta["model"]["files"] if not f.endswith(".json"))
    target = run.models_dir / model_file
    target.write_bytes(target.read_bytes() + b"\x00")
    with pytest.raises(RecordError, match=f"hash mismatch for {model_file}"):
        load_package(run, k)
    with pytest.raises(SpecweaveError, match=model_file):
        Predictor.load(run, version=k)
    with pytest.raises(RecordError, match=model_file):
        Predictor.from_folder(run.models_dir, metadata=f"model-v{k}.metadata.json")


class _Marker:
    """Unpickling this creates a file: the proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_tampered_features_pickle_is_never_unpickled(run: Increment, tmp_path: Path) -> None:
    payload = pickle.dumps(_Marker(tmp_path / "proof"))
    pickle.loads(payload)
    assert (tmp_path / "proof").exists()  # the payload does run code when unpickled

    meta, k = _fresh(run)
    marker = tmp_path / "unpickled"
    (run.models_dir / f"model-v{k}.features.pkl").write_bytes(pickle.dumps(_Marker(marker)))
    with pytest.raises(RecordError, match=f"model-v{k}.features.pkl"):
        load_package(run, k)
    with pytest.raises(RecordError, match=f"model-v{k}.features.pkl"):
        Predictor.load(run, version=k)
    assert not marker.exists()


def test_a_pickle_swapped_with_its_hash_rewritten_is_never_unpickled(run: Increment, tmp_path: Path) -> None:
    """The attack the hashes alone let through: replace the pickle and write its sha256 into the
    metadata. The signature over the metadata no longer matches, so nothing is read."""
    meta, k = _fresh(run)
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Marker(marker))
    name = f"model-v{k}.features.pkl"
    (run.models_dir / name).write_bytes(evil)
    meta["files"][name] = meta["features"]["files"][name] = hashlib.sha256(evil).hexdigest()
    (run.models_dir / f"model-v{k}.metadata.json").write_text(json.dumps(meta))
    for load in (lambda: load_package(run, k), lambda: Predictor.load(run, version=k),
                 lambda: Predictor.from_folder(run.models_dir, metadata=f"model-v{k}.metadata.json")):
        with pytest.raises(RecordError, match=r"signature mismatch, the metadata changed after the package was built"):
            load()
    assert not marker.exists()
    with pytest.raises(RecordError, match="signature mismatch"):
        mark(run, k, status="passed")  # nor is a changed metadata re-signed as genuine


def test_metadata_edited_alone_or_unsigned_or_another_key_is_refused_unless_trusted(
        run: Increment, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    meta, k = _fresh(run)
    path = run.models_dir / f"model-v{k}.metadata.json"
    assert Predictor.load(run, version=k).threshold == meta["threshold"]
    path.write_text(json.dumps({**meta, "threshold": 0.0}))  # every row flagged, silently
    with pytest.raises(RecordError, match=rf"model-v{k}.metadata.json: signature mismatch"):
        Predictor.load(run, version=k)
    with caplog.at_level("WARNING", logger="specweave_ray.deploy._signing"):
        assert Predictor.load(run, version=k, trust_unsigned=True).threshold == 0.0
    assert "signature mismatch" in caplog.text and "trusted explicitly" in caplog.text
    path.write_text(json.dumps({key: v for key, v in meta.items() if key != "signature"}))
    with pytest.raises(RecordError, match=r"is not signed .*refusing to load it \(pass --trust-unsigned"):
        load_package(run, k)
    monkeypatch.setenv("SPECWEAVE_TRUST_UNSIGNED", "1")
    assert load_package(run, k)[0]["version"] == k
    monkeypatch.delenv("SPECWEAVE_TRUST_UNSIGNED")
    path.write_text(json.dumps(meta))
    monkeypatch.setenv("SPECWEAVE_SIGNING_KEY", "another machine's key, 32 characters or more")
    with pytest.raises(RecordError, match=r"is signed with another key \(key id [0-9a-f]{16}, this machine's is"):
        load_package(run, k)
    monkeypatch.setenv("SPECWEAVE_SIGNING_KEY", "short")
    with pytest.raises(SpecweaveError, match="a signing key needs at least 32"):
        load_package(run, k)


def test_the_first_package_creates_a_private_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from specweave_ray.deploy._signing import sign, verify

    monkeypatch.delenv("SPECWEAVE_SIGNING_KEY", raising=False)
    monkeypatch.setenv("SPECWEAVE_SIGNING_KEY_FILE", str(tmp_path / "keys" / "signing.key"))
    signed = sign({"version": 1, "files": {"a": "00"}})
    key = tmp_path / "keys" / "signing.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text()) == 64
    verify(signed, "m")
    assert sign({"version": 1, "files": {"a": "00"}}) == signed  # the same key, reused
    with pytest.raises(RecordError, match="signature mismatch"):
        verify({**signed, "version": 2}, "m")


def test_registered_pyfunc_predicts_like_the_predictor(run: Increment, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from specweave_ray.workspace import _mlflow

    meta = _meta(run, 1)
    reg = meta["mlflow"]
    assert reg["model_name"] == run.slug and reg["version"] >= 1
    uri = _mlflow.tracking_uri(run.root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    version = client.get_model_version(run.slug, str(reg["version"]))
    assert version.tags["increment"] == run.id and version.tags["package"] == "model-v1"
    assert version.run_id == reg["run_id"]
    experiment = client.get_experiment(client.get_run(reg["run_id"]).info.experiment_id)
    assert experiment.name == run.id

    rows = pd.read_parquet(run.data_dir / "sample.parquet").drop(columns=["is_fraud"]).head(60)
    predictor = Predictor.load(run, version=1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{run.slug}/{reg['version']}")
        proba = np.asarray(model.predict(rows))
        labels = np.asarray(model.predict(rows, params={"method": "predict"}))
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(proba, predictor.predict_proba(rows), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(labels, predictor.predict(rows))


def test_build_errors_name_the_problem(run: Increment) -> None:
    with pytest.raises(RecordError, match="not an evaluation"):
        build_package(run, evaluation_record=list_records(run, kind="data")[0].id, register=False)
    empty = Increment.create("Empty", problem_type="classification", root=run.root)
    with pytest.raises(RecordError, match="no finished evaluation"):
        build_package(empty, register=False)
    assert list_packages(empty) == []
    with pytest.raises(RecordError, match="no model package"):
        latest_version(empty)
