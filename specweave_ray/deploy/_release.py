"""T-008 and T-009 as one call each: the release gate of a package, and the A/B test plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specweave_ray import problems
from specweave_ray._fs import atomic_write_json, atomic_write_text
from specweave_ray.deploy.abtest import render_ab_plan
from specweave_ray.deploy.bench import run_bench
from specweave_ray.deploy.package import list_packages, mark
from specweave_ray.evaluate.gate import GateRow, check_targets, gate_json, gate_verdict, render_gate
from specweave_ray.exceptions import RecordError
from specweave_ray.metrics import get_metric
from specweave_ray.spec import Spec
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records, track_experiment

__all__ = ["ReleaseGate", "ab_control", "parent_increment", "release_gate", "write_ab_plan"]

_GUARDRAILS = ("latency_p99", "latency_p95", "latency_p50", "throughput", "precision", "recall")


@dataclass(frozen=True)
class ReleaseGate:
    """What T-008 decided: every target's row, the verdict (``passed``, ``failed`` or ``no
    targets``; only ``passed`` sets ``passed``), and the records it wrote."""

    rows: list[GateRow]
    passed: bool
    version: int
    benchmark_record: str
    gate_record: str
    verdict: str = "failed"


def release_gate(inc: Increment, spec: Spec, *, version: int, fingerprint: str,
                 total_requests: int = 3000) -> ReleaseGate:
    """Benchmark package ``version`` in process and over HTTP on loopback, gate every spec target
    (held-out metrics of the newest evaluation + latency/throughput), and mark the package
    ``passed`` or ``failed``; writes a ``deployment-gate`` record."""
    bench_id, bench_metrics, _ = run_bench(inc, version=version, http=True, engine="local",
                                           total_requests=total_requests)
    evaluation = list_records(inc, kind="evaluation")[-1]
    rows = check_targets(spec.targets, {**evaluation.metrics, **bench_metrics})
    verdict = gate_verdict(rows)
    passed = verdict == "passed"
    # a spec with no targets checked nothing: the package stays a candidate, neither passed nor failed
    mark(inc, version, status=verdict if verdict in ("passed", "failed") else "candidate")
    with track_experiment("deployment-gate", increment=inc, kind="gate",
                          meta={"data_fingerprint": fingerprint, "package": f"model-v{version}",
                                "evaluation_record": evaluation.id, "benchmark_record": bench_id}) as exp:
        exp.log_params({"package": f"model-v{version}", "passed": passed, "verdict": verdict})
        exp.log_metrics({"targets": len(rows), "met": sum(r.status == "met" for r in rows),
                         "not_met": sum(r.status == "not met" for r in rows),
                         "not_measured": sum(r.status == "not measured" for r in rows)})
        exp.save_report("gate.md", render_gate(rows))
        atomic_write_json(exp.path / "gate.json", gate_json(rows))
    return ReleaseGate(rows, passed, version, bench_id, exp.id, verdict)


def parent_increment(inc: Increment) -> Increment | None:
    """The increment this one follows (its chain's production model is the A/B control): the
    optional ``parent`` field (an increment id) of ``<increment>/metadata.json``; None without."""
    return inc.parent()


def ab_control(inc: Increment, *, metric: str) -> tuple[str, dict[str, float]]:
    """(description, held-out metrics) of the A/B control: the parent's production model (its
    newest passed package, else its newest evaluation), else this increment's best baseline by
    ``metric`` (random baselines by their expected score).

    Raises:
        RecordError: Neither a parent evaluation nor a baseline evaluation to measure it by.
    """
    parent = parent_increment(inc)
    if parent is not None:
        evaluations = {r.id: r for r in list_records(parent, kind="evaluation")}
        passed = [m for m in list_packages(parent) if m.get("status") == "passed"]
        package = next((m for m in reversed(passed) if m.get("evaluation_record") in evaluations), None)
        if package is not None:
            return (f"the production model of {parent.id}, model-v{package['version']} "
                    f"({package.get('candidate')})", dict(evaluations[package["evaluation_record"]].metrics))
        if evaluations:
            last = list(evaluations.values())[-1]
            return f"the evaluated model of {parent.id} ({last.meta.get('candidate')})", dict(last.metrics)
    lower = get_metric(metric).mode == "min"
    latest = {r.meta.get("candidate"): r for r in list_records(inc, kind="baseline-evaluation")}
    scored = [(name, r) for name, r in latest.items() if metric in r.metrics]
    if not scored:
        raise RecordError(f"{inc.id}: the A/B plan needs a measured control: no parent increment with an "
                          f"evaluation and no baseline evaluation with {metric}; run T-006 with baselines enabled")
    name, rec = (min if lower else max)(scored, key=lambda item: item[1].metrics[metric])
    draws = rec.metrics.get("expected_over_draws")
    how = f", expected over {int(draws)} seeds" if draws else ""
    why = "no parent increment" if parent is None else f"{parent.id} has no evaluated model"
    return (f"today's process, approximated by the best baseline {name} ({metric} "
            f"{rec.metrics[metric]:.4g}{how}; {why})", dict(rec.metrics))


def write_ab_plan(inc: Increment, spec: Spec, *, target: str, comparison: Mapping[str, Any],
                  mde_relative: float, daily_traffic: int, traffic_split: float, fingerprint: str) -> Path:
    """``ab-test-plan.md``: the control is the production model of the increment's chain (see
    :func:`ab_control`), the baseline is the control's measured rate (or mean) of the metric the
    problem type names, the direction is that metric's, and the sample size follows from them;
    also kept in an ``ab-test-plan`` record. Returns its path."""
    control, measured = ab_control(inc, metric=comparison.get("metric") or spec.primary_metric)
    packages = list_packages(inc)
    candidate = (f"model-v{packages[-1]['version']} ({comparison.get('best_candidate')})" if packages
                 else str(comparison.get("best_candidate")))
    guardrails = [t.render() for t in spec.targets if t.metric in _GUARDRAILS]
    baseline, metric, lower = problems.get(spec.problem_type).ab_inputs(measured, target=target)
    mde = -abs(mde_relative) if lower else abs(mde_relative)  # the candidate must move it the good way
    text = render_ab_plan(increment_id=inc.id, problem_type=spec.problem_type, control=control,
                          candidate=candidate, primary_metric=metric, mde_relative=mde,
                          daily_traffic=daily_traffic, traffic_split=traffic_split,
                          guardrails=guardrails, **baseline)
    path = atomic_write_text(inc.path / "ab-test-plan.md", text)
    with track_experiment("ab-test-plan", increment=inc, kind="ab-plan",
                          meta={"data_fingerprint": fingerprint}) as exp:
        exp.log_params({"control": control, "candidate": candidate, "primary_metric": metric,
                        "mde_relative": mde, "daily_traffic": daily_traffic,
                        "direction": "decrease" if lower else "increase"})
        exp.log_metrics({k: v for k, v in baseline.items() if isinstance(v, float)})
        exp.save_report("ab-test-plan.md", text)
    return path
