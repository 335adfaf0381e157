"""The one search-space grammar: fixed values, typed domains, and the tagged dicts configs write.

``{"loguniform": [0.001, 1]}`` in a YAML config, ``loguniform(0.001, 1)`` in Python and a Ray Tune
domain all mean the same entry; :func:`as_domain` reads the first into the second. Only
``search/_ray`` turns domains into Ray objects.

>>> as_domain({"randint": [2, 8]}) == randint(2, 8)
True
>>> loguniform(1e-3, 1).to_json()
{'loguniform': [0.001, 1]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from specweave_ray.exceptions import CandidateError

__all__ = ["DOMAIN_KINDS", "Domain", "as_domain", "choice", "is_ray_domain", "lograndint", "loguniform",
           "quniform", "randint", "uniform"]

DOMAIN_KINDS = {"uniform": 2, "loguniform": 2, "randint": 2, "lograndint": 2, "quniform": 3, "choice": 1}


@dataclass(frozen=True)
class Domain:
    """A search-space entry: ``kind`` is uniform, loguniform, randint or lograndint (high exclusive),
    quniform or choice."""

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
            if self.kind in ("loguniform", "lograndint") and low <= 0:
                raise CandidateError(f"{self.kind} needs low > 0, got {low!r}")

    def to_json(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.args[0]) if self.kind == "choice" else list(self.args)}


def uniform(low: float, high: float) -> Domain:
    return Domain("uniform", (low, high))


def loguniform(low: float, high: float) -> Domain:
    return Domain("loguniform", (low, high))


def randint(low: int, high: int) -> Domain:
    """Integers in ``[low, high)`` (Ray Tune's convention)."""
    return Domain("randint", (low, high))


def lograndint(low: int, high: int) -> Domain:
    """Integers in ``[low, high)`` drawn on a log scale (Ray Tune's ``lograndint``): as many draws
    between 4 and 8 as between 32 and 64, for sizes such as tree counts and leaves."""
    return Domain("lograndint", (low, high))


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
