"""The evaluate stage (T-006): held-out metrics with bootstrap CIs, threshold, errors, plots,
and the gate of spec targets.

``_scores``: point estimates (scikit-learn), :func:`bootstrap_ci`, :func:`tune_threshold`,
:func:`error_analysis`, :func:`write_plots`. ``_bootstrap`` and ``_plots``: their private
helpers. ``holdout``: the T-006 stage. ``gate``: each spec target met, not met or not measured.
What is scored (probabilities or values) is the problem type's ``output``.
"""

from specweave_ray.evaluate._forecast import CONFORMAL_WINDOWS
from specweave_ray.evaluate._scores import (
    ThresholdChoice,
    bootstrap_ci,
    error_analysis,
    evaluate,
    render_report,
    score,
    tune_threshold,
    write_plots,
)
from specweave_ray.evaluate.gate import (
    MET,
    NO_TARGETS,
    NOT_MEASURED,
    NOT_MET,
    GateRow,
    check_targets,
    gate_json,
    gate_passed,
    gate_verdict,
    lift_metrics,
    render_gate,
)
from specweave_ray.evaluate.holdout import evaluate_holdout

__all__ = ["CONFORMAL_WINDOWS",
    "MET", "NOT_MEASURED", "NOT_MET", "NO_TARGETS", "GateRow", "ThresholdChoice", "bootstrap_ci",
    "check_targets", "error_analysis", "evaluate", "evaluate_holdout", "gate_json",
    "gate_passed", "gate_verdict", "lift_metrics", "render_gate", "render_report", "score", "tune_threshold",
    "write_plots",
]
