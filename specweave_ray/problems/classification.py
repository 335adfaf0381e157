"""Classification, binary or multiclass, including heavy imbalance (fraud, churn, screening)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.exceptions import DataError
from specweave_ray.problems._base import ProblemType, plain
from specweave_ray.problems._candidates import MLP, SHARED_CANDIDATES

# Binary targets with fewer positives than this share get balanced class weights.
RARE_POSITIVE_SHARE = 0.05
# Estimator class name → its class-weighting parameter.
_WEIGHTING = {"LogisticRegression": "class_weight", "TorchMLPClassifier": "class_weight",
              "RandomForestClassifier": "class_weight", "XGBClassifier": "scale_pos_weight",
              "LGBMClassifier": "is_unbalance"}


class Classification(ProblemType):
    name = "classification"
    aliases = ("binary", "binary classification", "multiclass", "multiclass classification",
               "multi-class classification", "classifier")
    summary = "a class per row, binary or multiclass; probabilities, a tuned threshold"
    target_kind = "label"
    output = "probabilities"
    metrics = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
               "log_loss")
    report_extras = ("positive_rate", "predicted_positive_rate")
    default_metric = "roc_auc"
    default_criteria = ("precision >= 0.8", "recall >= 0.7", "f1 >= 0.75", "roc_auc >= 0.85",
                        "latency_p99 < 100 ms", "throughput >= 1000 req/s",
                        "lift over best baseline >= 20%")
    estimators = {
        "xgboost": "xgboost.XGBClassifier",
        "lightgbm": "lightgbm.LGBMClassifier",
        "logistic": "sklearn.linear_model.LogisticRegression",
        "linear": "sklearn.linear_model.LogisticRegression",
        "ridge": "sklearn.linear_model.RidgeClassifier",
        "random-forest": "sklearn.ensemble.RandomForestClassifier",
        "torch-mlp": f"{MLP}.TorchMLPClassifier",
        "mlp": f"{MLP}.TorchMLPClassifier",
        "dummy": "sklearn.dummy.DummyClassifier",
        "rule": "specweave_ray.candidates.baselines.RuleClassifier",
    }
    default_candidates = (
        {"name": "logistic", "estimator": "logistic",
         "params": {"max_iter": 1000, "C": {"loguniform": [1e-3, 10.0]}}},
        *SHARED_CANDIDATES,
    )

    def fits(self, y: Any) -> bool:
        s = pd.Series(np.asarray(y))
        if s.dtype.kind == "f" and s.nunique() > 20:
            return False
        return s.dtype.kind in "biuOU" or s.nunique() <= 20

    def _check_values(self, y: pd.Series) -> None:
        classes = y.unique()
        if len(classes) < 2:
            raise DataError(f"target column {y.name!r} has a single class ({plain(classes[0])!r} "
                            f"in all {len(y)} rows); classification needs at least two classes")

    def encode_target(self, y: Any) -> tuple[np.ndarray, np.ndarray]:
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"the target has a single class ({plain(classes[0])!r}); "
                            f"classification needs two or more")
        return classes, codes

    def stratify(self, y: pd.Series) -> pd.Series:
        counts = y.value_counts()
        if counts.min() < 2:
            raise DataError(f"class {plain(counts.idxmin())!r} of {y.name!r} has a single row; a "
                            f"stratified split needs at least two per class: drop it or add rows")
        return y

    def splitter(self, n_splits: int, *, seed: int) -> Any:
        from sklearn.model_selection import StratifiedKFold

        return StratifiedKFold(n_splits, shuffle=True, random_state=seed)

    def baselines(self, *, rule: str | None = None, seed: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
        dummy = "sklearn.dummy.DummyClassifier"
        out = {"random-uniform": (dummy, {"strategy": "uniform", "random_state": seed}),
               "random-prior": (dummy, {"strategy": "stratified", "random_state": seed}),
               "majority": (dummy, {"strategy": "most_frequent"})}
        if rule is not None:
            out["rule"] = (self.estimators["rule"], {"rule": rule})
        return out

    def adjust_candidates(self, experiments: Sequence[Any], y: Any,
                          estimator_of: Callable[[Any], type]) -> list[Any]:
        """Binary targets with < 5% positives: each candidate that has a class-weighting
        parameter and was not given one gets it (balanced weights; XGBoost's
        ``scale_pos_weight`` = negatives / positives)."""
        counts = pd.Series(np.asarray(y)).value_counts()
        if len(counts) != 2 or counts.min() / counts.sum() >= RARE_POSITIVE_SHARE:
            return list(experiments)
        values = {"class_weight": "balanced", "scale_pos_weight": float(counts.max() / counts.min()),
                  "is_unbalance": True}
        out = []
        for e in experiments:
            param = _WEIGHTING.get(estimator_of(e.estimator).__name__)
            out.append(replace(e, params={**e.params, param: values[param]})
                       if param and param not in e.params else e)
        return out

    def explain_examples(self, y_true: np.ndarray, outputs: np.ndarray, *, n: int) -> tuple[np.ndarray, str]:
        """The highest-risk rows: binary, the largest probability of the second class (the one
        the threshold decides); multiclass, the largest probability of any class but the most
        common one in ``y_true``."""
        proba = np.asarray(outputs, dtype=np.float64)
        if proba.shape[1] == 2:
            risk, why = proba[:, 1], "the highest-risk rows: largest predicted probability of the positive class"
        else:
            common = int(np.bincount(np.asarray(y_true, dtype=np.intp), minlength=proba.shape[1]).argmax())
            risk = np.delete(proba, common, axis=1).max(axis=1)
            why = "the highest-risk rows: largest predicted probability of a class other than the most common"
        return np.argsort(-risk, kind="stable")[:n], why

    def target_profile(self, y: pd.Series) -> dict[str, Any]:
        counts = y.value_counts(dropna=True)
        info: dict[str, Any] = {"class_counts": {str(k): int(v) for k, v in counts.items()},
                                "n_classes": int(len(counts))}
        if len(counts):
            info["minority_share"] = float(counts.min() / counts.sum())
            info["imbalance_ratio"] = float(counts.max() / counts.min())
        return info

    def leakage_score(self, values: np.ndarray, y: pd.Series) -> tuple[float, str]:
        from sklearn.metrics import roc_auc_score
        from sklearn.tree import DecisionTreeClassifier

        # A depth-limited tree sees non-monotone and categorical relations that a rank AUC
        # misses, yet has too few leaves to memorise an honest feature.
        tree = DecisionTreeClassifier(max_depth=4, min_samples_leaf=5, random_state=0)
        tree.fit(values.reshape(-1, 1), y)
        proba = tree.predict_proba(values.reshape(-1, 1))
        if proba.shape[1] == 2:
            return float(roc_auc_score(y, proba[:, 1])), "roc_auc"
        return float(roc_auc_score(y, proba, multi_class="ovr", labels=tree.classes_)), "roc_auc"

    def ab_inputs(self, control: Mapping[str, float], *, target: str) -> tuple[dict[str, Any], str, bool]:
        """Binary: the control's misses per unit, ``fn / n_test`` (to decrease). Multiclass: its
        accuracy, the rate of correct decisions (to increase). A rate of 0 (or 1) measured on
        ``n`` rows is replaced by its 95% bound, ``3 / n`` (the rule of three)."""
        n = int(control["n_test"])
        if "fn" in control:
            rate, metric, lower = float(control["fn"]) / n, ("rate of positive outcomes missed per unit "
                                                             "(e.g. fraud losses per transaction)"), True
        else:
            rate, metric, lower = float(control["accuracy"]), "rate of correct decisions", False
        out: dict[str, Any] = {"baseline_rate": rate}
        if not 0 < rate < 1:
            bound = 3 / n if rate <= 0 else 1 - 3 / n
            out.update(baseline_rate=bound, baseline_note=(
                f"the control's measured rate is {rate:g} on {n} held-out rows; the plan sizes for its "
                f"95% bound {bound:.4g} (rule of three)"))
        return out, metric, lower
