"""``specweave-ray sync-docs ID``: the living docs beside the increments root, from the records.

``docs/`` sits next to ``.specweave/`` (or next to a custom increments root):

- ``architecture/ml-models.md``: one section per increment's model (inputs, outputs, features,
  version, held-out metrics, where it is served), each between markers so a rerun replaces it;
- ``adr/NNNN-<slug>-algorithm-choice.md`` (NNNN: the increment's number): context, the options with
  their measured results, the decision and its consequences;
- ``runbooks/<increment>.md``: retrain (the exact command and hyperparameters), serve, roll back,
  monitoring thresholds.

Paths in the docs are relative to the docs folder, so they stay true in a clone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specweave_ray._fs import atomic_write_text, file_lock, relative_posix
from specweave_ray.evaluate.gate import MET
from specweave_ray.exceptions import RecordError
from specweave_ray.finish.validate import Evidence, gather
from specweave_ray.workspace.increment import Increment

__all__ = ["SyncedDocs", "docs_root", "retrain_command", "sync_docs"]

_GUARDRAILS = ("latency", "throughput")


@dataclass(frozen=True)
class SyncedDocs:
    architecture: Path
    adr: Path
    runbook: Path


def docs_root(inc: Increment) -> Path:
    """``<project>/docs`` for ``<project>/.specweave/increments``, else ``docs`` beside the root."""
    root = inc.root
    if root.name == "increments" and root.parent.name == ".specweave":
        return root.parent.parent / "docs"
    return root.parent / "docs"


def sync_docs(inc: Increment, *, docs: Path | None = None) -> SyncedDocs:
    """Write or update the three documents of ``inc``; a rerun replaces, never duplicates.

    Raises:
        RecordError: No records, no comparison, or no packaged model to document.
    """
    ev = gather(inc)
    if ev.package is None or not ev.comparison.get("rows"):
        raise RecordError(f"{inc.id} has no packaged model and comparison to document yet; "
                          f"run its tasks first: specweave-ray do {inc.id}")
    docs = Path(docs) if docs is not None else docs_root(inc)
    for sub in ("architecture", "adr", "runbooks"):
        (docs / sub).mkdir(parents=True, exist_ok=True)
    with file_lock(docs / ".sync-docs.lock"):  # ml-models.md is read, changed and written back
        arch = _write_architecture(docs, ev)
        adr = _write_adr(docs, ev)
        runbook = atomic_write_text(docs / "runbooks" / f"{inc.id}.md", _runbook(docs, ev))
    return SyncedDocs(arch, adr, runbook)


# -- architecture/ml-models.md -----------------------------------------------------------------
def _write_architecture(docs: Path, ev: Evidence) -> Path:
    path = docs / "architecture" / "ml-models.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else (
        "# ML models\n\nOne section per increment's model, written by `specweave-ray sync-docs` from the "
        "increment's records; edit outside the markers.\n")
    start, end = f"<!-- specweave:model {ev.inc.id} -->", f"<!-- /specweave:model {ev.inc.id} -->"
    section = f"{start}\n{_model_section(docs, ev)}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        # keep the sections in increment order
        later = sorted(m for m in re.findall(r"<!-- specweave:model (\S+) -->", text) if m > ev.inc.id)
        if later:
            at = text.index(f"<!-- specweave:model {later[0]} -->")
            text = text[:at] + section + "\n\n" + text[at:]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    return atomic_write_text(path, text)


def _model_section(docs: Path, ev: Evidence) -> str:
    meta = ev.package
    spec = ev.spec
    name = f"model-v{meta['version']}"
    schema = meta.get("input_schema") or {}
    columns = schema.get("columns", schema) if isinstance(schema, Mapping) else {}
    inputs = ", ".join(f"`{c}` ({(d or {}).get('kind') or (d or {}).get('dtype', '?')})" for c, d in columns.items())
    features = meta.get("feature_names") or []
    served = [f"`specweave-ray serve {ev.inc.id} --root {relative_posix(docs.parent, ev.inc.root)} --version {meta['version']}` (POST /predict"
              + (", /recommend" if meta.get("kind") == "recommender" else "") + ", GET /health)"]
    if meta.get("mlflow"):
        served.append(f"MLflow registry `{meta['mlflow']['model_uri']}`")
    lines = [f"## {spec.title} — `{ev.inc.id}`", "",
             f"- Problem: {spec.problem_type}" + (f"; target `{meta['target']}`" if meta.get("target") else "")
             + f"; primary metric {spec.primary_metric}",
             f"- Model: {name}, {meta.get('candidate')} (`{meta.get('estimator')}`), status **{meta.get('status')}**",
             f"- Inputs: {inputs or 'see the package metadata'}",
             f"- Outputs: {_outputs(meta)}",
             f"- Features: {len(features)} after the feature pipeline"
             f" ({', '.join(f'`{f}`' for f in features[:12])}{' …' if len(features) > 12 else ''})" if features
             else "- Features: none (the model reads interactions, not a feature table)",
             f"- Held-out metrics: {_metrics_line(ev)}",
             f"- Served: {'; '.join(served)}",
             f"- Records: [{ev.inc.id}]({relative_posix(docs / 'architecture', ev.inc.path)}/), "
             f"package `{relative_posix(docs / 'architecture', ev.inc.models_dir)}/{name}.metadata.json`"]
    return "\n".join(lines)


def _outputs(meta: Mapping[str, Any]) -> str:
    if meta.get("kind") == "recommender":
        return f"a ranked list of {meta.get('k')} item ids per user (popularity fallback flagged for unknown users)"
    if meta.get("classes") is not None:
        out = f"class probabilities over {meta['classes']}"
        if meta.get("threshold") is not None:
            out += f" and a label at threshold {meta['threshold']:.4g}"
        return out
    return f"a predicted value of `{meta.get('target')}`"


def _metrics_line(ev: Evidence) -> str:
    rows = [r for r in ev.gate_rows if not any(g in r["metric_key"] for g in _GUARDRAILS)]
    return "; ".join(f"{r['metric_key']} {r['value']:.4g}" + (
        f" [{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if r.get("ci_low") is not None else "")
        + f" ({'meets' if r['status'] == MET else 'misses'} {r['target']})"
        for r in rows if r.get("value") is not None) or "not evaluated"


# -- the ADR -----------------------------------------------------------------------------------
def _write_adr(docs: Path, ev: Evidence) -> Path:
    """``adr/<increment number>-<slug>-algorithm-choice.md``: one ADR an increment, rewritten in place."""
    path = docs / "adr" / f"{ev.inc.number:04d}-{ev.inc.slug}-algorithm-choice.md"
    return atomic_write_text(path, _adr(ev, ev.inc.number))


def _adr(ev: Evidence, number: int) -> str:
    spec = ev.spec
    comp = ev.comparison
    meta = ev.package
    data = ev.latest("data")
    rows = comp["rows"]
    verdict = meta.get("status")
    lines = [f"# ADR {number:04d}: algorithm for {spec.title} ({ev.inc.id})", "",
             f"- Status: {'Accepted' if verdict == 'passed' else 'Proposed (the model fails its gate)' if verdict == 'failed' else 'Proposed'}",
             f"- Date: {str(meta.get('created', ''))[:10]}", "", "## Context", "",
             f"A {spec.problem_type} model for `{meta.get('target')}`"
             + (f", trained on data {data.meta.get('data_fingerprint')}" if data is not None else "")
             + f". Candidates were compared by cross-validated {comp['metric']} "
             f"({'higher' if comp.get('mode', 'max') == 'max' else 'lower'} is better) over {comp.get('trials')} trials"
             + (f" ({comp.get('failed')} failed)" if comp.get("failed") else "") + ". The spec's targets:", ""]
    lines += [f"- {t.render()}" for t in spec.targets] or ["- none stated"]
    lines += ["", "## Options considered", "", f"| option | kind | cv {comp['metric']} (mean ± std) | lift vs best "
              f"baseline | fit s | record |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lift = r.get("lift_over_best_baseline_pct")
        lines.append(f"| {r['candidate']}{' (chosen)' if r.get('best') else ''} | {r['kind']} | "
                     f"{r['cv_mean']:.4f} ± {r.get('cv_std') or 0:.4f} | {'' if lift is None else f'{lift:+.1f}%'} | "
                     f"{r.get('fit_time_s') or 0:.3g} | {r['record']} |")
    for f in comp.get("failures") or []:
        lines.append(f"| {f.get('candidate')} | failed | — | — | — | {f.get('record')}: {f.get('error', '')[:80]} |")
    best = next((r for r in rows if r.get("best")), rows[0])
    lines += ["", "## Decision", "",
              f"{best['candidate']} (`{meta.get('estimator')}`) with `{json.dumps(meta.get('params') or {}, sort_keys=True)}`, "
              f"packaged as model-v{meta['version']}: the best cross-validated {comp['metric']} "
              f"({best['cv_mean']:.4f})" + (f", {best['lift_over_best_baseline_pct']:+.1f}% over the best baseline "
                                            f"({comp.get('best_baseline')})" if best.get("lift_over_best_baseline_pct") is not None else "") + ".",
              "", "## Consequences", ""]
    for r in ev.gate_rows:
        value = "—" if r.get("value") is None else f"{r['value']:.4g}" + (f" {r['unit']}" if r.get("unit") else "")
        lines.append(f"- {'Meets' if r['status'] == MET else 'Misses'} `{r['target']}`: measured {value}"
                     + (f" (95% CI [{r['ci_low']:.4g}, {r['ci_high']:.4g}])" if r.get("ci_low") is not None else ""))
    if verdict != "passed":
        lines.append("- Not released: the gate failed; the runbook's serve command serves it only by explicit version.")
    lines.append(f"- Retraining and rollback: `runbooks/{ev.inc.id}.md`.")
    return "\n".join(lines) + "\n"


# -- the runbook -------------------------------------------------------------------------------
def retrain_command(inc: Increment, base: Path) -> str:
    """``specweave-ray do ID --from T-001`` on the increment's stored config, paths relative to ``base``."""
    config = inc.path / "pipeline.yaml"
    return (f"specweave-ray do {inc.id} --root {relative_posix(base, inc.root)} --from T-001 --config "
            + (relative_posix(base, config) if config.is_file() else "CONFIG"))


def _runbook(docs: Path, ev: Evidence) -> str:
    inc, meta = ev.inc, ev.package
    version = meta["version"]
    root = relative_posix(docs.parent, inc.root)
    previous = max((m["version"] for m in ev.packages if m["version"] != version and m.get("status") == "passed"),
                   default=None)
    lines = [f"# Runbook — {ev.spec.title} (`{inc.id}`)", "",
             f"Written by `specweave-ray sync-docs {inc.id}` from the records; run the commands from the "
             f"folder that holds `docs/`.", "", "## Retrain", ""]
    lines += ["Reruns every task on the increment's stored config (new data: edit its `data:` block first; "
              "CONFIG where no `pipeline.yaml` was stored):", "", "```bash", retrain_command(inc, docs.parent), "```", ""]
    lines += [f"Chosen model: {meta.get('candidate')} (`{meta.get('estimator')}`), hyperparameters:", "",
              "```json", json.dumps(meta.get("params") or {}, indent=2, sort_keys=True), "```", "",
              "## Serve", "", "```bash",
              f"specweave-ray serve {inc.id} --root {root} --version {version} --port 8000",
              f"specweave-ray serve {inc.id} --root {root} --version {version} --engine ray-serve --replicas 2"
              "  # on a Ray cluster",
              f"specweave-ray bench {inc.id} --root {root} --version {version} --http  # re-measure latency/throughput",
              "```", ""]
    if meta.get("mlflow"):
        lines += [f"MLflow: `mlflow models serve -m {meta['mlflow']['model_uri']}` with the increments' tracking store.", ""]
    lines += ["## Roll back", ""]
    if previous is not None:
        lines += [f"Serve the last package that passed its gate, model-v{previous}:", "", "```bash",
                  f"specweave-ray serve {inc.id} --root {root} --version {previous}", "```", ""]
    else:
        lines += ["No earlier package passed its gate: roll back to the process this model replaces "
                  "(the A/B plan's control, `ab-test-plan.md`).", ""]
    lines += ["Packages: " + ", ".join(f"model-v{m['version']} ({m.get('status')})" for m in ev.packages), "",
              "## Monitoring thresholds", "", "| signal | alert when | source |", "| --- | --- | --- |"]
    for r in ev.gate_rows:
        lines.append(f"| {r['metric_key']} | {_alert(r)} | spec target `{r['target']}` |")
    lines += ["| input drift (PSI) | PSI > 0.2 on any feature | `specweave-ray drift` |",
              "| input drift (KS) | p < 0.01 on a numeric feature | `specweave-ray drift` |", "",
              "```bash", f"specweave-ray drift {inc.id} --root {root} --version {version} --data NEW_DATA.parquet"
              "  # exit 1 past the thresholds", "```", ""]
    return "\n".join(lines)


def _alert(row: Mapping[str, Any]) -> str:
    op = row["op"]
    flipped = {">=": "<", ">": "<=", "<=": ">", "<": ">="}.get(op, "!=")
    return f"{flipped} {row['threshold']:g}{(' ' + row['unit']) if row.get('unit') else ''}"

