"""The MLflow side of a model package: a pyfunc model (models from code) registered per version.

The logged model's artifacts are the package files themselves plus a copy of the metadata; its
code loads them through :meth:`specweave_ray.deploy.predictor.Predictor.from_folder`, which checks every
hash first. Only ``MlflowClient`` calls against the increment's tracking store are used: MLflow's
fluent API would change the process-wide tracking URI (and ``$MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from specweave_ray.deploy._signing import sign
from specweave_ray.workspace import _mlflow
from specweave_ray.workspace.increment import Increment

_PYFUNC_CODE = '''"""MLflow pyfunc entry point of a specweave-ray model package (models from code)."""
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SpecweavePackage(PythonModel):
    """Loads the package files (hash-checked) into a specweave_ray Predictor."""

    def load_context(self, context):
        from specweave_ray.deploy.predictor import Predictor

        meta = Path(context.artifacts["metadata"])
        self.predictor = Predictor.from_folder(meta.parent, metadata=meta.name)

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """Probabilities for classifiers (params={"method": "predict"} for labels), else values."""
        # the DataFrame hint: MLflow infers no schema from it and leaves the rows to the Predictor
        # (which takes a list of dicts or one dict as well)
        method = (params or {}).get("method") or "auto"
        if method == "predict" or self.predictor.classes is None:
            return self.predictor.predict(model_input)
        return self.predictor.predict_proba(model_input)


mlflow.models.set_model(SpecweavePackage())
'''


def register(inc: Increment, version: int, folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Log the package as an MLflow pyfunc model in a run of the increment's experiment and
    register it. Only client calls against the increment's store: MLflow's fluent API would
    change the process-wide tracking URI (and ``$MLFLOW_TRACKING_URI``) under everyone else."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    stem = f"model-v{version}"
    client = _mlflow.client_for(inc.root)
    run_id = _mlflow.start_run(inc.root, inc.id, name=f"package-{stem}",
                               tags={"specweave.kind": "package", "specweave.package": stem})
    signature = ModelSignature(inputs=None, params=ParamSchema([ParamSpec("method", "string", "auto")]))
    try:
        _log_model(inc, run_id, stem, folder, meta, signature)
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, status="FAILED")
        raise
    _mlflow._retry(client.set_terminated, run_id, status="FINISHED")
    with contextlib.suppress(Exception):  # already registered by an earlier package
        _mlflow._retry(client.create_registered_model, inc.slug,
                       description=f"Model packages of increment {inc.id} (specweave-ray)")
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/model"
    registered = _mlflow._retry(client.create_model_version, inc.slug, source, run_id=run_id,
                                tags={"increment": inc.id, "package": stem},
                                description=f"{inc.id} {stem} ({meta.get('candidate')})")
    return {"model_name": inc.slug, "version": int(registered.version), "run_id": run_id,
            "model_uri": f"models:/{inc.slug}/{registered.version}"}


def _log_model(inc: Increment, run_id: str, stem: str, folder: Path, meta: dict[str, Any],
               signature: Any) -> None:
    import mlflow

    client = _mlflow.client_for(inc.root)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"{stem}.metadata.json"  # same name: the artifacts land side by side
        staged.write_text(json.dumps(sign({**meta, "mlflow": None}), indent=2) + "\n", encoding="utf-8")
        code = Path(tmp) / "specweave_pyfunc.py"
        code.write_text(_PYFUNC_CODE, encoding="utf-8")
        artifacts = {"metadata": str(staged), **{name: str(folder / name) for name in meta["files"]}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's advice on models-from-code and pickling
            mlflow.pyfunc.save_model(Path(tmp) / "model", python_model=str(code), artifacts=artifacts,
                                     signature=signature, pip_requirements=_requirements(meta))
        _mlflow.log_run(inc.root, run_id, params={
            "version": meta["version"], "candidate": meta.get("candidate"), "estimator": meta.get("estimator"),
            "threshold": meta.get("threshold"), "evaluation_record": meta.get("evaluation_record")},
            metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items()
                     if isinstance(v, (int, float)) and np.isfinite(v)})
        _mlflow._retry(client.log_artifacts, run_id, str(Path(tmp) / "model"), "model")


def _requirements(meta: Mapping[str, Any]) -> list[str]:
    packages = meta.get("packages") or {}
    family = {"xgboost-ubj": "xgboost", "lightgbm-txt": "lightgbm", "torch-state-dict": "torch"}
    wanted = ["specweave-ray", "mlflow", "numpy", "pandas", "pyarrow", "scikit-learn",
              family.get(meta.get("format", ""), "")]
    if meta.get("kind") == "forecaster":  # the pickled forecaster's libraries
        wanted += ["statsforecast", "mlforecast", "lightgbm", "xgboost"]
    return [f"{name}=={packages[name]}" if name in packages else name for name in wanted if name]
