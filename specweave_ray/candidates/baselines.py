"""Baselines every increment is compared against: chance, majority, mean/median and a rule.

Chance and majority come from scikit-learn's ``DummyClassifier``/``DummyRegressor``; the one
estimator of our own is :class:`RuleClassifier`, the "business rule" a spec often names
(``balance > 1800``), evaluated safely (see :mod:`specweave_ray.candidates._rule`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from specweave_ray import problems
from specweave_ray.candidates._rule import evaluate_rule, parse_rule, rule_columns
from specweave_ray.candidates.registry import resolve_estimator
from specweave_ray.exceptions import CandidateError
from specweave_ray.problems import ProblemType

__all__ = ["RuleClassifier", "baseline_estimators"]


class RuleClassifier(ClassifierMixin, BaseEstimator):
    """Predict the positive label wherever a boolean rule over the columns holds.

    Args:
        rule: A boolean expression over column names, e.g. ``"balance > 1800 and age < 30"``.
            Allowed: comparisons (``== != < <= > >= in``, ``not in``), ``and``/``or``/``not``,
            column names and numeric/string constants. Nothing is ever ``eval``-ed.
        positive_label: The label predicted where the rule holds. ``None`` takes the last of
            the sorted classes (``1``, ``True``, ``"yes"`` for the usual binary labels).

    Attributes:
        classes_: Sorted labels seen in ``fit``.
        positive_label_: Label predicted where the rule holds.
        negative_label_: Label predicted elsewhere: the most frequent other label.
        columns_: Columns the rule reads.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"balance": [100, 2500, 1900, 50]})
        >>> RuleClassifier(rule="balance > 1800").fit(X, [0, 1, 1, 0]).predict(X).tolist()
        [0, 1, 1, 0]
    """

    # The sweep feeds this estimator the raw DataFrame, not the encoded feature matrix.
    requires_raw_frame = True

    def __init__(self, *, rule: str = "balance > 1800", positive_label: Any = None) -> None:
        self.rule = rule
        self.positive_label = positive_label

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RuleClassifier:
        """Learn the labels; the rule itself is fixed. ``sample_weight`` is accepted and unused."""
        tree = parse_rule(self.rule)
        columns = rule_columns(tree)
        _check_columns(X, columns, self.rule)
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(X):
            raise CandidateError(
                f"y must be one label per row of X ({len(X)} rows), got shape {labels.shape}"
            )
        classes, counts = np.unique(labels, return_counts=True)
        positive = classes[-1] if self.positive_label is None else self.positive_label
        if positive not in classes:
            raise CandidateError(
                f"positive_label {positive!r} is not among the labels {classes.tolist()}"
            )
        others = classes != positive
        if not others.any():
            raise CandidateError(
                f"RuleClassifier needs a second label besides {positive!r}; y has only that one"
            )
        self.classes_ = classes
        self.positive_label_ = classes[classes == positive][0]
        self.negative_label_ = classes[others][np.argmax(counts[others])]
        self.columns_ = columns
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    def decision_rule(self, X: Any) -> np.ndarray:
        """Where the rule holds, as a boolean array (missing values count as False)."""
        check_is_fitted(self, "classes_")
        tree = parse_rule(self.rule)
        _check_columns(X, self.columns_, self.rule)
        return evaluate_rule(tree, X, rule=self.rule)

    def predict(self, X: Any) -> np.ndarray:
        """The positive label where the rule holds, the negative label elsewhere."""
        holds = self.decision_rule(X)
        return np.where(holds, self.positive_label_, self.negative_label_).astype(
            self.classes_.dtype
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """One column per class of ``classes_``: 1.0 for the predicted label, 0.0 elsewhere."""
        predicted = self.predict(X)
        return (predicted[:, None] == self.classes_[None, :]).astype(np.float64)


def baseline_estimators(
    problem_type: str | ProblemType, *, rule: str | None = None, random_state: int = 0
) -> dict[str, Any]:
    """Unfitted baseline estimators of a problem type (its ``baselines`` declaration), by
    record name.

    Args:
        problem_type: A problem type or its name/alias.
        rule: A :class:`RuleClassifier` rule to add as the ``"rule"`` baseline, where the type
            has rule baselines (classification).
        random_state: Seed of the random baselines.

    Returns:
        Classification: ``"random-uniform"``, ``"random-prior"``, ``"majority"`` (+ ``"rule"``);
        regression: ``"mean"``, ``"median"``.

    Raises:
        ConfigError: Unknown problem type.
        CandidateError: A rule given to a type without rule baselines, or an unreadable rule.

    Example:
        >>> sorted(baseline_estimators("regression"))
        ['mean', 'median']
    """
    problem = problems.get(problem_type)
    if rule is not None:
        parse_rule(rule)  # fail at configuration time, not in the middle of a sweep
    out = {}
    for name, (path, params) in problem.baselines(rule=rule, seed=random_state).items():
        out[name] = resolve_estimator(path, problem_type=problem)(**params)
    return out


def _check_columns(X: Any, columns: list[str], rule: str) -> None:
    if not hasattr(X, "columns"):
        raise CandidateError(
            f"RuleClassifier reads named columns, so X must be a pandas DataFrame; "
            f"got {type(X).__name__}"
        )
    present = {str(column) for column in X.columns}
    missing = [column for column in columns if column not in present]
    if missing:
        raise CandidateError(
            f"rule {rule!r} names unknown column(s) {', '.join(map(repr, missing))}; "
            f"the data has: {', '.join(sorted(present))}"
        )
