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
from specweave_ray.spec import Spec
from specweave_ray.workspace.increment import Increment, list_increments
from specweave_ray.workspace.records import list_records, track_experiment

__all__ = ["ReleaseGate", "release_gate", "write_ab_plan"]

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


def write_ab_plan(inc: Increment, spec: Spec, *, y_train: Any, target: str,
                  comparison: Mapping[str, Any], mde_relative: float, daily_traffic: int,
                  traffic_split: float, fingerprint: str) -> Path:
    """``ab-test-plan.md`` with the sample size computed from the baseline the problem type
    measures on the training target; also kept in an ``ab-test-plan`` record. Returns its path."""
    previous = [i for i in list_increments(inc.root) if i.number < inc.number]
    control = (f"the model of {previous[-1].id}" if previous else
               f"today's process, approximated by the best baseline ({comparison.get('best_baseline')})")
    packages = list_packages(inc)
    candidate = (f"model-v{packages[-1]['version']} ({comparison.get('best_candidate')})" if packages
                 else str(comparison.get("best_candidate")))
    guardrails = [t.render() for t in spec.targets if t.metric in _GUARDRAILS]
    baseline, metric = problems.get(spec.problem_type).ab_inputs(y_train, target=target)
    text = render_ab_plan(increment_id=inc.id, problem_type=spec.problem_type, control=control,
                          candidate=candidate, primary_metric=metric, mde_relative=mde_relative,
                          daily_traffic=daily_traffic, traffic_split=traffic_split,
                          guardrails=guardrails, **baseline)
    path = atomic_write_text(inc.path / "ab-test-plan.md", text)
    with track_experiment("ab-test-plan", increment=inc, kind="ab-plan",
                          meta={"data_fingerprint": fingerprint}) as exp:
        exp.log_params({"control": control, "candidate": candidate, "primary_metric": metric,
                        "mde_relative": mde_relative, "daily_traffic": daily_traffic})
        exp.save_report("ab-test-plan.md", text)
    return path
