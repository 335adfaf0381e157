"""``specweave-ray validate ID``: is the increment done, by its records? Each check says pass, fail
or skip with the evidence it read; nothing is re-scored and nothing is written.

The checks are the workflow's ("experiments logged, model saved, metrics documented, model meets
success criteria"), each made concrete: tasks ticked, records complete, baselines and candidates,
the packaged model's hashes, every spec target measured, the targets met, explanations, the
benchmark, and MLflow holding the same runs as the folder.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from specweave_ray._fs import read_json
from specweave_ray.deploy._package_read import list_packages, verify_files
from specweave_ray.deploy._signing import verify
from specweave_ray.evaluate.gate import MET, NOT_MEASURED
from specweave_ray.exceptions import RecordError
from specweave_ray.spec import Spec
from specweave_ray.workspace import _mlflow
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import Record, list_records

__all__ = ["FAIL", "PASS", "SKIP", "Check", "Evidence", "checks_json", "gather", "render_checks", "validate",
           "validation_passed"]

PASS, FAIL, SKIP = "pass", "fail", "skip"
_EXP_DIR = re.compile(r"^exp-(\d+)(?:-.*)?$")
_FINAL = ("finished", "failed", "interrupted")  # interrupted: closed by Ctrl-C or a later run


@dataclass(frozen=True)
class Check:
    """One validation check: its name, pass/fail/skip, and the evidence (one line, then details)."""

    name: str
    status: str
    evidence: str
    details: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.status != FAIL


@dataclass(frozen=True)
class Evidence:
    """What the checks read, gathered once; ``done`` and ``sync-docs`` write their documents from it."""

    inc: Increment
    spec: Spec
    records: tuple[Record, ...]
    comparison: Mapping[str, Any]
    packages: tuple[Mapping[str, Any], ...]

    @property
    def package(self) -> Mapping[str, Any] | None:
        """The newest package (the one this increment's run built last)."""
        return self.packages[-1] if self.packages else None

    def latest(self, kind: str) -> Record | None:
        found = [r for r in self.records if r.kind == kind]
        return found[-1] if found else None

    @functools.cached_property
    def gate_rows(self) -> list[dict[str, Any]]:
        """The deployment gate's rows (held-out, benchmark and lift targets), else the evaluation's."""
        for kind in ("gate", "evaluation"):
            rec = self.latest(kind)
            if rec is not None and (rows := read_json(rec.path / "gate.json")) is not None:
                return list(rows)
        return []


def gather(inc: Increment) -> Evidence:
    """Read the increment's records, comparison and newest package.

    Raises:
        RecordError: The increment has no experiment records yet, or a record or the comparison
            is unreadable (named).
    """
    records = tuple(list_records(inc))
    if not records:
        raise RecordError(f"{inc.id} has no experiment records under {inc.experiments_dir}; "
                          f"run its tasks first: specweave-ray do {inc.id}")
    try:
        comparison = read_json(inc.experiments_dir / "comparison.json", {})
    except json.JSONDecodeError as err:
        raise RecordError(f"{inc.experiments_dir / 'comparison.json'}: unreadable JSON ({err})") from err
    return Evidence(inc, inc.spec(), records, comparison, tuple(list_packages(inc)))


def validate(inc: Increment, evidence: Evidence | None = None) -> list[Check]:
    """Every check, in the order the workflow names them."""
    ev = evidence or gather(inc)
    return [_tasks(ev), _records_complete(ev), _baselines_and_candidates(ev), _model_saved(ev),
            _targets_measured(ev), _criteria_met(ev), _explainability(ev), _benchmark(ev), _mlflow_mirror(ev)]


def validation_passed(checks: Sequence[Check]) -> bool:
    return all(c.passed for c in checks)


def render_checks(checks: Sequence[Check]) -> str:
    """Plain text, one line a check and its details indented (what ``validate`` prints in a pipe)."""
    mark = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}
    lines = []
    for c in checks:
        lines.append(f"{mark[c.status]}  {c.name}: {c.evidence}")
        lines.extend(f"      {d}" for d in c.details)
    failed = [c.name for c in checks if c.status == FAIL]
    lines.append(f"{len(checks) - len(failed)}/{len(checks)} checks pass"
                 + (f"; failing: {', '.join(failed)}" if failed else ""))
    return "\n".join(lines)


def checks_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [{**asdict(c), "details": list(c.details)} for c in checks]


# -- the checks --------------------------------------------------------------------------------
def _tasks(ev: Evidence) -> Check:
    tasks = ev.inc.tasks()
    if not tasks:
        return Check("tasks", FAIL, f"{ev.inc.tasks_path.name} lists no tasks")
    open_ = [t for t in tasks if not t.done and not t.skip_reason]
    skipped = [t for t in tasks if not t.done and t.skip_reason]
    details = tuple(f"{t.id} open: {t.title}" for t in open_) + tuple(
        f"{t.id} skipped: {t.skip_reason}" for t in skipped)
    done = len(tasks) - len(open_) - len(skipped)
    evidence = f"{done}/{len(tasks)} ticked" + (f", {len(skipped)} skipped with a reason" if skipped else "")
    return Check("tasks", FAIL if open_ else PASS, evidence + (f", {len(open_)} open" if open_ else ""), details)


def _records_complete(ev: Evidence) -> Check:
    problems: list[str] = []
    folders = sorted((p for p in ev.inc.experiments_dir.iterdir() if p.is_dir() and _EXP_DIR.match(p.name)),
                     key=lambda p: int(_EXP_DIR.match(p.name).group(1)))
    for folder in folders:
        missing = [n for n in ("meta.json", "params.json", "metrics.json") if not (folder / n).is_file()]
        if missing:
            problems.append(f"{folder.name}: missing {', '.join(missing)}")
    by_status: dict[str, int] = {}
    for rec in ev.records:
        by_status[str(rec.status)] = by_status.get(str(rec.status), 0) + 1
        if rec.status not in _FINAL:
            problems.append(f"{rec.id}: status {rec.status!r} (a record still running was never closed)")
        elif rec.status == "failed" and not (rec.meta.get("error") or (rec.path / "notes.md").is_file()):
            problems.append(f"{rec.id}: failed with no error or note saying why")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    return Check("experiments logged", FAIL if problems else PASS,
                 f"{len(folders)} record folders ({counts})", tuple(problems))


def _baselines_and_candidates(ev: Evidence) -> Check:
    finished = [r for r in ev.records if r.status == "finished"]
    baselines = sorted({str(r.meta.get("candidate")) for r in finished if r.kind == "baseline"})
    candidates = sorted({str(r.meta.get("candidate")) for r in finished
                         if r.kind == "trial" and r.meta.get("candidate_kind", "candidate") == "candidate"})
    missing = [w for w, names in (("baseline", baselines), ("candidate", candidates)) if not names]
    evidence = (f"baselines: {', '.join(baselines) or 'none'}; candidates: {', '.join(candidates) or 'none'}")
    if ev.comparison.get("best"):
        evidence += f"; best {ev.comparison['best_candidate']} ({ev.comparison['best']})"
    return Check("baselines and candidates", FAIL if missing else PASS, evidence,
                 tuple(f"no finished {w} record" for w in missing))


def _model_saved(ev: Evidence) -> Check:
    meta = ev.package
    if meta is None:
        return Check("model saved", FAIL, f"no package under {ev.inc.models_dir.name}/ (T-008 packages the best model)")
    name = f"model-v{meta['version']}"
    try:
        verify(meta, ev.inc.models_dir / f"{name}.metadata.json")
        verify_files(meta, ev.inc.models_dir)
    except RecordError as err:
        return Check("model saved", FAIL, f"{name}: {err}")
    files = len(meta.get("files") or {})
    evidence = f"{name} ({meta.get('candidate')}), signature and sha256 of {files} files verified"
    if registered := meta.get("mlflow"):
        evidence += f", registered as {registered.get('model_uri')}"
    best = ev.comparison.get("best_candidate")
    if best and meta.get("candidate") != best:
        return Check("model saved", FAIL, evidence,
                     (f"the package holds {meta.get('candidate')!r}, the comparison's best is {best!r}",))
    return Check("model saved", PASS, evidence)


def _targets_measured(ev: Evidence) -> Check:
    spec = ev.spec
    if not spec.targets:
        return Check("metrics documented", FAIL, f"{ev.inc.spec_path.name} states no success criteria: "
                                                 f"nothing says when the model is good enough")
    rows = {r["target"]: r for r in ev.gate_rows}
    missing = [t.render() for t in spec.targets if rows.get(t.render(), {}).get("status", NOT_MEASURED) == NOT_MEASURED]
    measured = len(spec.targets) - len(missing)
    return Check("metrics documented", FAIL if missing else PASS,
                 f"{measured}/{len(spec.targets)} spec targets measured", tuple(f"not measured: {m}" for m in missing))


def _criteria_met(ev: Evidence) -> Check:
    """The spec's targets as it stands now: a target removed since the run no longer counts, a new
    one counts as not met until measured."""
    measured = {r["target"]: r for r in ev.gate_rows}
    if not measured:
        return Check("success criteria", FAIL, "no gate record: T-006/T-008 compare the model with the spec")
    rows = [measured.get(t.render(), {"target": t.render(), "status": NOT_MEASURED}) for t in ev.spec.targets]
    unmet = [r for r in rows if r.get("status") != MET]
    details = tuple(f"{r['target']}: {r.get('status')} (measured {_num(r.get('value'))}"
                    + (f", 95% CI [{_num(r.get('ci_low'))}, {_num(r.get('ci_high'))}]" if r.get("ci_low") is not None else "")
                    + ")" for r in unmet)
    return Check("success criteria", FAIL if unmet else PASS,
                 f"{len(rows) - len(unmet)}/{len(rows)} targets met", details)


def _explainability(ev: Evidence) -> Check:
    rec = ev.latest("explainability")
    if rec is None or rec.status != "finished":
        return Check("explainability", FAIL, "no finished explainability record (T-007)")
    explained = _explained(rec)
    evidence = f"{rec.id} ({rec.meta.get('explainer') or rec.params.get('method') or rec.params.get('explainer')}): {explained} explained predictions"
    package = f"model-v{ev.package['version']}" if ev.package else None
    if package and rec.meta.get("package") not in (None, package):
        return Check("explainability", FAIL, evidence, (f"it explains {rec.meta.get('package')}, not {package}",))
    asked = [r for r in ev.spec.requirements if r.checked and r.top_k]
    short = [f"{r.render()} (line {r.line}): each explained answer must cover its top {r.top_k}"
             for r in asked if not _covers_top(rec, r.top_k)]
    if not explained:
        return Check("explainability", FAIL, evidence)
    return Check("explainability", FAIL if short else PASS, evidence, tuple(short))


def _benchmark(ev: Evidence) -> Check:
    rec = ev.latest("benchmark")
    if rec is None or rec.status != "finished":
        return Check("benchmark", FAIL, "no finished benchmark record (T-008 or specweave-ray bench)")
    m = rec.metrics
    missing = [k for k in ("latency_p99_ms", "throughput_rps") if k not in m]
    evidence = (f"{rec.id}: p99 {_num(m.get('latency_p99_ms'))} ms, {_num(m.get('throughput_rps'))} req/s"
                if not missing else f"{rec.id}")
    return Check("benchmark", FAIL if missing else PASS, evidence, tuple(f"no {k}" for k in missing))


def _mlflow_mirror(ev: Evidence) -> Check:
    """The MLflow experiment named after the increment holds one run per record, with its metrics."""
    mirrored = [r for r in ev.records if r.meta.get("mlflow_run_id")]
    if not mirrored:
        reason = "MLflow mirroring is off (SPECWEAVE_MLFLOW=0)" if not _mlflow.enabled() else "no record names an MLflow run"
        unmirrored = [r for r in ev.records if r.meta.get("mlflow_error")]
        if unmirrored:
            return Check("mlflow", FAIL, f"{len(unmirrored)} records failed to mirror",
                         tuple(f"{r.id}: {r.meta['mlflow_error']}" for r in unmirrored[:5]))
        return Check("mlflow", SKIP, reason)
    try:
        client = _mlflow.client_for(ev.inc.root)
        exp = client.get_experiment_by_name(ev.inc.id)
        runs = {} if exp is None else {
            r.info.run_id: r for r in client.search_runs([exp.experiment_id], max_results=50000)}
    except Exception as err:  # noqa: BLE001 - an unreachable store is a failed check, named
        return Check("mlflow", FAIL, f"MLflow store {_mlflow.tracking_uri(ev.inc.root)} unreadable: {err}")
    problems = [f"{r.id}: not mirrored ({r.meta.get('mlflow_error') or 'no run id'})"
                for r in ev.records if not r.meta.get("mlflow_run_id")]
    for rec in mirrored:
        run = runs.get(rec.meta["mlflow_run_id"])
        if run is None:
            problems.append(f"{rec.id}: MLflow run {rec.meta['mlflow_run_id']} is missing")
            continue
        for key, value in rec.metrics.items():
            got = run.data.metrics.get(key)
            if not _close(got, value):
                problems.append(f"{rec.id}: {key} is {_num(value)} in metrics.json, {_num(got)} in MLflow")
                break
    ours = {r.meta["mlflow_run_id"] for r in mirrored}
    for meta in ev.packages:  # a package's pyfunc model is logged in a run of its own
        if run_id := (meta.get("mlflow") or {}).get("run_id"):
            ours.add(run_id)
            if run_id not in runs:
                problems.append(f"model-v{meta['version']}: its MLflow run {run_id} is missing")
    extra = sorted(set(runs) - ours)
    if extra:
        problems.append(f"{len(extra)} MLflow runs belong to no record (e.g. {extra[0]})")
    return Check("mlflow", FAIL if problems else PASS,
                 f"{len(runs)} runs in MLflow experiment {ev.inc.id!r} for {len(ev.records)} records "
                 f"and {len(ours) - len(mirrored)} package(s)",
                 tuple(problems[:10]) + ((f"… and {len(problems) - 10} more",) if len(problems) > 10 else ()))


# -- helpers -----------------------------------------------------------------------------------
def _explained(rec: Record) -> int:
    """How many predictions the record explains: examples whose contributions add up (from
    ``base_value``, with ``other``, to ``output_value``, where the example gives them: SHAP rows,
    a GBM's forecast steps, a statistical forecast's components), or lists with at least one
    explained item (a recommender's)."""
    examples = read_json(rec.path / "examples.json") or []
    lists = read_json(rec.path / "explanations.json") or []
    return (sum(1 for e in examples if e.get("contributions") and _adds_up(e))
            + sum(1 for a in lists if not a.get("fallback") and a.get("explanations")))


def _adds_up(example: Mapping[str, Any]) -> bool:
    """``base_value + Σ contributions + other == output_value`` (relative 1e-6), or no such fields."""
    if example.get("base_value") is None or example.get("output_value") is None:
        return True
    try:
        total = float(example["base_value"]) + float(example.get("other") or 0.0) + sum(
            float(c["contribution"]) for c in example["contributions"])
        want = float(example["output_value"])
    except (KeyError, TypeError, ValueError):
        return False
    return math.isclose(total, want, rel_tol=1e-6, abs_tol=1e-6)


def _covers_top(rec: Record, k: int) -> bool:
    """Every explained answer carries an explanation for each of its first ``k`` entries."""
    lists = [a for a in (read_json(rec.path / "explanations.json") or []) if not a.get("fallback")]
    if lists:
        return all(len(a["explanations"]) >= k and all(e.get("because") or e.get("why") for e in a["explanations"][:k])
                   for a in lists)
    examples = read_json(rec.path / "examples.json") or []
    return bool(examples) and all(len(e.get("contributions") or []) >= k for e in examples)


def _close(got: Any, want: Any) -> bool:
    if got is None or want is None:
        return got is want
    got, want = float(got), float(want)
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"

