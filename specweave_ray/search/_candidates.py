"""Which candidates a sweep runs: the config's, or the problem type's defaults, adapted to the
target by the problem type (class weights for rare positives)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from specweave_ray import problems
from specweave_ray.candidates.registry import resolve_estimator
from specweave_ray.problems import ProblemType
from specweave_ray.spec.experiment import ModelExperiment

__all__ = ["candidates_for", "deepen"]


def candidates_for(problem_type: str | ProblemType, configured: Sequence[ModelExperiment] | None = None,
                   y: Any = None) -> list[ModelExperiment]:
    """The candidates to sweep.

    Args:
        problem_type: The problem type (or its name).
        configured: The config's candidates; ``None`` takes the type's ``default_candidates``.
        y: The training target; when given, the type may adapt the candidates to it (each keeps
            the parameters the user gave).

    Example:
        >>> experiments = candidates_for("regression")
        >>> [e.name for e in experiments]
        ['ridge', 'xgboost', 'lightgbm', 'torch-mlp']
    """
    problem = problems.get(problem_type)
    if configured is None:
        experiments = [ModelExperiment.from_config(c) for c in problem.default_candidates]
    else:
        experiments = list(configured)
    if y is None:
        return experiments
    return problem.adjust_candidates(
        experiments, y, lambda estimator: resolve_estimator(estimator, problem_type=problem))


def deepen(experiments: Sequence[ModelExperiment], best: str | None, budget: int) -> list[ModelExperiment]:
    """T-005: the best candidate's search grows to ``budget`` trials (the same study goes on,
    earlier trials are its prior); the others keep theirs and are reused from the cache."""
    return [replace(e, num_samples=max(budget, e.num_samples)) if e.name == best and e.has_search_space
            else e for e in experiments]
