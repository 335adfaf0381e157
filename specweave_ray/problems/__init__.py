"""Problem types as plug-ins: the only code that knows what a problem type's name means.

Each module here implements :class:`ProblemType` for one kind of problem and registers it.
Stages ask ``problems.get(name)`` and use its declarations and methods; none of them compares a
problem-type name. Adding a type is one module here plus its templates (``ARCHITECTURE.md``).

>>> from specweave_ray import problems
>>> problems.names()
('classification', 'regression', 'recommendation', 'timeseries')
>>> problems.get("binary").metric("auc").name
'roc_auc'
"""

from __future__ import annotations

from specweave_ray.problems._base import ProblemType
from specweave_ray.problems._registry import (
    get,
    infer,
    known_text,
    lookup,
    names,
    planned,
    register,
    resolve,
)
from specweave_ray.problems.classification import Classification
from specweave_ray.problems.recommendation import Recommendation
from specweave_ray.problems.regression import Regression
from specweave_ray.problems.timeseries import TimeSeries

__all__ = ["ProblemType", "get", "infer", "known_text", "lookup", "names", "planned", "register", "resolve"]

register(Classification())
register(Regression())
register(Recommendation())
register(TimeSeries())
