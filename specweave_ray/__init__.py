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
    "SpecweaveError",
    "SweepResults",
    "load_spec",
    "run_experiments",
    "track_experiment",
    "track_model",
]

_WHERE = {
    "Increment": ".workspace.increment",
    "ModelExperiment": ".search.experiment",
    "SpecweaveError": ".exceptions",
    "SweepResults": ".search.runner",
    "load_spec": ".spec._grammar",
    "run_experiments": ".search.runner",
    "track_experiment": ".workspace.records",
    "track_model": ".workspace.records",
}

if TYPE_CHECKING:  # pragma: no cover
    from specweave_ray.exceptions import SpecweaveError
    from specweave_ray.search.experiment import ModelExperiment
    from specweave_ray.search.runner import SweepResults, run_experiments
    from specweave_ray.spec._grammar import load_spec
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import track_experiment, track_model


def __getattr__(name: str) -> Any:
    # scikit-learn's lazy pattern: submodules (and Ray/MLflow behind them) load on first use
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'specweave_ray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
