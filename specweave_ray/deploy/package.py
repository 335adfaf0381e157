"""The model package: the evaluated model in its native format, its feature pipeline, metadata.

``build_package`` turns the increment's newest evaluation record (T-006) into
``models/model-vK.*``::

    model-vK.ubj | .txt | .pt | .pkl   the model as save_native wrote it (+ model-vK.json sidecar)
    model-vK.features.pkl              the fitted scikit-learn ColumnTransformer
    model-vK.background.parquet        <= 100 input rows (no target) for explainers
    model-vK.reference.json            drift baseline (specweave_ray.deploy.drift.reference_profile)
    model-vK.metadata.json             schema, threshold, classes, metrics with CIs, lineage,
                                       package versions, sha256 of every other file; written last

K counts up within the increment. The metadata file is the commit point: a version without it is
an interrupted build and is ignored. ``load_package`` checks every file's sha256 against the
metadata before anything is read, and pickles are unpickled from the very bytes that were
hashed, so a file swapped after the check is never run either.

Example:
    >>> from specweave_ray.deploy.package import build_package, load_package   # doctest: +SKIP
    >>> build_package(Increment.open("0001"))                           # doctest: +SKIP
    PosixPath('.../models/model-v1.metadata.json')
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from specweave_ray import problems
from specweave_ray._fs import atomic_write_bytes, atomic_write_json, folder_lock, read_json
from specweave_ray.candidates.serialization import save_native, sha256_of
from specweave_ray.data import read_schema
from specweave_ray.deploy._fast_features import n_outputs
from specweave_ray.deploy._forecast import forecast_metadata, with_conformal_intervals
from specweave_ray.deploy._package_mlflow import register as register_model
from specweave_ray.deploy._package_read import (
    latest_version,
    list_packages,
    load_features,
    load_model,
    load_package,
    read_verified,
    resolve_version,
)
from specweave_ray.deploy._recs import recs_metadata
from specweave_ray.deploy._signing import sign, verify
from specweave_ray.deploy.drift import reference_profile
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.evaluate import CONFORMAL_WINDOWS
from specweave_ray.exceptions import RecordError
from specweave_ray.features import feature_types
from specweave_ray.workspace import _mlflow
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import (
    environment,
    lineage,
    list_records,
    read_record,
    resolve_increment,
)

__all__ = ["STATUSES", "build_package", "latest_version", "list_packages", "load_package", "mark",
           "package_for_evaluation"]

logger = logging.getLogger(__name__)
STATUSES = ("candidate", "passed", "failed")
BACKGROUND_ROWS = 100
_VERSION_RE = re.compile(r"^model-v(\d+)\.")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the read side checks names the same way


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


# -- building ----------------------------------------------------------------------------------
def build_package(
    inc: Increment | str | int | os.PathLike[str],
    *,
    evaluation_record: str | None = None,
    register: bool = True,
    reference_data: pd.DataFrame | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Package the model an evaluation record scored as ``models/model-vK.*``.

    Args:
        inc: The increment (or its id, number or folder).
        evaluation_record: Record id of a T-006 evaluation (default: the newest finished one).
        register: Also log an MLflow pyfunc model in the increment's MLflow experiment and
            register it as a new version of the model named after the increment slug (tags
            ``increment`` and ``package``). Skipped when ``SPECWEAVE_MLFLOW=0``.
        reference_data: Input rows (target allowed, it is dropped) for the explainer background
            and the drift baseline; default ``data/sample.parquet``.
        root: Increments root when ``inc`` is an id or number.

    Returns:
        The path of ``model-vK.metadata.json``.

    Raises:
        RecordError: No evaluation record, the evaluated trial saved no model, a trial file's
            hash differs from its record, or there are no reference rows. A failed build leaves
            no ``model-vK.*`` file behind.
    """
    inc = resolve_increment(inc, root)
    ev = _evaluation(inc, evaluation_record)
    trial_id = ev.meta.get("trial_record")
    if not trial_id:
        raise RecordError(f"{ev.path}: the evaluation names no trial_record; rerun T-006")
    trial = read_record(inc.experiments_dir / trial_id)
    art = trial.meta.get("artifacts") or {}
    if "model" not in art:
        raise RecordError(f"{trial.path}: the evaluated trial saved no model (was the refit skipped?)")
    folder = inc.check_inside(inc.models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):  # claim K by writing its first file under the lock
        version = max(_versions_on_disk(folder), default=0) + 1
        stem = f"model-v{version}"
        model_info = _copy_files(trial.path, art["model"], folder, lambda f: stem + f[f.index("."):])
    try:
        features_info = None
        if "features" in art:
            features_info = _copy_files(trial.path, art["features"], folder,
                                        lambda f: f"{stem}.features{f[f.rindex('.'):]}")
        output = problems.get(inc.spec().problem_type).output
        if output == "rankings":
            meta = _assemble_ranker(inc, version=version, evaluation=ev, trial=trial, model_info=model_info)
        elif output == "forecasts":
            meta = _assemble_forecaster(inc, version=version, evaluation=ev, trial=trial, model_info=model_info)
        else:
            meta = _assemble(inc, version=version, evaluation=ev, trial=trial, model_info=model_info,
                             features_info=features_info, classes=art.get("classes"),
                             reference_data=reference_data)
    except BaseException:
        for leftover in folder.glob(f"{stem}.*"):  # no metadata yet: nothing refers to them
            leftover.unlink(missing_ok=True)
        raise
    if register and _mlflow.enabled():
        try:

            meta["mlflow"] = register_model(inc, version, folder, meta)
        except Exception as err:  # noqa: BLE001 - the package on disk stays the source of truth
            logger.warning("MLflow registration of %s/model-v%d failed: %s", inc.id, version, err)
            meta["mlflow"] = {"error": f"{type(err).__name__}: {err}"}
    path = folder / f"{stem}.metadata.json"
    atomic_write_json(path, sign(meta))  # last: the signature covers every field above
    return path


def _assemble(inc: Increment, *, version: int, evaluation: Any, trial: Any, model_info: dict[str, Any],
              features_info: dict[str, Any] | None, classes: list[Any] | None,
              reference_data: pd.DataFrame | None) -> dict[str, Any]:
    """Write the background and reference files and return the metadata (not yet written)."""

    folder, stem = inc.models_dir, f"model-v{version}"
    partial = {"model": model_info, "features": features_info, "files": {
        **model_info["files"], **(features_info or {}).get("files", {})}}
    model, features = load_model(partial, folder), load_features(partial, folder)
    target = _target(inc)
    X_ref = _reference_rows(inc, reference_data, target)
    columns = ([str(c) for c in features.feature_names_in_] if hasattr(features, "feature_names_in_")
               else [str(c) for c in X_ref.columns])
    missing = [c for c in columns if c not in X_ref.columns]
    if missing:
        raise RecordError(f"the reference rows lack the model's input column(s) {missing}")
    X_ref = X_ref[columns].reset_index(drop=True)
    problem_type = inc.spec().problem_type
    meta: dict[str, Any] = {
        "version": version, "increment": inc.id, "created": _now(), "status": "candidate",
        "problem_type": problem_type, "target": target, "candidate": evaluation.meta.get("candidate"),
        "estimator": model_info.get("estimator"), "params": dict(trial.params),
        "format": model_info.get("format"), "classes": classes,
        "threshold": evaluation.meta.get("threshold") if classes is not None and len(classes) == 2 else None,
        "input_schema": _input_schema(inc, columns, X_ref, features),
        "feature_names": None, "feature_groups": None, "fast_path": True,
        "metrics": dict(evaluation.metrics), "evaluation_record": evaluation.id, "trial_record": trial.id,
        "data_fingerprint": evaluation.meta.get("data_fingerprint") or trial.meta.get("data_fingerprint"),
        "packages": package_versions(), "model": model_info, "features": features_info,
        "lineage": _lineage_of(trial, evaluation),
    }
    predictor = Predictor(meta, folder, model=model, features=features)
    meta["feature_groups"] = predictor.feature_groups
    meta["feature_names"] = _feature_names(features, predictor.feature_groups)
    meta["explainer"] = predictor.explainer_kind
    X_ok = predictor.validate(X_ref)
    reason = predictor.check_fast_path(X_ok)
    meta["fast_path"] = reason is None
    if reason is not None:
        meta["fast_path_reason"] = reason
    n_features = n_outputs(features) if features is not None else len(columns)
    meta["n_features"] = n_features

    background = X_ok.sample(n=min(BACKGROUND_ROWS, len(X_ok)), random_state=0).sort_index()
    buf = io.BytesIO()
    background.reset_index(drop=True).to_parquet(buf, index=False)
    atomic_write_bytes(folder / f"{stem}.background.parquet", buf.getvalue())
    meta["explainer_background"] = f"{stem}.background.parquet"
    meta["reference"] = _write_reference(folder / f"{stem}.reference.json", X_ok, predictor)
    written = [meta["explainer_background"]] + ([meta["reference"]] if meta["reference"] else [])
    meta["files"] = {**partial["files"], **{name: sha256_of(folder / name) for name in written}}
    meta["mlflow"] = None
    return meta


def _assemble_ranker(inc: Increment, *, version: int, evaluation: Any, trial: Any,
                     model_info: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a recommender package: no feature pipeline, no background rows (its
    explanations are the user's own history), the list length ``k`` the evaluation used."""
    model = load_model({"model": model_info, "files": model_info["files"]}, inc.models_dir)
    return _featureless_meta(inc, version=version, evaluation=evaluation, trial=trial, model_info=model_info,
                             target=None, kind_meta=recs_metadata(model=model, k=int(evaluation.meta.get("k") or 10)))


def _featureless_meta(inc: Increment, *, version: int, evaluation: Any, trial: Any, model_info: dict[str, Any],
                      target: str | None, kind_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of a package with no feature pipeline and no background rows (recommenders,
    forecasters): the common fields, and ``kind_meta`` (what its predictor reads)."""
    return {
        "version": version, "increment": inc.id, "created": _now(), "status": "candidate",
        "problem_type": inc.spec().problem_type, "target": target, "candidate": evaluation.meta.get("candidate"),
        "estimator": model_info.get("estimator"), "params": dict(trial.params),
        "format": model_info.get("format"), "classes": None, "threshold": None,
        "feature_names": None, "feature_groups": None,
        "metrics": dict(evaluation.metrics), "evaluation_record": evaluation.id, "trial_record": trial.id,
        "data_fingerprint": evaluation.meta.get("data_fingerprint") or trial.meta.get("data_fingerprint"),
        "packages": package_versions(), "model": model_info, "features": None,
        "lineage": _lineage_of(trial, evaluation),
        **kind_meta,
        "explainer_background": None, "reference": None, "files": dict(model_info["files"]), "mlflow": None,
    }


def _assemble_forecaster(inc: Increment, *, version: int, evaluation: Any, trial: Any,
                         model_info: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a forecast package: the evaluated forecaster as the trial refitted it on
    the training part of every series (the package forecasts from the end of that history, as
    every type's package is the evaluated model; ``history=`` appends newer observations), no
    feature pipeline, no background rows; the frequency, horizon, series, the data's column names
    and the intervals it gives (:func:`~specweave_ray.deploy._forecast.forecast_metadata`)."""
    folder = inc.models_dir
    model = load_model({"model": model_info, "files": model_info["files"]}, folder)
    chosen = evaluation.params.get("intervals_method") == "conformal"
    calibrated = with_conformal_intervals(model, CONFORMAL_WINDOWS, local_windows=int(
        evaluation.metrics["conformal_windows"]) if chosen else None)
    if calibrated is not model:
        # the package holds the copy T-006 measured the coverage of: the trial's GBM with
        # conformal scores (same booster and seed), or a statistical model with statsforecast's
        # conformal intervals where T-006 chose them on backtest windows (the same fits)
        model_info = {**model_info, **save_native(calibrated, folder, name=f"model-v{version}")}
        model = calibrated
    data = _data_config(inc)
    columns = {"series": data.get("series_column"), "time": data.get("time_column"),
               "value": _target(inc) or data.get("target")}
    return _featureless_meta(inc, version=version, evaluation=evaluation, trial=trial, model_info=model_info,
                             target=columns["value"], kind_meta=forecast_metadata(model=model, columns=columns))


def _data_config(inc: Increment) -> dict[str, Any]:
    """The stored run config's ``data`` section (the user's column names), or empty."""
    import yaml

    with contextlib.suppress(Exception):
        return dict(yaml.safe_load((inc.path / "pipeline.yaml").read_text(encoding="utf-8"))["data"] or {})
    return {}


def _lineage_of(trial: Any, evaluation: Any) -> dict[str, Any]:
    """The trained model's lineage (its trial record's: the code, data, config, seeds and source
    hashes that produced it), with what the evaluation adds, and the code that packaged it."""
    merged = {**dict(evaluation.meta.get("lineage") or {}),
              **{k: v for k, v in (trial.meta.get("lineage") or {}).items() if v is not None}}
    now = lineage()
    return {**lineage(**merged), "trial_record": trial.id, "evaluation_record": evaluation.id,
            "packaged_by": {k: now[k] for k in ("package_version", "git_commit", "git_dirty")}}


def _target(inc: Increment) -> str | None:
    """The target column: the schema's column described as ``target``, else the stored config's."""
    import yaml

    with contextlib.suppress(Exception):

        for name, col in read_schema(inc.data_dir / "schema.yaml").columns.items():
            if col.description == "target":
                return str(name)
    with contextlib.suppress(Exception):
        cfg = yaml.safe_load((inc.path / "pipeline.yaml").read_text(encoding="utf-8"))
        return str(cfg["data"]["target"])
    return None


def _reference_rows(inc: Increment, data: pd.DataFrame | None, target: str | None) -> pd.DataFrame:
    if data is None:
        path = inc.data_dir / "sample.parquet"
        if not path.is_file():
            raise RecordError(f"{path} is missing (T-001 writes it); pass reference_data= to build_package")
        data = pd.read_parquet(path)
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise RecordError("reference_data must be a non-empty DataFrame of input rows")
    return data.drop(columns=[target], errors="ignore") if target else data


def _input_schema(inc: Increment, columns: list[str], X: pd.DataFrame, features: Any) -> dict[str, Any]:
    """Per input column: dtype, kind, nullable, and categories or min/max where the data schema
    (``data/schema.yaml``) or the fitted encoder knows them."""

    schema_cols: dict[str, Any] = {}
    with contextlib.suppress(Exception):

        schema_cols = dict(read_schema(inc.data_dir / "schema.yaml").columns)
    types = feature_types(X)
    out: dict[str, Any] = {}
    for c in columns:
        col = schema_cols.get(c)
        dtype = X[c].dtype
        kind = {"numeric": "number", "datetime": "datetime"}.get(types[c], "string")
        if types[c] == "categorical" and pd.api.types.is_bool_dtype(dtype):
            kind = "boolean"
        spec: dict[str, Any] = {"dtype": str(col.dtype) if col is not None else str(dtype), "kind": kind,
                                "nullable": bool(col.nullable) if col is not None else bool(X[c].isna().any())}
        for check in getattr(col, "checks", []) or []:
            stats = check.statistics or {}
            if "allowed_values" in stats:
                spec["categories"] = [str(v) for v in stats["allowed_values"]]
            for key, name in (("min_value", "min"), ("max_value", "max")):
                if key in stats and stats[key] is not None:
                    spec[name] = float(stats[key])
        if kind == "string" and "categories" not in spec:
            known = _encoder_categories(features, c)
            if known is not None:
                spec["categories"] = known
        out[c] = spec
    return out


def _encoder_categories(features: Any, column: str) -> list[str] | None:
    for _, trans, cols in getattr(features, "transformers_", []):
        last = trans.steps[-1][1] if hasattr(trans, "steps") else trans
        if isinstance(cols, list) and column in cols and hasattr(last, "categories_"):
            return [str(v) for v in last.categories_[cols.index(column)] if v != "__missing__"]
    return None


def _feature_names(features: Any, groups: list[str]) -> list[str]:
    with contextlib.suppress(Exception):
        return [str(n) for n in features.get_feature_names_out()]
    seen: dict[str, int] = {}
    names = []
    for g in groups:
        seen[g] = seen.get(g, -1) + 1
        names.append(f"{g}_{seen[g]}")
    return names


def _write_reference(path: Path, X: pd.DataFrame, predictor: Any) -> str | None:
    """The drift baseline of the reference rows and the model's predictions on them."""

    atomic_write_json(path, reference_profile(X, predictor.monitored_output(X)))
    return path.name


def _evaluation(inc: Increment, record: str | None) -> Any:
    if record is not None:
        rec = read_record(inc.experiments_dir / Path(record).name)
        if rec.kind != "evaluation":
            raise RecordError(f"{rec.path} is a {rec.kind!r} record, not an evaluation (T-006)")
        return rec
    evals = [r for r in list_records(inc, kind="evaluation") if r.status == "finished"]
    if not evals:
        raise RecordError(f"{inc.id} has no finished evaluation record; run T-006 first "
                          f"(specweave-ray do {inc.id})")
    return evals[-1]


def _copy_files(src: Path, info: Mapping[str, Any], dest: Path, rename: Any) -> dict[str, Any]:
    """Copy save_native's files under new names, checking each against its recorded hash."""
    files = info.get("files") or {}
    out = {}
    for name, recorded in files.items():
        new = rename(name)
        data = read_verified(src, name, recorded)
        atomic_write_bytes(dest / new, data)
        out[new] = recorded
    return {**{k: v for k, v in info.items() if k != "files"}, "files": out}


def _versions_on_disk(folder: Path) -> list[int]:
    return [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_RE.match(p.name))]


def mark(inc: Increment | str | int | os.PathLike[str], version: str | int, *, status: str,
         root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Set a package's status (``passed`` / ``failed`` after the gate); returns the new metadata."""
    if status not in STATUSES:
        raise RecordError(f"package status must be one of {', '.join(STATUSES)}, got {status!r}")
    inc = resolve_increment(inc, root)
    k = resolve_version(inc, version)
    with folder_lock(inc.models_dir):
        path = inc.models_dir / f"model-v{k}.metadata.json"
        meta = read_json(path)
        if meta is None:
            raise RecordError(f"{inc.id} has no model package v{k}")
        verify(meta, path)  # re-signing a changed metadata would make it look genuine
        meta.update(status=status, status_changed=_now())
        meta = sign(meta)
        atomic_write_json(path, meta)
    registered = meta.get("mlflow") or {}
    if registered.get("version") and _mlflow.enabled():
        with contextlib.suppress(Exception):  # the registry tag mirrors the file; the file decides
            _mlflow.client_for(inc.root).set_model_version_tag(
                registered["model_name"], str(registered["version"]), "status", status)
    return meta


def package_versions() -> dict[str, str]:
    """Versions of the packages a package needs at load time (records' list plus shap)."""
    from importlib.metadata import PackageNotFoundError, version

    out = dict(environment()["packages"])
    for name in ("shap", "pandera"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def package_for_evaluation(inc: Increment, *, reference_data: pd.DataFrame, seed: int = 0) -> int:
    """The version of the package built from the newest evaluation record, built now (with a
    sample of ``reference_data`` as the drift reference) when there is none yet.

    Raises:
        RecordError: the increment has no evaluation record (run T-006 first).
    """
    evaluations = list_records(inc, kind="evaluation")
    if not evaluations:
        raise RecordError(f"{inc.id} has no evaluation record; run T-006 first")
    for meta in reversed(list_packages(inc)):
        if meta.get("evaluation_record") == evaluations[-1].id:
            return int(meta["version"])
    sample = reference_data.sample(min(len(reference_data), 5000), random_state=seed)
    path = build_package(inc, evaluation_record=evaluations[-1].id, reference_data=sample)
    return int(read_json(path)["version"])
