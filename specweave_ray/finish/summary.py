"""``specweave-ray done ID``: refuse unless ``validate`` passes (or ``force``, which is recorded),
then write ``COMPLETION-SUMMARY.md`` in the workflow's shape and ``completion.json`` (what
``status`` reads as the increment's state). Everything comes from the records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from specweave_ray._fs import atomic_write_json, atomic_write_text, folder_lock, read_json
from specweave_ray.evaluate.gate import MET
from specweave_ray.exceptions import RecordError
from specweave_ray.finish.validate import FAIL, Check, Evidence, checks_json, gather, validate
from specweave_ray.metrics import get_metric
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import Record

__all__ = ["Completion", "complete", "completion_summary"]

SUMMARY = "COMPLETION-SUMMARY.md"
COMPLETION = "completion.json"
# the targets the workflow lists under "Deployment Ready", in this order, then the rest
_READINESS = ("latency", "throughput")


@dataclass(frozen=True)
class Completion:
    """What ``done`` did: the checks, whether it was forced past failing ones, what it wrote."""

    checks: list[Check]
    forced: bool
    summary: Path | None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]


def complete(inc: Increment, *, force: bool = False) -> Completion:
    """Validate, then (when every check passes, or ``force``) write the summary and mark the
    increment done. A refused ``done`` writes nothing.

    Raises:
        RecordError: No records, or records too incomplete to summarise (no comparison).
    """
    evidence = gather(inc)
    checks = validate(inc, evidence)
    failed = [c for c in checks if c.status == FAIL]
    if failed and not force:
        return Completion(checks, False, None)
    if not evidence.comparison.get("rows"):
        raise RecordError(f"{inc.experiments_dir / 'comparison.json'} is missing or empty: no sweep "
                          f"finished, so there is nothing to summarise")
    text = completion_summary(evidence, checks, forced=bool(failed))
    with folder_lock(inc.path):
        path = atomic_write_text(inc.path / SUMMARY, text)
        atomic_write_json(inc.path / COMPLETION, {
            "increment": inc.id, "done_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "forced": bool(failed), "failed_checks": [c.name for c in failed],
            "package": f"model-v{evidence.package['version']}" if evidence.package else None,
            "checks": checks_json(checks)})
    return Completion(checks, bool(failed), path)


def completion_summary(ev: Evidence, checks: Sequence[Check], *, forced: bool) -> str:
    """The summary: experiments run, the best model, deployment readiness, the A/B plan, the checks."""
    spec = ev.spec
    comp = ev.comparison
    metric = comp["metric"]
    head = f"## {spec.title} - COMPLETE" + (" (forced: validation failed)" if forced else "")
    lines = [head, "", f"Increment `{ev.inc.id}` ({spec.problem_type}); every figure below is read from "
             f"its records under `experiments/` and `models/`.", ""]
    lines += _experiments(ev, metric)
    lines += _best_model(ev)
    lines += _against_parent(ev, spec.primary_metric)
    lines += _readiness(ev, spec, checks)
    lines += ["### Validation", ""]
    for c in checks:
        lines.append(f"- {'✅' if c.passed else '❌'} {c.name}: {c.evidence}")
        lines.extend(f"  - {d}" for d in c.details)
    lines.append("")
    return "\n".join(lines)


def _experiments(ev: Evidence, metric: str) -> list[str]:
    runs = [r for r in ev.records if r.kind in ("baseline", "trial")]
    failed = [r for r in runs if r.status == "failed"]
    best = ev.comparison.get("best")
    lines = [f"### Experiments Run: {len(runs)}" + (f" ({len(failed)} failed)" if failed else ""), ""]
    for i, rec in enumerate(runs, 1):
        who = rec.meta.get("candidate") or rec.meta.get("name")
        kind = " baseline" if rec.kind == "baseline" else ""
        if rec.status == "failed":
            lines.append(f"{i}. {rec.id} ({who}{kind}): FAILED: {_reason(rec)}")
            continue
        value = rec.metrics.get(metric)
        shown = f"{metric}={value:.4f}" if value is not None else f"no {metric} (stopped early)"
        lines.append(f"{i}. {rec.id} ({who}{kind}): {shown}" + (" ✅ BEST" if rec.id == best else ""))
    return [*lines, ""]


def _best_model(ev: Evidence) -> list[str]:
    meta = ev.package
    if meta is None:
        return ["### Best Model", "", "No model was packaged.", ""]
    name = f"model-v{meta['version']}"
    held_out = _held_out_metrics(ev, meta)
    best = next((r for r in ev.records if r.id == ev.comparison.get("best")), None)
    lines = ["### Best Model", "",
             f"- Algorithm: {meta.get('candidate')} (`{meta.get('estimator')}`)",
             f"- Version: {name} (`models/{name}.metadata.json`, status {meta.get('status')})"
             + (f", registered as `{meta['mlflow']['model_uri']}`" if meta.get("mlflow") else ""),
             f"- Metrics (held-out test split, 95% CI): {held_out or 'not evaluated'}",
             f"- Hyperparameters: `{_params(meta.get('params') or {})}`"]
    if best is not None:
        fit = best.metrics.get("fit_time_s")
        lines.append(f"- Training time: {_duration(best.meta.get('duration_s'))} for the cross-validated trial "
                     f"{best.id}" + (f" ({fit:.3g} s a fit)" if fit is not None else ""))
    lines.append(f"- Model size: {_size(_package_bytes(ev.inc, meta))}")
    return [*lines, ""]


def _against_parent(ev: Evidence, primary: str) -> list[str]:
    """The parent increment's best model on this increment's test rows (T-006's parent.json)."""
    evaluation = ev.latest("evaluation")
    parent = read_json(evaluation.path / "parent.json") if evaluation is not None else None
    if not parent:
        return []
    lines = [f"### Against the parent increment {parent['increment']}", ""]
    if "error" in parent:
        return [*lines, f"Its best model was not scored on these test rows: {parent['error']}", ""]
    lines += [f"Its best model, {parent['candidate']} ({parent['record']}), on this increment's held-out test rows:", "",
              "| metric | this increment | parent | difference |", "| --- | --- | --- | --- |"]
    ours, theirs = evaluation.metrics, parent["metrics"]
    for name in [primary] + sorted(k for k in theirs if k != primary and k in ours and "_ci_" not in k
                                   and not k.startswith(("lift_", "n_", "tn", "tp", "fn", "fp"))):
        if name in ours and name in theirs:
            new, old = float(ours[name]), float(theirs[name])
            lines.append(f"| {name} | {new:.4g} | {old:.4g} | {new - old:+.4g} |")
    return [*lines, ""]


def _readiness(ev: Evidence, spec: Any, checks: Sequence[Check]) -> list[str]:
    rows = ev.gate_rows
    ordered = sorted(rows, key=lambda r: next((i for i, k in enumerate(_READINESS) if k in r["metric_key"]), 99))
    lines = ["### Deployment Ready", ""]
    for r in ordered:
        mark = "✅" if r["status"] == MET else "❌"
        lines.append(f"- {mark} {_label(r)}: {_value(r)} (target: {r['target']}){'' if r['status'] == MET else ' — ' + r['status']}")
    expl = ev.latest("explainability")
    explained = next((c for c in checks if c.name == "explainability"), None)
    if expl is not None and explained is not None:
        asked = [r.render() for r in spec.requirements if r.checked]
        lines.append(f"- {'✅' if explained.passed else '❌'} Explainability: {explained.evidence}"
                     + (f" (requirement: {'; '.join(asked)})" if asked else ""))
    else:
        lines.append("- ❌ Explainability: no explanations recorded")
    plan = ev.inc.path / "ab-test-plan.md"
    lines.append(f"- {'✅' if plan.is_file() else '❌'} A/B test plan documented"
                 + (f" (`{plan.name}`): {_plan_line(plan)}" if plan.is_file() else ""))
    return [*lines, ""]


# -- helpers -----------------------------------------------------------------------------------
def _held_out_metrics(ev: Evidence, meta: Mapping[str, Any]) -> str:
    """The held-out metrics that carry a CI: the primary metric and the spec's first, no lifts."""
    evaluation = next((r for r in reversed(ev.records) if r.kind == "evaluation"), None)
    metrics = evaluation.metrics if evaluation is not None else meta.get("metrics") or {}
    spec = ev.spec
    first = [spec.primary_metric, *(t.metric for t in spec.targets)]
    keys = [k for k in metrics if f"{k}_ci_low" in metrics and "lift_" not in k]
    keys.sort(key=lambda k: first.index(k) if k in first else len(first))
    return ", ".join(f"{k}={metrics[k]:.4g} [{metrics[f'{k}_ci_low']:.4g}, {metrics[f'{k}_ci_high']:.4g}]"
                     for k in keys[:8])


def _label(row: Mapping[str, Any]) -> str:
    key = row["metric_key"]
    if row.get("relative_to"):
        return f"Lift over {str(row['relative_to']).replace('_', ' ')}"
    if "latency" in key:
        return "Inference latency"
    if "throughput" in key:
        return "Throughput"
    try:
        return get_metric(row["metric"]).name
    except Exception:  # noqa: BLE001 - a lift or derived key: its own name
        return row["metric"]


def _value(row: Mapping[str, Any]) -> str:
    if row.get("value") is None:
        return "not measured"
    unit = row.get("unit") or ""
    text = f"{row['value']:.4g}{(' ' + unit) if unit else ''}"
    if row.get("ci_low") is not None:
        text += f", 95% CI [{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
    return text


def _plan_line(plan: Path) -> str:
    for line in plan.read_text(encoding="utf-8").splitlines():
        if line.startswith("- **Required:") or line.startswith("**Required"):
            return line.lstrip("- ").replace("**", "")
    return "hypothesis, sample size and stop rules"


def _reason(rec: Record) -> str:
    err = rec.meta.get("error") or {}
    if isinstance(err, Mapping) and err.get("message"):
        return f"{err.get('type', 'error')}: {str(err['message']).splitlines()[0][:160]}"
    note = rec.path / "notes.md"
    return note.read_text(encoding="utf-8").strip().splitlines()[-1][:160] if note.is_file() else "no reason recorded"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _package_bytes(inc: Increment, meta: Mapping[str, Any]) -> int:
    return sum((inc.models_dir / name).stat().st_size for name in (meta.get("files") or {})
               if (inc.models_dir / name).is_file())


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "unknown"
    s = float(seconds)
    return f"{s:.2f} s" if s < 60 else f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"
