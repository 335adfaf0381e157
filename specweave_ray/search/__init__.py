"""The search stage (T-003…T-005): candidates → Ray Tune trials → coordinator → records.

``runner``: :func:`run_experiments` and :class:`SweepResults`. ``_candidates``: which
candidates a sweep runs. ``trial``: the body of one trial (cross-validation, staged fitting
for ASHA) and the refit. ``coordinator``: the driver-side recorder of every trial, the result
cache and the comparison. ``_cache``: a trial's cache identity. ``_preflight``: what a sweep would refuse, checked
before the pipeline writes anything. ``_ray``: everything that
touches Ray Tune, and the only module that imports it.
"""

from specweave_ray.search._candidates import candidates_for, deepen
from specweave_ray.search._preflight import preflight
from specweave_ray.search._ray import shutdown as shutdown_ray
from specweave_ray.search.coordinator import (
    Coordinator,
    Progress,
    TrialResult,
    best_per_candidate,
    render_comparison,
    write_comparison,
)
from specweave_ray.search.runner import SweepResults, run_experiments
from specweave_ray.spec.experiment import ModelExperiment

__all__ = [
    "Coordinator", "ModelExperiment", "Progress", "SweepResults", "TrialResult",
    "best_per_candidate", "candidates_for", "deepen", "preflight", "render_comparison", "run_experiments",
    "shutdown_ray", "write_comparison",
]
