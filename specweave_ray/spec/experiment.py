"""``ModelExperiment``: one candidate model family with fixed params or a search space.

Search-space entries are Ray Tune domains (``tune.loguniform(1e-3, 1)``), the small typed
wrappers below (``loguniform(1e-3, 1)``), or the tagged dicts configs use
(``{"loguniform": [0.001, 1]}``). Only :mod:`specweave_ray.search._ray.tune` turns them into Ray objects.

>>> from sklearn.linear_model import LogisticRegression
>>> from specweave_ray.spec.search_space import loguniform
>>> exp = ModelExperiment("logistic", LogisticRegression, {"C": loguniform(1e-3, 10)})
>>> exp.has_search_space, exp.num_samples
(True, 8)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from specweave_ray.exceptions import CandidateError
from specweave_ray.spec.search_space import DOMAIN_KINDS, Domain, as_domain, is_ray_domain

__all__ = ["ModelExperiment"]

DEFAULT_SAMPLES_WITH_SPACE = 8
_CONFIG_KEYS = ("name", "estimator", "params", "num_samples", "resources")


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

    @classmethod
    def from_config(cls, raw: Any) -> ModelExperiment:
        """A config's candidate (``{name, estimator, params, num_samples, resources}``; search
        spaces as tagged dicts) as a ModelExperiment.

        Raises:
            CandidateError: not a mapping, an unknown key, a missing name or estimator, or an
                invalid value; names the candidate and the key.

        Example:
            >>> ModelExperiment.from_config({"name": "ridge", "estimator": "ridge",
            ...                              "params": {"alpha": {"loguniform": [0.01, 10]}}}).num_samples
            8
        """
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, Mapping):
            raise CandidateError(f"a candidate is a mapping with keys {', '.join(_CONFIG_KEYS)}, "
                                 f"got {type(raw).__name__}")
        name = raw.get("name")
        unknown = sorted(set(map(str, raw)) - set(_CONFIG_KEYS))
        if unknown:
            raise CandidateError(f"candidate {name!r}: unknown key(s) {unknown}; "
                                 f"use {', '.join(_CONFIG_KEYS)}")
        estimator = raw.get("estimator")
        if not isinstance(estimator, str) or not estimator.strip():
            raise CandidateError(f"candidate {name!r}: estimator must be an alias or a dotted class "
                                 f"path, got {estimator!r}")
        params = raw.get("params") or {}
        if not isinstance(params, Mapping):
            raise CandidateError(f"candidate {name!r}: params must be a mapping, got {params!r}")
        for key, value in params.items():
            if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) not in DOMAIN_KINDS:
                raise CandidateError(f"candidate {name!r}: param {key!r}: unknown search-space kind "
                                     f"{next(iter(value))!r} (use one of {', '.join(DOMAIN_KINDS)})")
            try:
                as_domain(value)
            except CandidateError as err:
                raise CandidateError(f"candidate {name!r}: param {key!r}: {err}") from err
        return cls(name, estimator, params, num_samples=raw.get("num_samples"),
                   resources=raw.get("resources") or {"cpu": 1, "gpu": 0})

    def to_config(self) -> dict[str, Any]:
        """The config form :meth:`from_config` reads back (domains as tagged dicts)."""
        estimator = self.estimator if isinstance(self.estimator, str) else (
            f"{self.estimator.__module__}.{self.estimator.__qualname__}")
        return {"name": self.name, "estimator": estimator,
                "params": {k: v.to_json() if isinstance(v, Domain) else v for k, v in self.params.items()},
                "num_samples": self.num_samples, "resources": dict(self.resources)}
