"""The registry of problem types: names and aliases → :class:`ProblemType` instances.

Planned types (named in the workflow, not built yet) are known by name so that a spec or a
command naming one is refused as "not available yet", never as a typo — and before anything
is written.
"""

from __future__ import annotations

import re
from typing import Any

from specweave_ray.exceptions import ConfigError
from specweave_ray.problems._base import ProblemType

_TYPES: dict[str, ProblemType] = {}
_PLANNED: dict[str, tuple[tuple[str, ...], str]] = {
    "recommendation": (("recommender", "recommendations", "recsys", "recommender system"),
                       "recommendation (per-user splits, ranking metrics, implicit ALS)"),
}


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", re.sub(r"\s*\(.*$", "", str(text)).strip().lower())


def register(problem: ProblemType) -> ProblemType:
    """Add a problem type; its name and aliases must not be taken.

    Raises:
        ConfigError: a name or alias already names another type.
    """
    for spelling in (problem.name, *problem.aliases):
        owner = _lookup(spelling, exact=True)
        if owner is not None and owner != problem.name:
            raise ConfigError(f"problem type {problem.name!r}: {spelling!r} already names {owner!r}")
    _TYPES[problem.name] = problem
    _PLANNED.pop(problem.name, None)  # a planned type that lands replaces its placeholder
    return problem


def _lookup(text: str, *, exact: bool = False) -> str | None:
    key = _key(text)
    for name, problem in _TYPES.items():
        if key in {_key(s) for s in (name, *problem.aliases)}:
            return name
    for name, (aliases, _) in _PLANNED.items():
        if key in {_key(s) for s in (name, *aliases)}:
            return name
    if exact:
        return None
    # "binary classification", "ridge regression": a phrase ending in a type's name
    for name in _TYPES:
        if key.endswith(_key(name)):
            return name
    return None


def names() -> tuple[str, ...]:
    """The available problem types, in registration order."""
    return tuple(_TYPES)


def planned() -> tuple[str, ...]:
    """Problem types known by name that are not available yet."""
    return tuple(_PLANNED)


def known_text() -> str:
    """The available types with their aliases, for error messages."""
    return "; ".join(f"{p.name} (also: {', '.join(p.aliases)})" if p.aliases else p.name
                     for p in _TYPES.values())


def lookup(text: str) -> str | None:
    """The type a phrase names, available or planned (``"Time series"`` → ``timeseries``), or
    ``None``; it never raises, so a spec line can ask whether a phrase is a problem type.

    Example:
        >>> lookup("Binary classification"), lookup("Time series"), lookup("precision")
        ('classification', 'timeseries', None)
    """
    return _lookup(text) if isinstance(text, str) and text.strip() else None


def resolve(text: str) -> str:
    """The canonical name a spelling means (``"Binary classification"`` → ``classification``).

    Raises:
        ConfigError: unknown, or planned but not available yet.
    """
    return get(text).name


def get(name: str | ProblemType) -> ProblemType:
    """The problem type a name or alias means.

    Raises:
        ConfigError: unknown (the message lists the known types and their aliases), or a
            planned type that is not available yet.

    Example:
        >>> get("Binary").name, get("regression").default_metric
        ('classification', 'rmse')
    """
    if isinstance(name, ProblemType):
        return name
    found = _lookup(name) if isinstance(name, str) else None
    if found in _TYPES:
        return _TYPES[found]
    if found in _PLANNED:
        raise ConfigError(f"problem type {found!r} is not available yet: {_PLANNED[found][1]} has "
                          f"no plug-in in this version; available: {', '.join(_TYPES)}")
    raise ConfigError(f"unknown problem type {name!r}; known: {known_text()}")


def infer(y: Any) -> ProblemType:
    """The first registered type whose :meth:`ProblemType.fits` accepts ``y``.

    Raises:
        ConfigError: no type fits.
    """
    for problem in _TYPES.values():
        if problem.fits(y):
            return problem
    raise ConfigError(f"cannot tell the problem type from the target; give one of {', '.join(_TYPES)}")
