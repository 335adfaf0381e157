"""Errors raised by specweave-ray.

Every error is a :class:`SpecweaveError` and also the builtin it refines, so callers may catch
either::

    SpecweaveError
    ├── SpecError(ValueError)           spec.md cannot be read or a target line is unreadable
    ├── ConfigError(ValueError)         a pipeline config is invalid (names the field)
    ├── IncrementError(ValueError)      bad increment name/id, path escaping the root, duplicate
    │   └── IncrementNotFoundError(LookupError)
    ├── RecordError(RuntimeError)       an experiment record cannot be written or read
    ├── DataError(ValueError)           data cannot be loaded or does not match its schema
    ├── CandidateError(ValueError)      a candidate/estimator is invalid or cannot be built
    ├── SweepError(RuntimeError)        the Ray Tune sweep cannot run (resources, cluster)
    └── MissingDependencyError(ImportError)  an optional package is not installed

The CLI turns any ``SpecweaveError`` into a one-line message and exit status 2.
"""

from __future__ import annotations


class SpecweaveError(Exception):
    """Root of every error this package raises on purpose."""


class SpecError(SpecweaveError, ValueError):
    """``spec.md`` is missing, or a line of its Success Criteria cannot be read."""


class ConfigError(SpecweaveError, ValueError):
    """A pipeline config is invalid; the message names the field, rule and value."""


class IncrementError(SpecweaveError, ValueError):
    """An increment name, id or path is invalid or already taken."""


class IncrementNotFoundError(IncrementError, LookupError):
    """No increment matches the id, number or path given."""


class RecordError(SpecweaveError, RuntimeError):
    """An experiment record cannot be created, written or read."""


class DataError(SpecweaveError, ValueError):
    """Data cannot be loaded, or does not satisfy its schema."""


class CandidateError(SpecweaveError, ValueError):
    """A candidate model (estimator class, params, search space) is invalid."""


class SweepError(SpecweaveError, RuntimeError):
    """The Ray Tune sweep cannot be started or completed."""


class MissingDependencyError(SpecweaveError, ImportError):
    """An optional dependency is needed for this feature and is not installed."""


def require(module: str, *, extra: str | None = None, feature: str = "this feature"):
    """Import ``module`` or raise :class:`MissingDependencyError` with the pip hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        pkg = f"specweave-ray[{extra}]" if extra else module.split(".")[0]
        raise MissingDependencyError(
            f"{feature} needs the '{module}' package, which is not installed: "
            f"pip install {pkg}"
        ) from err
