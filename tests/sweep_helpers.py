"""Estimators that misbehave on purpose, for the sweep's failure tests.

Tests register this module with ``cloudpickle.register_pickle_by_value`` so Ray workers get the
classes by value (the tests folder is not importable on workers).
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class RaisingClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, message: str = "boom: this configuration cannot be fitted") -> None:
        self.message = message

    def fit(self, X, y):
        raise ValueError(self.message)


class ExitingClassifier(ClassifierMixin, BaseEstimator):
    """Kills its worker process, as an out-of-memory kill or a segfault would."""

    def __init__(self, code: int = 1) -> None:
        self.code = code

    def fit(self, X, y):
        os._exit(self.code)


class SleepyClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the prior; sleeps in fit so concurrency can be observed from the records."""

    def __init__(self, sleep_s: float = 0.3, n_jobs: int | None = None) -> None:
        self.sleep_s = sleep_s
        self.n_jobs = n_jobs

    def fit(self, X, y):
        time.sleep(self.sleep_s)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
