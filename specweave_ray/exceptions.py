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
    │   └── TrialFault                  one trial's process died, went over its memory limit
    │                                   or its time limit (carries the cause and the node)
    ├── StorageError(RuntimeError)      a URI root cannot be opened, read or written
    ├── UsageError(ValueError)          a command line that cannot be run as given
    ├── BadRequest(ValueError)          an HTTP request the client must fix (carries its status)
    ├── MissingDependencyError(ImportError)  an optional package is not installed
    └── FastPathUnsupported(NotImplementedError)  internal: the Predictor's fast single-row
                                        encoder cannot reproduce a transformer step (it falls
                                        back to scikit-learn; never raised to a caller)

The CLI turns any ``SpecweaveError`` into a one-line message and exit status 2. Serving answers
with :func:`http_status`: the client's mistakes are 4xx with the message; everything else,
including a builtin ``ValueError`` or ``KeyError`` raised while scoring, is a 500 whose body
says only that the server failed (the traceback goes to the server's log).
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


class TrialFault(SweepError):
    """One trial's process died (exit code, signal), went over its memory or time limit.

    ``cause`` is ``{"kind": "exit"|"signal"|"oom"|"timeout", ...}`` (exit code, signal name,
    limit) and ``node`` the Ray node id it ran on; both travel to the driver with the error.
    """

    def __init__(self, message: str, *, cause: dict | None = None, node: str | None = None) -> None:
        super().__init__(message)
        self.cause = dict(cause or {})
        self.node = node

    def __reduce__(self) -> tuple:  # pickled by Ray from the worker to the driver
        return (_trial_fault, (str(self), self.cause, self.node))


def _trial_fault(message: str, cause: dict, node: str | None) -> TrialFault:
    return TrialFault(message, cause=cause, node=node)


class StorageError(SpecweaveError, RuntimeError):
    """A URI root cannot be opened, read or written."""


class UsageError(SpecweaveError, ValueError):
    """A command line that cannot be run as given (conflicting or missing options)."""


class FastPathUnsupported(SpecweaveError, NotImplementedError):
    """The transformer holds a step the fast encoder does not reproduce; the message says which."""


class BadRequest(SpecweaveError, ValueError):
    """An HTTP request the client must fix; ``status`` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        if not 400 <= status < 500:
            raise ValueError(f"a BadRequest is a 4xx, got {status}")
        super().__init__(message)
        self.status = status
        self.message = message


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


# Error class → HTTP status, looked up along the error's class hierarchy (most derived first).
# Only errors about what the client sent are 4xx; a class not reached here is a server fault.
HTTP_STATUS: dict[type[BaseException], int] = {
    BadRequest: 422,               # its own status (400, 413, 422) wins: see http_status
    DataError: 422,                # rows that do not match the model's schema
    IncrementNotFoundError: 404,
    SpecweaveError: 500,           # a broken package, config or store on the server's side
}


def http_status(err: BaseException) -> int:
    """The HTTP status that answers ``err``: :data:`HTTP_STATUS` by class, 500 for the rest.

    Example:
        >>> http_status(DataError("row 0 field 'amount' is missing")), http_status(KeyError("x"))
        (422, 500)
    """
    if isinstance(err, BadRequest):
        return err.status
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
