"""specweave-ray: spec-driven ML increments whose experiments run as Ray Tune trials.

The public API is small and cheap to import: Ray, MLflow and torch load on first use.

>>> import specweave_ray
>>> sorted(specweave_ray.__all__)[:3]
['Increment', 'ModelExperiment', 'SpecweaveError']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Increment",
    "ModelExperiment",
    "Predictor",
    "SpecweaveError",
    "SweepResults",
    "choice",
    "load_spec",
    "lograndint",
    "loguniform",
    "randint",
    "run_experiments",
    "track_experiment",
    "track_model",
    "uniform",
]

_WHERE = {
    "Increment": ".workspace",
    "ModelExperiment": ".spec",
    "Predictor": ".deploy",
    "SpecweaveError": ".exceptions",
    "SweepResults": ".search",
    "choice": ".spec",
    "load_spec": ".spec",
    "lograndint": ".spec",
    "loguniform": ".spec",
    "randint": ".spec",
    "run_experiments": ".search",
    "track_experiment": ".workspace",
    "track_model": ".workspace",
    "uniform": ".spec",
}

if TYPE_CHECKING:  # pragma: no cover
    from specweave_ray.deploy import Predictor
    from specweave_ray.exceptions import SpecweaveError
    from specweave_ray.search import SweepResults, run_experiments
    from specweave_ray.spec import (
        ModelExperiment,
        choice,
        load_spec,
        lograndint,
        loguniform,
        randint,
        uniform,
    )
    from specweave_ray.workspace import Increment, track_experiment, track_model


def __getattr__(name: str) -> Any:
    # scikit-learn's lazy pattern: submodules (and Ray/MLflow behind them) load on first use
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'specweave_ray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
