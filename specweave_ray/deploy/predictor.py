"""``Predictor``: a model package loaded in process, for predictions, probabilities and explanations.

Rows may be a DataFrame, a list of dicts or one dict; they are checked against the package's input
schema first (a missing, unexpected or mistyped field is a :class:`DataError` naming every one).
Dict rows take a fast path: a plain-NumPy copy of the fitted feature pipeline feeds the native
booster directly (XGBoost ``inplace_predict``, LightGBM ``Booster.predict``, the torch network),
because scikit-learn's ``ColumnTransformer`` costs about a millisecond on one row. The fast path is
checked against the scikit-learn path on the reference rows when the package is built, and is off
(``metadata["fast_path"] is False``) where they differ or the pipeline holds an unknown step.

Example:
    >>> from specweave_ray.deploy.predictor import Predictor                     # doctest: +SKIP
    >>> p = Predictor.load("0001-fraud-detection")                        # doctest: +SKIP
    >>> p.predict_proba({"amount": 912.5, "merchant_category": "gaming", ...})   # doctest: +SKIP
    array([[0.93, 0.07]])
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import read_json
from specweave_ray.candidates._common import family_of
from specweave_ray.deploy._compiled import (
    LGB_MIN_ROWS,
    ONE_THREAD_ROWS,
    XGB_MAX_ROWS,
    compile_trees,
)
from specweave_ray.deploy._fast_features import (
    FastEncoder,
    compile_encoder,
    feature_groups,
    n_outputs,
)
from specweave_ray.deploy._forecast import ForecastPredictor
from specweave_ray.deploy._package_read import (
    load_features,
    load_model,
    load_package,
    read_background,
    verify_files,
)
from specweave_ray.deploy._recs import RecommenderPredictor
from specweave_ray.deploy._rows import RowValidator
from specweave_ray.deploy._signing import verify
from specweave_ray.deploy.explain import explain_rows
from specweave_ray.exceptions import CandidateError, DataError, FastPathUnsupported, RecordError
from specweave_ray.workspace.records import resolve_increment

__all__ = ["Predictor"]

logger = logging.getLogger(__name__)
_METADATA_RE = re.compile(r"^model-v(\d+)\.metadata\.json$")
Rows = pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SMALL_FRAME = 32  # DataFrames up to this many rows are scored through the dict-row path
_ROW_SOFTMAX_ROWS = 64  # torch's softmax along rows up to this many rows, along columns above


class Predictor:
    """A verified model package, ready to predict.

    Build it with :meth:`load` (an increment's package) or :meth:`from_folder`.

    Attributes:
        metadata: The package's metadata (``model-vK.metadata.json``).
        version: ``K``.
        classes: Labels in the order of the probability columns, or None for a regressor.
        threshold: The binary decision threshold on ``predict_proba(rows)[:, 1]`` (predict the
            second class when ``>=``), or None.
        model: The loaded estimator; ``raw_model`` the object that scores: an XGBoost or
            LightGBM ``Booster``, the torch network, or the scikit-learn estimator.
        features: The fitted ``ColumnTransformer`` (None when the model reads raw columns).
        feature_groups: For each encoded feature, the input column it comes from.
    """

    def __init__(self, metadata: Mapping[str, Any], folder: str | os.PathLike[str], *, model: Any,
                 features: Any) -> None:
        self.metadata = dict(metadata)
        self.folder = Path(folder)
        self.version = int(self.metadata["version"])
        self.problem_type = self.metadata.get("problem_type")
        classes = self.metadata.get("classes")
        self.classes = None if classes is None else np.asarray(classes, dtype=object if any(
            isinstance(c, str) for c in classes) else None)
        self.threshold = self.metadata.get("threshold")
        self.model = model
        self.features = features
        self.family = _family(model)
        self.raw_model, self._score = _scorer(model, self.family, self.classes)
        self._validator = RowValidator(self.metadata["input_schema"], target=self.metadata.get("target"))
        self.input_columns = list(self._validator.columns)
        width = n_outputs(features) if features is not None else len(self.input_columns)
        self.feature_groups = feature_groups(features, width, self.input_columns)
        self._encoder: FastEncoder | None = None
        self._fast_reason: str | None = (self.metadata.get("fast_path_reason") or "off in the metadata"
                                         if features is not None else "no feature pipeline to copy")
        if self.metadata.get("fast_path", True) and features is not None:
            try:
                self._encoder = compile_encoder(features)
                self._fast_reason = None
            except FastPathUnsupported as err:
                self._fast_reason = str(err)
                logger.info("model-v%d: dict rows take the scikit-learn path (%s)", self.version, err)
        # XGBoost reads every feature as a float32, so a large frame is encoded straight into
        # float32 for it: the same numbers, half the matrix to write and no conversion inside
        # XGBoost (LightGBM compares float64 features, the torch path rounds after its own copy)
        self._frame_dtype = np.float32 if self.family == "xgboost" else None
        self._explainer: Any = None
        self._lock = threading.Lock()
        self.compiled: Path | None = None  # the compiled library scoring some batch sizes (compile)

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, increment: Any, *, version: str | int = "latest",
             root: str | os.PathLike[str] | None = None, trust_unsigned: bool = False) -> Predictor:
        """Load an increment's package after checking every file's sha256.

        Args:
            increment: An :class:`~specweave_ray.workspace.increment.Increment`, id, number or folder.
            version: ``"latest"`` (newest passed package, else the newest not failed), ``K``, ``"vK"``.
            root: Increments root when ``increment`` is an id or number.

        Raises:
            RecordError: No such package, or a file is missing or changed (named in the message).
        """

        meta, path = load_package(resolve_increment(increment, root), version, trust_unsigned=trust_unsigned)
        return cls._open(meta, path.parent)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], *, metadata: str | None = None,
                    trust_unsigned: bool = False) -> Predictor:
        """Load a package from a folder of its files (an MLflow model's artifacts, a copy).

        Args:
            folder: The folder.
            metadata: The metadata file name; default the highest ``model-vK.metadata.json``.
        """

        folder = Path(folder)
        if metadata is None:
            found = sorted((int(m.group(1)), p.name) for p in folder.iterdir() if (m := _METADATA_RE.match(p.name)))
            if not found:
                raise RecordError(f"{folder} holds no model-vK.metadata.json")
            metadata = found[-1][1]
        meta = read_json(folder / Path(metadata).name)
        if meta is None:
            raise RecordError(f"{folder / metadata} does not exist")
        verify(meta, folder / Path(metadata).name, trust_unsigned=trust_unsigned)
        verify_files(meta, folder)
        return cls._open(meta, folder)

    @classmethod
    def _open(cls, meta: Mapping[str, Any], folder: Path) -> Predictor:
        if meta.get("kind") == RecommenderPredictor.kind:  # answers recommend(user_id, k)
            return RecommenderPredictor(meta, folder, model=load_model(meta, folder))
        if meta.get("kind") == ForecastPredictor.kind:  # answers forecast(horizon, history, series)
            return ForecastPredictor(meta, folder, model=load_model(meta, folder))
        return cls(meta, folder, model=load_model(meta, folder), features=load_features(meta, folder))

    # -- predictions ---------------------------------------------------------------------------
    def predict(self, rows: Rows) -> np.ndarray:
        """Labels (classifiers; the binary threshold applied) or predicted values (regressors)."""
        scores = self._score(self._encode_fast(rows))
        return scores if self.classes is None else self.labels(scores)

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """Labels from :meth:`predict_proba`'s output: the binary threshold on the second class's
        probability, else the most probable class. Callers holding probabilities (the HTTP
        routes) use it instead of scoring the rows twice."""
        if len(self.classes) == 2 and self.threshold is not None:
            codes = (proba[:, 1] >= self.threshold).astype(np.intp)
        else:
            codes = np.argmax(proba, axis=1)
        return self.classes[codes]

    def monitored_output(self, rows: Rows) -> np.ndarray:
        """What drift monitoring compares: the positive-class probability (binary), the label as
        text (multi-class) or the value (regression). The package's reference uses this, and so
        must every later comparison."""
        if self.classes is None:
            return self.predict(rows)
        if len(self.classes) == 2:
            return self.predict_proba(rows)[:, 1]
        return np.asarray([str(v) for v in self.predict(rows)], dtype=object)

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Class probabilities, one column per entry of :attr:`classes`.

        Raises:
            CandidateError: The model is a regressor.
        """
        if self.classes is None:
            raise CandidateError(f"model-v{self.version} of {self.metadata.get('increment')} is a "
                                 f"regression model: it has no probabilities; call predict")
        return self._score(self._encode_fast(rows))

    def explain(self, rows: Rows, *, top: int = 5) -> list[dict[str, Any]]:
        """Per row: the prediction, the base value and the ``top`` input columns' contributions.

        Tree models (XGBoost, LightGBM) use SHAP's TreeExplainer on the encoded features (their
        raw margin: log-odds for a binary classifier); other models a Kernel SHAP over the input
        columns with the package's background rows. One-hot parts are summed back to their input
        column, so ``base_value + sum(all contributions) == output_value``.
        """

        return explain_rows(self, rows, top=top)

    def validate(self, rows: Rows) -> pd.DataFrame:
        """The rows as a DataFrame in the schema's columns and dtypes.

        Raises:
            DataError: Missing, unexpected or mistyped fields, every one named, e.g. ``missing field
                'amount'; unexpected field 'foo'; field 'hour' must be a number, got 'ten'``.
        """
        if isinstance(rows, pd.DataFrame):
            return self._validator.check_frame(rows)
        return self._validator.frame(self._validator.check_records(_records(rows)))

    def encode(self, rows: Rows) -> np.ndarray | pd.DataFrame:
        """The model's input for ``rows``: the encoded feature matrix (validated first)."""
        encoder = self._encoder
        if isinstance(rows, pd.DataFrame):
            if encoder is None:
                frame = self._validator.check_frame(rows)
                if frame.empty:
                    raise DataError("no rows given")
                return frame if self.features is None else self._in_range(self.features.transform(frame))
            n_rows, n_columns = rows.shape  # (DataFrame.empty costs twice as much)
            if not n_rows or not n_columns:
                raise DataError("no rows given")
            if n_rows == 1:
                row = self._validator.frame_row(rows)
                if row is not None:
                    return self._encode_fast(row)
            if n_rows <= _SMALL_FRAME:  # a few rows: as dicts, at the dict path's speed
                records = self._validator.frame_records(rows)
                return self._encode_fast(records[0] if len(records) == 1 else records)
            return self._encode_frame(rows, np.float64)
        records = _records(rows)
        if encoder is not None:
            if len(records) > 1:
                columns = self._validator.columns_of(records)
                if columns is not None:
                    return self._in_range(encoder.encode_columns(columns, len(records)))
            return self._in_range(encoder.encode(self._validator.check_records(records)))
        frame = self._validator.frame(self._validator.check_records(records))
        return frame if self.features is None else self._in_range(self.features.transform(frame))

    def check_limits(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Refuse (DataError) dict rows that the schema's recorded limits exclude: every field
        null, a null where ``nullable`` is false, a number outside the recorded ``min``/``max``.
        The serving routes call it; in-process callers (batch scoring, drift checks on shifted
        data) may score rows outside the training range."""
        problems = self._validator.limits(rows)
        if problems:
            raise DataError("input is outside the model's schema: " + "; ".join(problems))

    def _encode_frame(self, rows: pd.DataFrame, dtype: Any) -> np.ndarray:
        # the fast encoder a column at a time: ColumnTransformer's own checks and copies cost
        # more than the booster on large frames
        frame = self._validator.check_frame(rows, coerce=False)
        X = self._encoder.encode_frame(frame, dtype)
        try:
            return self._in_range(X)
        except DataError:
            if dtype == np.float64:
                raise
            # the float32 matrix holds inf where a value overflowed: name the float64 value
            return self._in_range(self._encoder.encode_frame(frame))

    def _encode_fast(self, rows: Any) -> Any:
        # the single-dict serving path first: no list, no isinstance on ABCs, one numpy row
        if type(rows) is dict and self._encoder is not None and self._validator._clean(rows):
            out = self._encoder.encode_list(rows)
            # the float32 check on the Python list (nothing is NaN after imputation)
            if max(out) > _FLOAT32_MAX or min(out) < -_FLOAT32_MAX:
                return self._in_range(np.array([out], dtype=np.float64))
            return np.array([out], dtype=np.float64)
        if (self._frame_dtype is not None and self._encoder is not None and isinstance(rows, pd.DataFrame)
                and rows.shape[0] > _SMALL_FRAME and rows.shape[1]):
            return self._encode_frame(rows, self._frame_dtype)
        return self.encode(rows)

    def _in_range(self, X: Any) -> Any:
        """``X`` unless an encoded value lies outside float32 (XGBoost and LightGBM compute in
        float32, torch in float32 too): a finite input such as 1e308 that the model library would
        refuse with its own error is the client's input, so a DataError naming row and feature."""
        arr = np.asarray(X)
        if arr.dtype.kind == "f" and arr.size:
            with np.errstate(invalid="ignore"):
                top, bottom = arr.max(), arr.min()  # NaN (a missing value) makes both NaN
            if top <= _FLOAT32_MAX and bottom >= -_FLOAT32_MAX:
                return X
        values = np.abs(np.asarray(X, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            out = values > _FLOAT32_MAX  # NaN compares False: missing values are the imputer's
        if not out.any():
            return X
        row, col = (int(i) for i in np.argwhere(out)[0])
        names = self.metadata.get("feature_names") or []
        feature = names[col] if col < len(names) else f"#{col}"
        raise DataError(f"row {row}: a value is too large for the model: encoded feature {feature!r} "
                        f"is {values[row, col]:.3g}, beyond float32; send values in the range the "
                        f"model was trained on")

    def compile(self, rows: Rows | None = None, *, folder: str | os.PathLike[str] | None = None) -> Predictor:
        """Score XGBoost and LightGBM models through a compiled library where it was measured
        faster than the booster (XGBoost up to 256 rows: a single row ~9x faster here; LightGBM
        from 1,024 rows), the booster everywhere else. Checked first: on ``rows`` (default the
        package's explainer background rows) the compiled library must give the booster's
        numbers to float32 rounding (``rtol=1e-5``, ``atol=1e-6``: it sums the trees in another
        order), or nothing changes. The library is built once per model and cached (see
        :mod:`specweave_ray.deploy._compiled`). Returns ``self``.

        Raises:
            CandidateError: Not an XGBoost or LightGBM model, no rows to check against, the
                compiler failed, or the compiled library disagrees with the booster.
        """
        where = f"model-v{self.version} of {self.metadata.get('increment')}"
        if self.family not in ("xgboost", "lightgbm") or self.raw_model is self.model:
            raise CandidateError(f"{where} is a {self.family} model: only XGBoost and LightGBM models compile")
        if self.family == "xgboost" and not np.isnan(self.model.missing):
            raise CandidateError(f"{where} reads {self.model.missing!r} as missing; the compiled "
                                 f"library reads only NaN as missing")
        if rows is None:
            rows = read_background(self.metadata, self.folder)
            if rows is None:
                raise CandidateError(f"{where} has no background rows to check the compiled model "
                                     f"against: pass rows to compile")
        X = np.asarray(self.encode(rows), dtype=np.float64)
        rounds = _xgb_rounds(self.model) if self.family == "xgboost" else (0, 0)
        lib, compiled = compile_trees(self.raw_model, self.family, rounds=rounds, folder=folder)
        if self.family == "xgboost":
            own = self.raw_model.inplace_predict(X, iteration_range=rounds, missing=self.model.missing,
                                                 validate_features=False)
        else:
            own = self.raw_model.predict(X)
        got = compiled(X)
        if got.shape != own.shape or not np.allclose(got, own, rtol=1e-5, atol=1e-6):
            worst = float(np.max(np.abs(got - own))) if got.shape == own.shape else float("nan")
            raise CandidateError(f"{where}: the compiled library disagrees with the booster on "
                                 f"{len(X)} rows (largest difference {worst:.3g}); kept the booster")
        self.raw_model, self._score = _scorer(self.model, self.family, self.classes, compiled=compiled)
        self.compiled = lib
        logger.info("model-v%d: %s scores through %s", self.version, self.family, lib)
        return self

    def raw_predict(self, X: Any) -> np.ndarray:
        """Scores for an already-encoded matrix (probabilities for classifiers)."""
        return self._score(X)

    # -- helpers for the package builder and the explainers -----------------------------------
    @property
    def fast_path(self) -> bool:
        return self._encoder is not None

    @property
    def explainer_kind(self) -> str:
        if self.family in ("xgboost", "lightgbm"):
            return "tree-shap"
        # a weighted ensemble of tree regressors: the weighted sum of its members' tree SHAP
        return "ensemble-tree-shap" if getattr(self.model, "tree_additive", False) else "kernel-shap"

    def check_fast_path(self, frame: pd.DataFrame) -> str | None:
        """Compare the fast encoder with the ColumnTransformer on validated rows; turn the fast
        path off (and say why) unless every value agrees to 1e-9."""
        if self._encoder is None:
            return self._fast_reason
        try:
            records = frame.astype(object).where(frame.notna(), None).to_dict("records")
            fast = self._encoder.encode(self._validator.check_records(records))
            slow = np.asarray(self.features.transform(frame), dtype=np.float64)
            if fast.shape != slow.shape or not np.allclose(fast, slow, rtol=0.0, atol=1e-9, equal_nan=True):
                raise FastPathUnsupported("the NumPy encoder disagrees with the ColumnTransformer on the reference rows")
        except Exception as err:  # noqa: BLE001 - any failure means: keep the scikit-learn path
            self._encoder, self._fast_reason = None, f"{type(err).__name__}: {err}"
        return self._fast_reason

    def __repr__(self) -> str:
        return (f"Predictor({self.metadata.get('increment')} model-v{self.version}, {self.family}, "
                f"fast_path={self.fast_path}, compiled={self.compiled is not None})")


def _family(model: Any) -> str:
    family = family_of(model)
    if family == "sklearn" and type(model).__module__.endswith("candidates._lightgbm_native"):
        return "lightgbm"  # a LightGBM model loaded from its text file
    return family


def _records(rows: Any) -> Sequence[Any]:
    if isinstance(rows, Mapping):
        return [rows]
    if isinstance(rows, (list, tuple)):
        if not rows:
            raise DataError("no rows given")
        return rows
    raise DataError(f"rows must be a DataFrame, a list of objects or one object, got {type(rows).__name__}")


def _scorer(model: Any, family: str, classes: np.ndarray | None, *,
            compiled: Callable[[Any], np.ndarray] | None = None) -> tuple[Any, Callable[[Any], np.ndarray]]:
    """(raw model, encoded matrix → probabilities or values), the same numbers as the estimator's
    own predict_proba / predict without its per-call checks. ``compiled`` (XGBoost and LightGBM:
    the booster's output from :func:`~specweave_ray.deploy._compiled.compile_trees`) scores the
    batch sizes where it was measured faster."""
    k = None if classes is None else len(classes)

    def as_proba(p: np.ndarray) -> np.ndarray:
        # what the scikit-learn wrappers do with a binary model's one column of P(class 1)
        if p.ndim == 2 and p.shape[1] == k:
            return p
        if p.shape == (1,):  # one row: Python's double subtraction is NumPy's (1 us less)
            p1 = float(p[0])
            return np.array([[1.0 - p1, p1]], dtype=p.dtype)
        out = np.empty((p.shape[0], 2), dtype=p.dtype)
        out[:, 1] = p
        np.subtract(1.0, p, out=out[:, 0])
        return out

    if family == "xgboost":
        booster = model.get_booster()
        rounds = _xgb_rounds(model)
        missing = model.missing

        # A few rows on one thread: XGBoost's OpenMP team costs more than the trees on a
        # single row (and spins against the HTTP server and its clients on a small machine).
        one = booster.copy()
        one.set_param({"nthread": 1})

        def xgb(X: Any) -> np.ndarray:
            n = X.shape[0]
            if compiled is not None and n <= XGB_MAX_ROWS:
                return compiled(X)
            return (one if n <= ONE_THREAD_ROWS else booster).inplace_predict(
                X, iteration_range=rounds, missing=missing, validate_features=False)

        return booster, (xgb if k is None else (lambda X: as_proba(xgb(X))))
    if family == "lightgbm" and hasattr(model, "booster_"):
        booster = model.booster_
        lgb = booster.predict
        if compiled is not None:
            def lgb(X: Any) -> np.ndarray:
                return compiled(X) if X.shape[0] >= LGB_MIN_ROWS else booster.predict(X)
        return booster, (lgb if k is None else (lambda X: as_proba(np.asarray(lgb(X)))))
    if family == "torch-mlp":
        return _torch_scorer(model, k)
    if k is None:
        return model, model.predict
    return model, model.predict_proba


def _xgb_rounds(model: Any) -> tuple[int, int]:
    try:
        return (0, int(model.best_iteration) + 1)
    except AttributeError:  # no early stopping: every tree
        return (0, 0)


def _torch_scorer(model: Any, k: int | None) -> tuple[Any, Callable[[Any], np.ndarray]]:
    import torch

    net = model.model_.eval()
    mean, scale = model.x_mean_, model.x_scale_
    standardise = _standardiser(mean, scale)

    def outputs(X: Any) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(standardise(X))).numpy()

    if k is not None:
        def proba(X: Any) -> np.ndarray:
            with torch.no_grad():
                logits = net(torch.from_numpy(standardise(X)))
                if logits.shape[0] > _ROW_SOFTMAX_ROWS:
                    # torch's softmax along rows of a few logits costs more than the network on
                    # a large batch (measured at 64k rows x 2: 5-8 ms against 0.03 ms along the
                    # columns of the transposed view); the two agree to a float32 ulp
                    return torch.softmax(logits.t(), dim=0).t().numpy().astype(np.float64)
                return torch.softmax(logits, dim=1).numpy().astype(np.float64)
        return net, proba

    def regress(X: Any) -> np.ndarray:
        out = outputs(X) * model.y_scale_ + model.y_mean_
        return out[:, 0].astype(np.float64) if model.n_outputs_ == 1 and model.y_1d_ else out.astype(np.float64)

    return net, regress


_BLOCK_ROWS = 4096  # rows per block of a float64 standardisation: its buffer stays in cache


def _standardiser(mean: np.ndarray, scale: np.ndarray) -> Callable[[Any], np.ndarray]:
    """``X`` → ``((float32(X) - mean) / scale)`` as float32: the estimator's own arithmetic and
    dtypes (``mean`` may be float64), in place on the one float32 copy instead of four
    whole-matrix copies."""
    mean, scale = np.asarray(mean), np.asarray(scale)
    work = np.result_type(np.float32, mean.dtype, scale.dtype)

    def standardise(X: Any) -> np.ndarray:
        out = np.asarray(X, dtype=np.float32)  # the float32 rounding first, as the estimator
        if out.ndim != 2:
            return ((out - mean) / scale).astype(np.float32)
        if out is X or not out.flags.owndata:  # never write into the caller's matrix
            out = out.copy()
        if work == np.float32:
            np.subtract(out, mean, out=out)
            np.divide(out, scale, out=out)
            return out
        tmp = np.empty((min(_BLOCK_ROWS, out.shape[0]), out.shape[1]), dtype=work)
        for start in range(0, out.shape[0], _BLOCK_ROWS):
            block = out[start:start + _BLOCK_ROWS]
            part = tmp[:block.shape[0]]
            np.subtract(block, mean, out=part)  # in float64, then rounded to float32 once
            np.divide(part, scale, out=part)
            np.copyto(block, part, casting="same_kind")
        return out

    return standardise
