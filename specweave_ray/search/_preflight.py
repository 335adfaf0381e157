"""What a sweep would refuse, checked before the pipeline writes anything.

Without it an unknown estimator, a misspelt parameter, a bad rule or ``gpu: 4`` surfaced only
once T-001 and T-002 had written records (or after a Ray sweep in which every trial failed on the
same ``TypeError``), leaving a half-made increment behind. Here each candidate is resolved and
constructed with its parameters (a search space at each end of its range and with every choice),
scikit-learn's own parameter constraints are checked, the baseline rule is parsed against the
data's columns, and the resources are checked against the cluster the sweep will use.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from specweave_ray import problems
from specweave_ray.candidates._rule import parse_rule, rule_columns
from specweave_ray.candidates.registry import resolve_estimator
from specweave_ray.exceptions import CandidateError
from specweave_ray.search import _ray
from specweave_ray.search.runner import _baselines
from specweave_ray.spec.config import SweepConfig, sweep_config
from specweave_ray.spec.experiment import ModelExperiment
from specweave_ray.spec.search_space import Domain

__all__ = ["preflight"]


def preflight(experiments: Sequence[ModelExperiment], X: Any, *, problem_type: str, baselines: bool = True,
              rule: str | None = None, seed: int = 0, sweep: SweepConfig | dict | None = None,
              cluster: bool = True) -> bool:
    """Check everything the sweeps of a run can refuse; with ``cluster``, connect to (or start) the
    Ray the sweeps will use and check each candidate's resources there (an embedded Ray starts in
    the background: the first sweep waits for it, see ``ensure_ray``).

    Returns:
        True when this call started Ray: the caller shuts it down once its sweeps are done (the
        sweeps reuse it instead of starting and stopping one each).

    Raises:
        CandidateError: An unknown estimator, parameter or value, or a rule that does not parse
            or reads a column the data lacks (named, with the candidate).
        SweepError: A candidate's trials fit on no node of the cluster.
    """
    problem = problems.get(problem_type)
    sweep_cfg = sweep_config(sweep)
    experiments = list(experiments)
    if rule is not None:
        _check_rule(rule, X)
    everything = (_baselines(problem, rule=rule, seed=seed) if baselines else []) + experiments
    for e in everything:
        check_candidate(e, problem_type=problem.name)
    if not cluster:
        return False
    # An embedded Ray starts in the background: T-001 and T-002 run while its processes start
    # (seconds); its resources are the ones asked for here, so its CPUs are checked without
    # waiting. GPUs Ray detects itself: a candidate that asks for one waits for Ray's own count.
    started = _ray.ensure_ray(address=sweep_cfg.address, num_cpus=sweep_cfg.num_cpus, background=True)
    try:
        # with their classes, as the sweep checks them (a local forecaster's trial needs one-CPU bundles only)
        resolved = [replace(e, estimator=resolve_estimator(e.estimator, problem_type=problem)) for e in everything]
        node = _ray.planned_node()
        if node is not None and node["GPU"] is None and any(float(e.resources["gpu"]) > 0 for e in resolved):
            node = None
        if node is None:
            _ray.wait_for_ray()
        _ray.check_resources(resolved, autoscale=sweep_cfg.autoscale, pending_timeout_s=sweep_cfg.pending_timeout_s,
                             nodes=None if node is None else [{"CPU": node["CPU"], "GPU": node["GPU"] or 0.0}])
    except BaseException:
        if started:
            _ray.shutdown()
        raise
    return started


def check_candidate(e: ModelExperiment, *, problem_type: str) -> None:
    """Resolve ``e``'s estimator and build it with each set of parameters its trials can get."""
    cls = resolve_estimator(e.estimator, problem_type=problem_type)
    known = _parameters(cls)
    if known is not None:
        for key, value in e.params.items():
            if key not in known:
                near = difflib.get_close_matches(key, sorted(known), n=1)
                raise CandidateError(
                    f"candidate {e.name!r}: {cls.__name__} has no parameter {key!r} (given {_show(value)})"
                    + (f"; did you mean {near[0]!r}?" if near else f"; it takes {', '.join(sorted(known))}"))
    for params in _settings(e):
        try:
            est = cls(**params)
            if hasattr(type(est), "_parameter_constraints"):  # scikit-learn's own checks of values
                est._validate_params()
        except (TypeError, ValueError) as err:
            shown = ", ".join(f"{k}={_show(v)}" for k, v in params.items() if k in e.params)
            raise CandidateError(f"candidate {e.name!r}: {cls.__name__}({shown}) is refused: "
                                 f"{str(err).splitlines()[0]}") from err


def _check_rule(rule: str, X: Any) -> None:
    tree = parse_rule(rule)
    columns = [str(c) for c in getattr(X, "columns", [])]
    missing = [c for c in rule_columns(tree) if c not in columns and c not in ("True", "False", "None")]
    if columns and missing:
        raise CandidateError(f"baselines.rule {rule!r} reads {', '.join(map(repr, missing))}, which the data lacks "
                             f"(columns: {', '.join(columns)})")


def _parameters(cls: type) -> set[str] | None:
    """The constructor's parameter names, or None when it takes ``**kwargs`` (XGBoost and
    LightGBM pass unknown names on to the booster, which has aliases of its own)."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return {n for n, p in signature.parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _settings(e: ModelExperiment) -> list[dict[str, Any]]:
    """The fixed parameters with each search-space entry at its ends (``randint``'s high is
    exclusive) and at every choice, one entry varied at a time."""
    base = {k: _low(v) if isinstance(v, Domain) else v for k, v in e.params.items()}
    out = [base]
    for key, dom in e.search_space.items():
        if not isinstance(dom, Domain):
            continue
        for value in _ends(dom):
            if value != base[key]:
                out.append({**base, key: value})
    return out


def _low(dom: Domain) -> Any:
    return _ends(dom)[0]


def _ends(dom: Domain) -> list[Any]:
    if dom.kind == "choice":
        return list(dom.args[0])
    low, high = dom.args[0], dom.args[1]
    return [low, high - 1] if dom.kind in ("randint", "lograndint") else [low, high]


def _show(value: Any) -> str:
    return repr(value.to_json()) if isinstance(value, Domain) else repr(value)
