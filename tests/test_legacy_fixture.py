"""Records and packages written before the plug-in layout (issue #10) keep loading and scoring.

``tests/fixtures/legacy/root`` was written by specweave-ray 0.1.0 at commit c416bb1
(``make_fixture.py`` beside it): two increments (classification with an XGBoost package,
regression with a LightGBM package), their records, pickled feature pipelines and the
predictions that code made on 20 sample rows (``expected.json``).
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "legacy"


@pytest.fixture
def legacy_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "legacy"
    shutil.copytree(FIXTURE / "root", root)
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    return root


def _import(path: str) -> object:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_recorded_class_path_still_imports(legacy_root: Path) -> None:
    from specweave_ray.workspace.increment import list_increments
    from specweave_ray.workspace.records import list_records

    seen = set()
    for inc in list_increments(legacy_root):
        for rec in list_records(inc):
            if rec.meta.get("kind") not in ("trial", "baseline", "evaluation", "baseline-evaluation"):
                continue
            for path in filter(None, [rec.meta.get("model"),
                                      (rec.meta.get("artifacts") or {}).get("model", {}).get("estimator")]):
                seen.add(path)
                assert isinstance(_import(path), type), path
    # the baselines and the rule classifier are this package's own classes: their paths matter most
    assert any(p.startswith("specweave_ray.candidates.") for p in seen), seen
    # the pyfunc code stored in registered MLflow models imports the Predictor from here
    assert _import("specweave_ray.predictor.Predictor").__name__ == "Predictor"


@pytest.mark.parametrize("increment_id", ["0001-fraud-detection", "0002-ltv-prediction"])
def test_legacy_package_loads_and_scores_as_before(legacy_root: Path, increment_id: str) -> None:
    from specweave_ray.deploy.predictor import Predictor
    from specweave_ray.workspace.increment import Increment

    expected = json.loads((FIXTURE / "expected.json").read_text())[increment_id]
    inc = Increment.open(increment_id, root=legacy_root)
    predictor = Predictor.load(inc, version=1, trust_unsigned=True)  # built before packages were signed
    rows = pd.DataFrame(expected["rows"])
    out = predictor.predict_proba(rows) if predictor.classes is not None else predictor.predict(rows)
    np.testing.assert_allclose(pd.DataFrame(out).to_numpy(), np.asarray(expected["output"]), rtol=1e-6)


def test_legacy_records_and_comparison_read(legacy_root: Path) -> None:
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import list_records

    inc = Increment.open("0001-fraud-detection", root=legacy_root)
    trials = [r for r in list_records(inc) if r.meta.get("kind") in ("trial", "baseline")]
    assert len(trials) >= 7 and all(r.meta["status"] == "finished" for r in trials)
    assert all("cv_mean" in r.metrics and r.meta["cache_key"].startswith("sha256:") for r in trials)
    comparison = json.loads((inc.experiments_dir / "comparison.json").read_text())
    assert comparison["best_candidate"] in {r.meta["candidate"] for r in trials}
    assert [t.id for t in inc.tasks() if t.done] == [f"T-00{i}" for i in range(1, 10)]


def test_a_value_beyond_float32_is_the_clients_error_naming_the_feature(legacy_root: Path) -> None:
    from specweave_ray.deploy.predictor import Predictor
    from specweave_ray.exceptions import DataError
    from specweave_ray.workspace.increment import Increment

    row = json.loads((FIXTURE / "expected.json").read_text())["0001-fraud-detection"]["rows"][0]
    predictor = Predictor.load(Increment.open("0001", root=legacy_root), version=1, trust_unsigned=True)
    for rows in ({**row, "amount": 1e308}, [row, {**row, "amount": 1e308}], pd.DataFrame([row, {**row, "amount": 1e308}])):
        with pytest.raises(DataError, match=r"row \d: a value is too large for the model: encoded feature '.*amount.*'"):
            predictor.predict_proba(rows)
    assert predictor.predict_proba({**row, "amount": 1e30}).shape == (1, 2)  # large, yet float32
