"""Candidate models: baselines, registry, torch MLPs, staged training, devices, native saving.

Importing this package is cheap: nothing here imports torch, XGBoost or LightGBM until a name
that needs it is used (scikit-learn's lazy ``__getattr__``)::

    from specweave_ray.candidates import resolve_estimator, staged_fit, save_native
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from specweave_ray.candidates.baselines import RuleClassifier, baseline_estimators
    from specweave_ray.candidates.device import configure
    from specweave_ray.candidates.registry import resolve_estimator
    from specweave_ray.candidates.serialization import load_native, save_native
    from specweave_ray.candidates.staged import budget_of, staged_fit
    from specweave_ray.candidates.torch_mlp import TorchMLPClassifier, TorchMLPRegressor

_LAZY: dict[str, str] = {
    "ALSRecommender": "_implicit",
    "BPRRecommender": "_implicit",
    "EASERecommender": "_ease",
    "ItemKNNRecommender": "_implicit",
    "RerankRecommender": "_rerank",
    "RuleClassifier": "baselines",
    "baseline_estimators": "baselines",
    "configure": "device",
    "resolve_estimator": "registry",
    "load_native": "serialization",
    "save_native": "serialization",
    "budget_of": "staged",
    "staged_fit": "staged",
    "TorchMLPClassifier": "torch_mlp",
    "TorchMLPRegressor": "torch_mlp",
}

__all__ = [
    "ALSRecommender",
    "BPRRecommender",
    "EASERecommender",
    "ItemKNNRecommender",
    "RerankRecommender",
    "RuleClassifier",
    "TorchMLPClassifier",
    "TorchMLPRegressor",
    "baseline_estimators",
    "budget_of",
    "configure",
    "load_native",
    "resolve_estimator",
    "save_native",
    "staged_fit",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
