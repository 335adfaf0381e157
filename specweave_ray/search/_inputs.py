"""What every trial of a sweep sees, built once on the driver: the encoded target, the folds and
the unfitted feature pipeline. ``run_experiments`` and ``reproduce`` build them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from specweave_ray.features import build_preprocessor
from specweave_ray.problems import ProblemType

__all__ = ["TrialInputs", "trial_inputs"]


@dataclass(frozen=True)
class TrialInputs:
    classes: Any            # the label encoding (None for numeric targets)
    y: Any                  # the encoded target
    folds: list[Any]        # (train_idx, valid_idx) pairs
    cv: str                 # the splitter's repr, recorded in every trial's meta.json
    preprocessor: Any       # unfitted; each fold fits a clone on its train part


def trial_inputs(problem: ProblemType, X: Any, y: Any, *, cv: int | Any, seed: int,
                 preprocessor: Any = "auto") -> TrialInputs:
    """Encode ``y``, build the folds (``cv`` folds of the type's splitter, or a splitter) and the
    feature pipeline (``"auto"``: from the columns, for types whose models read features)."""
    classes, y_arr = problem.encode_target(y)
    if isinstance(preprocessor, str) and preprocessor == "auto":
        preprocessor = build_preprocessor(X) if problem.uses_features else None
    folds, cv_repr = problem.folds(X, y_arr, cv=cv, seed=seed)
    return TrialInputs(classes, y_arr, folds, cv_repr, preprocessor)
