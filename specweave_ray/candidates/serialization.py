"""Save fitted models in their library's native format; load them only after a hash check.

| family | files | format |
| --- | --- | --- |
| XGBoost (scikit-learn API) | ``name.ubj`` (``save_model``) + ``name.json`` | ``xgboost-ubj`` |
| LightGBM (scikit-learn API) | ``name.txt`` (``booster_.save_model``) + ``name.json`` | ``lightgbm-txt`` |
| torch MLP | ``name.pt`` (tensors only) + ``name.json`` | ``torch-state-dict`` |
| an ensemble (``candidates/_ensemble.py``) | ``name.ensemble.json`` + each member's own files as ``name.mI.*`` (a stack's meta-learner ``name.stack.pkl``) | ``ensemble`` |
| anything else | ``name.pkl`` | ``pickle`` |

``save_native`` returns ``{"format", "estimator", "files": {file name: sha256}}``; keep it (the
model package's metadata does) and hand it back to ``load_native``, which checks every file's
hash before reading any of them: a tampered pickle is never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from specweave_ray.candidates._common import family_of, json_safe, qualified_name
from specweave_ray.candidates._ensemble import EnsembleModel
from specweave_ray.candidates._lightgbm_native import load_lightgbm
from specweave_ray.exceptions import CandidateError

__all__ = ["FORMATS", "load_native", "save_native", "sha256_of"]

FORMATS: dict[str, str] = {
    "xgboost-ubj": ".ubj",
    "lightgbm-txt": ".txt",
    "torch-state-dict": ".pt",
    "pickle": ".pkl",
    "ensemble": ".ensemble.json",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def save_native(estimator: Any, directory: Path, *, name: str = "model") -> dict[str, Any]:
    """Write a fitted estimator to ``directory`` in its native format.

    Args:
        estimator: A fitted estimator.
        directory: Folder to write into (created when missing).
        name: Stem of the files, e.g. ``"model-v1"``.

    Returns:
        ``{"format": ..., "estimator": "module.Class", "files": {file name: sha256 hex}}``.

    Raises:
        CandidateError: Bad ``name`` or an unfitted estimator.

    Example:
        >>> import tempfile
        >>> from sklearn.linear_model import LinearRegression
        >>> model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
        >>> save_native(model, Path(tempfile.mkdtemp()))["format"]
        'pickle'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise CandidateError(f"model name must match {_NAME.pattern} (no paths), got {name!r}")
    _check_fitted(estimator)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(estimator, EnsembleModel):
        return _save_ensemble(estimator, directory, name)
    family = family_of(estimator)
    files: list[str]
    if family == "xgboost":
        fmt = "xgboost-ubj"
        classes = getattr(estimator, "classes_", None)
        meta = {
            "params": json_safe(estimator.get_params()),
            "classes": None if classes is None else np.asarray(classes).tolist(),
        }
        _write(directory / f"{name}.ubj", lambda tmp: estimator.save_model(str(tmp)))
        _write_json(directory / f"{name}.json", meta)
        files = [f"{name}.ubj", f"{name}.json"]
    elif family == "lightgbm":
        fmt = "lightgbm-txt"
        _write(directory / f"{name}.txt", lambda tmp: estimator.booster_.save_model(str(tmp)))
        _write_json(directory / f"{name}.json", _lightgbm_meta(estimator))
        files = [f"{name}.txt", f"{name}.json"]
    elif family == "torch-mlp":
        import torch

        fmt = "torch-state-dict"
        state = estimator.to_state()
        tensors = state.pop("state_dict")
        _write(directory / f"{name}.pt", lambda tmp: torch.save(tensors, tmp))
        _write_json(directory / f"{name}.json", state)
        files = [f"{name}.pt", f"{name}.json"]
    else:
        fmt = "pickle"
        payload = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        _write(directory / f"{name}.pkl", lambda tmp: Path(tmp).write_bytes(payload))
        files = [f"{name}.pkl"]
    return {
        "format": fmt,
        "estimator": qualified_name(estimator),
        "files": {file: sha256_of(directory / file) for file in files},
    }


def load_native(directory: Path, info: dict[str, Any]) -> Any:
    """Load a model written by :func:`save_native`, after verifying every file's sha256.

    Args:
        directory: Folder holding the files.
        info: The dict ``save_native`` returned.

    Returns:
        An object with ``predict`` (and ``predict_proba`` for classifiers). XGBoost, torch and
        pickled models come back as their own class; LightGBM as a predict-only
        :class:`~specweave_ray.candidates._lightgbm_native.LightGBMBoosterClassifier` /
        ``...Regressor`` holding ``booster_``.

    Raises:
        CandidateError: Malformed ``info``, a missing file, or a hash mismatch
            ("hash mismatch for model.pkl: recorded ..., found ...; refusing to load").
    """
    directory = Path(directory)
    fmt, files = _check_info(info)
    for file, recorded in files.items():
        path = directory / file
        if not path.is_file():
            raise CandidateError(f"model file {file} is missing from {directory}")
        found = sha256_of(path)
        if found != str(recorded).lower():
            raise CandidateError(
                f"hash mismatch for {file}: recorded {recorded}, found {found}; refusing to load"
            )
    model_file = directory / _one(files, FORMATS[fmt], fmt)
    if fmt == "ensemble":
        return _load_ensemble(directory, model_file, files)
    if fmt == "pickle":
        with model_file.open("rb") as handle:
            return pickle.load(handle)  # hash verified above: this is the file we wrote
    meta = json.loads((directory / _one(files, ".json", fmt)).read_text(encoding="utf-8"))
    if fmt == "xgboost-ubj":
        return _load_xgboost(model_file, meta, str(info.get("estimator", "")))
    if fmt == "lightgbm-txt":

        return load_lightgbm(model_file, meta)
    import torch

    from specweave_ray.candidates.torch_mlp import TorchMLPBase

    meta["state_dict"] = torch.load(model_file, map_location="cpu", weights_only=True)
    return TorchMLPBase.from_state(meta)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_fitted(estimator: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError) as err:
        raise CandidateError(
            f"cannot save {type(estimator).__name__}: it is not fitted ({err})"
        ) from err


def _check_info(info: Any) -> tuple[str, dict[str, str]]:
    if not isinstance(info, dict) or info.get("format") not in FORMATS:
        raise CandidateError(
            f"model info must be save_native's dict with a format in {sorted(FORMATS)}, "
            f"got {info!r}"
        )
    files = info.get("files")
    if not isinstance(files, dict) or not files:
        raise CandidateError(f"model info lists no files: {info!r}")
    for file in files:
        if not isinstance(file, str) or not _NAME.match(file):
            raise CandidateError(f"model info names a file outside its folder: {file!r}")
    return info["format"], files


def _one(files: dict[str, str], suffix: str, fmt: str) -> str:
    matches = [file for file in files if file.endswith(suffix)]
    if len(matches) != 1:
        raise CandidateError(f"a {fmt} model needs exactly one *{suffix} file, got {sorted(files)}")
    return matches[0]


def _load_xgboost(model_file: Path, meta: dict[str, Any], estimator: str) -> Any:
    import xgboost

    cls = getattr(xgboost, estimator.rpartition(".")[2], None)
    if not (isinstance(cls, type) and issubclass(cls, xgboost.XGBModel)):
        raise CandidateError(f"{estimator!r} is not an XGBoost scikit-learn estimator")
    known = cls().get_params()
    params = meta.get("params") or {}
    # device is where it trained, not where it is loaded: leave it to XGBoost's default
    model = cls(**{k: v for k, v in params.items() if k in known and k != "device"})
    model.load_model(str(model_file))
    return model


def _lightgbm_meta(estimator: Any) -> dict[str, Any]:
    classes = getattr(estimator, "classes_", None)
    names = getattr(estimator, "feature_names_in_", None)
    objective = getattr(estimator, "objective_", None)
    return {
        "params": json_safe(estimator.get_params()),
        "classes": None if classes is None else np.asarray(classes).tolist(),
        "objective": objective if isinstance(objective, str) else None,
        "feature_names_in": None if names is None else [str(n) for n in names],
    }


def _write(path: Path, writer: Callable[[str], Any]) -> None:
    """Write through a temp file in the same folder, then rename: never a half-written model."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    _write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def _save_ensemble(model: EnsembleModel, directory: Path, name: str) -> dict[str, Any]:
    """Each member in its own native format (``name.mI.*``), then an index naming them by the
    suffix after ``name``: a package renames ``name`` and the index still finds its members."""
    members, files = [], {}
    for i, member in enumerate(model.members_):
        info = save_native(member, directory, name=f"{name}.m{i}")
        members.append({"format": info["format"], "estimator": info["estimator"],
                        "suffixes": [f[len(name):] for f in info["files"]]})
        files.update(info["files"])
    stacker = None
    if model.stacker is not None:
        info = save_native(model.stacker, directory, name=f"{name}.stack")
        stacker = {"format": info["format"], "estimator": info["estimator"],
                   "suffixes": [f[len(name):] for f in info["files"]]}
        files.update(info["files"])
    index = {"members": members, "names": list(model.names or []), "weights": model.weights_.tolist(),
             "output": model.output, "stacker": stacker}
    _write_json(directory / f"{name}.ensemble.json", index)
    files[f"{name}.ensemble.json"] = sha256_of(directory / f"{name}.ensemble.json")
    return {"format": "ensemble", "estimator": qualified_name(model), "files": files}


def _load_ensemble(directory: Path, index_file: Path, files: dict[str, str]) -> EnsembleModel:
    """Every file's hash was checked by the caller; each member loads through its own format."""
    stem = index_file.name[: -len(FORMATS["ensemble"])]
    index = json.loads(index_file.read_text(encoding="utf-8"))

    def part(entry: dict[str, Any]) -> Any:
        own = {stem + suffix: files.get(stem + suffix) for suffix in entry["suffixes"]}
        if None in own.values():
            raise CandidateError(f"ensemble {index_file.name} names member files the model info does not list: "
                                 f"{sorted(k for k, v in own.items() if v is None)}")
        return load_native(directory, {"format": entry["format"], "estimator": entry["estimator"], "files": own})

    members = [part(entry) for entry in index["members"]]
    stacker = part(index["stacker"]) if index.get("stacker") else None
    return EnsembleModel.from_fitted(members, weights=index["weights"], names=index.get("names") or None,
                                     output=index["output"], stacker=stacker)
