"""The ensemble of fitted candidates: a weighted sum of their outputs, or a one-level stack.

``EnsembleModel`` keeps the scikit-learn contract (``__init__`` stores its arguments, ``fit``
returns ``self``, learned state ends in ``_``), so evaluation, explanation, packaging and serving
take it like any model. It is normally built from members already fitted (each candidate's refit
on all training rows) with :meth:`EnsembleModel.from_fitted`; ``fit`` refits clones of
``members`` on new rows with the same weights (a stack's meta-learner is fitted on out-of-fold
outputs, which ``fit`` does not have, so a stack is only built ``from_fitted``).

* weighted (greedy ensemble selection): ``predict_proba = Σ wᵢ · memberᵢ.predict_proba`` for a
  classifier, ``predict = Σ wᵢ · memberᵢ.predict`` for a regressor; weights sum to 1.
* stack: the meta-learner (logistic regression / ridge) reads :func:`stack_features` of the
  members' outputs.

Saved natively member by member (``candidates/serialization.py``, format ``ensemble``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from specweave_ray.candidates._common import family_of

__all__ = ["EnsembleModel", "stack_features"]

OUTPUTS = ("probabilities", "values")


def stack_features(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """The meta-learner's input from the members' outputs: a regressor's values, a binary
    classifier's P(class 1), a multiclass one's every column, side by side."""
    cols = []
    for out in outputs:
        out = np.asarray(out, dtype=np.float64)
        if out.ndim == 1:
            cols.append(out[:, None])
        elif out.shape[1] == 2:
            cols.append(out[:, 1:])
        else:
            cols.append(out)
    return np.hstack(cols)


class EnsembleModel(BaseEstimator):
    """Members and their weights (or a meta-learner over their outputs).

    Args:
        members: Estimators (unfitted for :meth:`fit`; fitted ones come in through
            :meth:`from_fitted`).
        weights: One non-negative weight per member (normalised to sum to 1); ignored when
            ``stacker`` is set.
        names: The members' candidate names (for reports).
        output: ``"probabilities"`` (classifier) or ``"values"`` (regressor).
        stacker: A fitted meta-learner over :func:`stack_features`, or None (weighted sum).
    """

    def __init__(self, members: Sequence[Any] = (), weights: Sequence[float] | None = None,
                 names: Sequence[str] | None = None, output: str = "probabilities", stacker: Any = None) -> None:
        self.members = members
        self.weights = weights
        self.names = names
        self.output = output
        self.stacker = stacker

    def fit(self, X: Any, y: Any) -> EnsembleModel:
        """Fit clones of ``members`` on ``(X, y)``; keep the weights."""
        from sklearn.base import clone

        if self.stacker is not None:
            raise ValueError("a stacked ensemble's meta-learner is fitted on out-of-fold outputs; "
                             "build it with EnsembleModel.from_fitted")
        self._set([clone(m).fit(X, y) for m in self.members])
        return self

    @classmethod
    def from_fitted(cls, members: Sequence[Any], *, weights: Sequence[float] | None = None,
                    names: Sequence[str] | None = None, output: str = "probabilities",
                    stacker: Any = None) -> EnsembleModel:
        """An ensemble of already fitted members (no refit)."""
        model = cls(members=list(members), weights=None if weights is None else [float(w) for w in weights],
                    names=None if names is None else list(names), output=output, stacker=stacker)
        model._set(list(members))
        return model

    def _set(self, fitted: list[Any]) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if not fitted:
            raise ValueError("an ensemble needs at least one member")
        w = np.ones(len(fitted)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if w.shape != (len(fitted),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(fitted)} non-negative numbers with a positive sum, "
                             f"got {self.weights!r}")
        self.members_ = fitted
        self.weights_ = w / w.sum()
        if self.output == "probabilities":
            self.classes_ = np.asarray(fitted[0].classes_)
        n_in = getattr(fitted[0], "n_features_in_", None)
        if n_in is not None:
            self.n_features_in_ = n_in

    # -- outputs -----------------------------------------------------------------------------
    def member_outputs(self, X: Any) -> list[np.ndarray]:
        """Each member's probabilities (classifier) or values (regressor), as float64."""
        if self.output == "probabilities":
            outs = []
            for m in self.members_:
                p = np.asarray(m.predict_proba(X), dtype=np.float64)
                outs.append(p / p.sum(axis=1, keepdims=True))
            return outs
        return [np.asarray(m.predict(X), dtype=np.float64) for m in self.members_]

    def _combine(self, outs: list[np.ndarray]) -> np.ndarray:
        if self.stacker is not None:
            Z = stack_features(outs)
            if self.output == "probabilities":
                return np.asarray(self.stacker.predict_proba(Z), dtype=np.float64)
            return np.asarray(self.stacker.predict(Z), dtype=np.float64)
        # zero-weight members were left out when the ensemble was built; sum the rest
        return np.sum([w * o for w, o in zip(self.weights_, outs, strict=True)], axis=0)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.output != "probabilities":
            raise AttributeError("a regression ensemble has no predict_proba")
        return self._combine(self.member_outputs(X))

    def predict(self, X: Any) -> np.ndarray:
        out = self._combine(self.member_outputs(X))
        if self.output == "probabilities":
            return self.classes_[np.argmax(out, axis=1)]
        return out

    @property
    def tree_additive(self) -> bool:
        """True for a weighted regression ensemble of XGBoost/LightGBM members: its exact SHAP
        values are the weighted sum of the members' tree SHAP values (all in value space). A
        classifier's tree SHAP is in log-odds, which a weighted sum of probabilities does not add
        up in, so it is explained in probability space (Kernel SHAP, linear in the members)."""
        return (self.stacker is None and self.output == "values" and hasattr(self, "members_")
                and all(family_of(m) in ("xgboost", "lightgbm") or hasattr(m, "booster_") for m in self.members_))

    def __repr__(self) -> str:
        names = self.names or [type(m).__name__ for m in self.members]
        how = "stack" if self.stacker is not None else "weights " + ", ".join(
            f"{w:.2f}" for w in (self.weights or [1.0] * len(names)))
        return f"EnsembleModel({', '.join(map(str, names))}; {how})"
