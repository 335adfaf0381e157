"""Estimators that fail on purpose, for the fault tests: each ``fit`` misbehaves for real (exits,
kills itself, allocates past a limit, hangs) when its ``mode`` says so and fits a prior otherwise.

Tests register this module with ``cloudpickle.register_pickle_by_value`` so Ray workers get the
class by value (the tests folder is not importable on workers).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from specweave_ray import ModelExperiment

# set on one node of a test cluster (its raylet's environment, which its workers inherit)
NODE_ENV = "SPECWEAVE_TEST_NODE"


class FaultyClassifier(ClassifierMixin, BaseEstimator):
    """``mode``: ok, raise, exit (os._exit(3)), sigkill (SIGKILLs itself), hog (allocates
    ``hog_mb`` and touches it), hang (sleeps an hour), exit-on-<node> (exits with 3 only where
    ``$SPECWEAVE_TEST_NODE`` is <node>), with ``marker`` set, exit-on-<node> touches it there and elsewhere waits for it (so
    the trials must use that node), hold-on-<node> (where ``$SPECWEAVE_TEST_NODE`` is <node>:
    touches the file ``marker`` and sleeps up to 120 s, e.g. until the test removes the node).
    ``sleep_s`` is slept before a normal fit, and it waits
    while the file ``hold`` exists."""

    def __init__(self, mode: str = "ok", sleep_s: float = 0.0, hog_mb: int = 2048, seed: int = 0,
                 hold: str = "", marker: str = "") -> None:
        self.mode = mode
        self.sleep_s = sleep_s
        self.hog_mb = hog_mb
        self.seed = seed
        self.hold = hold
        self.marker = marker

    def fit(self, X, y):
        mode = self.mode
        if mode.startswith("exit-on-"):
            there = os.environ.get(NODE_ENV) == mode[len("exit-on-"):]
            if there and self.marker:
                open(self.marker, "a").close()
            deadline = time.monotonic() + 120
            while not there and self.marker and not os.path.exists(self.marker) and time.monotonic() < deadline:
                time.sleep(0.05)  # holds this node's slot until a trial has run there
            mode = "exit" if there else "ok"
        if mode.startswith("hold-on-"):
            if os.environ.get(NODE_ENV) == mode[len("hold-on-"):]:
                open(self.marker, "a").close()
                time.sleep(120)
            mode = "ok"
        if mode == "raise":
            raise ValueError("boom: this configuration cannot be fitted")
        if mode == "exit":
            os._exit(3)
        if mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "hog":
            block = np.ones(self.hog_mb * 2**20 // 8)
            block[::512] += 1.0
        if mode == "hang":
            time.sleep(3600)
        deadline = time.monotonic() + 120
        if self.hold and os.path.exists(self.hold):
            open(self.hold + ".started", "a").close()  # the test interrupts once a held trial runs
        while self.hold and os.path.exists(self.hold) and time.monotonic() < deadline:
            time.sleep(0.05)  # held while the file exists (the same file on every node here)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def held(hold: str) -> list[ModelExperiment]:
    """Six candidates: c0 and c1 fit at once, c2…c5 wait while the file ``hold`` exists."""
    return [ModelExperiment(f"c{i}", FaultyClassifier, {"hold": "" if i < 2 else hold}) for i in range(6)]
