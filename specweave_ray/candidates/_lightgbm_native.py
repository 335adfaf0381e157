"""A LightGBM model loaded from its native text file, with the scikit-learn predict API.

LightGBM 4.7 cannot rebuild an ``LGBMClassifier`` from a model file, so a loaded model is a
``lightgbm.Booster`` behind these small classes. They predict exactly as the wrapper they were
saved from (same booster, same label decoding) and expose ``booster_`` for SHAP and friends.
They are predict-only: ``fit`` says how to retrain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from specweave_ray.exceptions import CandidateError

__all__ = ["LightGBMBoosterClassifier", "LightGBMBoosterRegressor", "load_lightgbm"]


class _LightGBMBoosterBase(BaseEstimator):
    """Shared loading and raw prediction."""

    _wrapper = "LGBMModel"

    def __init__(self, *, params: dict[str, Any] | None = None) -> None:
        self.params = params

    def fit(self, X: Any, y: Any, **kwargs: Any) -> _LightGBMBoosterBase:
        """Refuse: a loaded booster is predict-only."""
        raise CandidateError(
            f"a LightGBM model loaded from its text file is predict-only; retrain with "
            f"lightgbm.{self._wrapper}(**model.params).fit(X, y)"
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")

    def _raw(self, X: Any) -> np.ndarray:
        return np.asarray(self.booster_.predict(X))


class LightGBMBoosterClassifier(ClassifierMixin, _LightGBMBoosterBase):
    """A loaded LightGBM classifier: ``predict`` gives labels, ``predict_proba`` probabilities.

    Attributes:
        booster_: The ``lightgbm.Booster``.
        classes_: Labels in the order of the probability columns.
        n_features_in_: Number of features the model expects.
    """

    _wrapper = "LGBMClassifier"

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, one column per entry of ``classes_``."""
        result = self._raw(X)
        if result.ndim == 1:
            return np.vstack((1.0 - result, result)).transpose()
        return result

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LightGBMBoosterRegressor(RegressorMixin, _LightGBMBoosterBase):
    """A loaded LightGBM regressor (attributes as :class:`LightGBMBoosterClassifier`, no classes)."""

    _wrapper = "LGBMRegressor"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets."""
        return self._raw(X)


def load_lightgbm(model_file: Path, meta: dict[str, Any]) -> _LightGBMBoosterBase:
    """Rebuild the predict-side of a LightGBM scikit-learn model from ``save_native`` files."""
    import lightgbm

    booster = lightgbm.Booster(model_file=str(model_file))
    classes = meta.get("classes")
    model: _LightGBMBoosterBase
    if classes is not None:
        model = LightGBMBoosterClassifier(params=meta.get("params"))
        model.classes_ = np.asarray(classes)
    else:
        model = LightGBMBoosterRegressor(params=meta.get("params"))
    model.booster_ = booster
    model.objective_ = meta.get("objective")
    model.n_features_in_ = booster.num_feature()
    if meta.get("feature_names_in") is not None:
        model.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    return model
