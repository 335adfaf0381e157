"""The README's Python API example, run by the test suite (tests/test_examples.py)."""

from __future__ import annotations

import sys

from sklearn.datasets import load_breast_cancer

from specweave_ray import (
    Increment,
    ModelExperiment,
    loguniform,
    randint,
    run_experiments,
    track_experiment,
)


def main(root: str = "increments", samples: int = 12) -> None:
    inc = Increment.create("Cancer Screening", problem_type="classification", root=root, exist_ok=True)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with track_experiment("eda", increment=inc) as exp:  # a record of your own
        exp.log_metrics({"rows": len(X), "positives": int(y.sum())})
    results = run_experiments(
        [ModelExperiment("xgboost", "xgboost", {"max_depth": randint(2, 8), "learning_rate": loguniform(0.01, 0.3)},
                         num_samples=samples),
         ModelExperiment("torch-mlp", "torch-mlp", {"epochs": 20}, resources={"cpu": 1, "gpu": 0})],
        X, y, increment=inc, cv=5, metric="roc_auc")  # + random/majority baselines as trials
    print(results.best.candidate, results.best.score)
    print(results.table.to_string())


if __name__ == "__main__":
    main(*sys.argv[1:2], *[int(a) for a in sys.argv[2:3]])
