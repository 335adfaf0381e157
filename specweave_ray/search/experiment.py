"""``ModelExperiment``: one candidate model family with fixed params or a search space.

Search-space entries are Ray Tune domains (``tune.loguniform(1e-3, 1)``), the small typed
wrappers below (``loguniform(1e-3, 1)``), or the tagged dicts configs use
(``{"loguniform": [0.001, 1]}``). Only :mod:`specweave_ray.search._ray.tune` turns them into Ray objects.

>>> from sklearn.linear_model import LogisticRegression
>>> exp = ModelExperiment("logistic", LogisticRegression, {"C": loguniform(1e-3, 10)})
>>> exp.has_search_space, exp.num_samples
(True, 8)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from specweave_ray.exceptions import CandidateError

DOMAIN_KINDS = {"uniform": 2, "loguniform": 2, "randint": 2, "quniform": 3, "choice": 1}
DEFAULT_SAMPLES_WITH_SPACE = 8


@dataclass(frozen=True)
class Domain:
    """A search-space entry: ``kind`` is uniform, loguniform, randint (high exclusive), quniform or choice."""

    kind: str
    args: tuple[Any, ...]

    def __post_init__(self) -> None:
        if self.kind not in DOMAIN_KINDS:
            raise CandidateError(f"unknown search-space kind {self.kind!r}; use one of {', '.join(DOMAIN_KINDS)}")
        if len(self.args) != DOMAIN_KINDS[self.kind]:
            raise CandidateError(f"{self.kind} takes {DOMAIN_KINDS[self.kind]} argument(s), got {list(self.args)!r}")
        if self.kind == "choice":
            if not isinstance(self.args[0], (list, tuple)) or not self.args[0]:
                raise CandidateError(f"choice needs a non-empty list, got {self.args[0]!r}")
        else:
            low, high = self.args[0], self.args[1]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.args):
                raise CandidateError(f"{self.kind} bounds must be numbers, got {list(self.args)!r}")
            if not low < high:
                raise CandidateError(f"{self.kind} needs low < high, got {low!r} >= {high!r}")
            if self.kind == "loguniform" and low <= 0:
                raise CandidateError(f"loguniform needs low > 0, got {low!r}")

    def to_json(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.args[0]) if self.kind == "choice" else list(self.args)}


def uniform(low: float, high: float) -> Domain:
    return Domain("uniform", (low, high))


def loguniform(low: float, high: float) -> Domain:
    return Domain("loguniform", (low, high))


def randint(low: int, high: int) -> Domain:
    """Integers in ``[low, high)`` (Ray Tune's convention)."""
    return Domain("randint", (low, high))


def quniform(low: float, high: float, q: float) -> Domain:
    return Domain("quniform", (low, high, q))


def choice(options: list[Any] | tuple[Any, ...]) -> Domain:
    return Domain("choice", (tuple(options),))


def as_domain(value: Any) -> Domain | Any:
    """A :class:`Domain` for a tagged dict (``{"uniform": [0, 1]}``); other values unchanged."""
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, args), = value.items()
        if kind in DOMAIN_KINDS:
            if kind == "choice":
                return choice(args)
            if not isinstance(args, (list, tuple)):
                raise CandidateError(f"{kind} needs a list of bounds, got {args!r}")
            return Domain(kind, tuple(args))
    return value


def is_ray_domain(value: Any) -> bool:
    return type(value).__module__.startswith("ray.tune.search")


@dataclass(frozen=True)
class ModelExperiment:
    """One candidate: a name, an estimator class (or alias / dotted path), params, a budget.

    Args:
        name: Candidate name; records are ``exp-NNN-<name>-<trial>``.
        estimator: A scikit-learn-compatible class, an alias (``"xgboost"``) or dotted path.
        params: Fixed values and/or search-space entries.
        num_samples: Trials to run; defaults to 1 for fixed params, 8 with a search space.
        resources: ``{"cpu": c, "gpu": g}`` per trial; fractional GPUs allowed.
        kind: ``candidate`` or ``baseline``.
    """

    name: str
    estimator: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    num_samples: int | None = None
    resources: Mapping[str, float] = field(default_factory=lambda: {"cpu": 1, "gpu": 0})
    kind: str = "candidate"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise CandidateError(f"a ModelExperiment needs a non-empty name, got {self.name!r}")
        params = {str(k): as_domain(v) for k, v in dict(self.params).items()}
        object.__setattr__(self, "params", MappingProxyType(params))
        res = {"cpu": 1.0, "gpu": 0.0, **{str(k): v for k, v in dict(self.resources).items()}}
        unknown = set(res) - {"cpu", "gpu"}
        if unknown:
            raise CandidateError(f"{self.name}: resources take 'cpu' and 'gpu' only, got {sorted(unknown)}")
        for key, value in res.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise CandidateError(f"{self.name}: resources[{key!r}] must be a number >= 0, got {value!r}")
        if res["cpu"] <= 0 and res["gpu"] <= 0:
            raise CandidateError(f"{self.name}: a trial needs some cpu or gpu, got {res}")
        if res["gpu"] > 1 and res["gpu"] != int(res["gpu"]):
            raise CandidateError(f"{self.name}: a fractional gpu share must be <= 1, got {res['gpu']}")
        object.__setattr__(self, "resources", MappingProxyType(res))
        n = self.num_samples
        if n is None:
            n = DEFAULT_SAMPLES_WITH_SPACE if self.has_search_space else 1
        if not isinstance(n, int) or n < 1:
            raise CandidateError(f"{self.name}: num_samples must be an integer >= 1, got {self.num_samples!r}")
        object.__setattr__(self, "num_samples", n)
        if self.kind not in ("candidate", "baseline"):
            raise CandidateError(f"{self.name}: kind must be 'candidate' or 'baseline', got {self.kind!r}")

    @property
    def search_space(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if isinstance(v, Domain) or is_ray_domain(v)}

    @property
    def fixed_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in self.search_space}

    @property
    def has_search_space(self) -> bool:
        return bool(self.search_space)


def estimator_path(estimator: Any) -> str:
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


def cache_key(*, candidate: str, fingerprint: str, estimator: Any, params: Mapping[str, Any], cv: str,
              version: str, metric: str) -> str:
    """The identity of a trial for the result cache: same candidate, data, estimator, params, CV, code."""
    payload = json.dumps({"candidate": candidate, "data": fingerprint, "estimator": estimator_path(estimator),
                          "params": params,
                          "cv": cv, "version": version, "metric": metric}, sort_keys=True, default=repr)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]
