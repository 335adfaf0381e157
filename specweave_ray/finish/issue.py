"""``specweave-ray issue ID "Retrain with new data"``: a ready-to-file issue from the records
(context, the current metrics against the spec, the latest drift evidence, the exact retrain
command), written into the increment's ``issues/``; filed with the GitHub CLI when ``gh`` is on
the PATH and authenticated, and left as a file otherwise."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from specweave_ray._fs import atomic_write_text, read_json, relative_posix
from specweave_ray.exceptions import RecordError, UsageError
from specweave_ray.finish.docs import retrain_command
from specweave_ray.finish.validate import Evidence, gather
from specweave_ray.workspace.increment import Increment, slugify

__all__ = ["FiledIssue", "write_issue"]

_GH_TIMEOUT_S = 60


@dataclass(frozen=True)
class FiledIssue:
    path: Path
    url: str | None     # set once gh filed it
    why_not: str | None  # why it was not filed


def write_issue(inc: Increment, title: str, *, file: bool = True, cwd: Path | None = None) -> FiledIssue:
    """Write ``issues/<date>-<slug>.md`` (the same title on the same day rewrites it) and, when
    ``file`` and ``gh`` can, file it with ``gh issue create``.

    Raises:
        UsageError: An empty title.
        RecordError: No records or no packaged model to report on.
    """
    title = " ".join(str(title).split())
    if not title:
        raise UsageError("the issue title is empty; say what should be done, e.g. \"Retrain with new data\"")
    ev = gather(inc)
    if ev.package is None:
        raise RecordError(f"{inc.id} has no packaged model to report on; run its tasks first: specweave-ray do {inc.id}")
    body = _body(ev, title, cwd=cwd or Path.cwd())
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (inc.path / "issues").mkdir(exist_ok=True)
    path = atomic_write_text(inc.path / "issues" / f"{day}-{slugify(title) or 'issue'}.md", f"# {title}\n\n{body}")
    if not file:
        return FiledIssue(path, None, "not asked to file it (--no-file)")
    gh = shutil.which("gh")
    if gh is None:
        return FiledIssue(path, None, "the GitHub CLI (gh) is not installed")
    auth = subprocess.run([gh, "auth", "status"], capture_output=True, text=True, timeout=_GH_TIMEOUT_S, check=False)
    if auth.returncode != 0:
        return FiledIssue(path, None, "gh is not authenticated (gh auth login)")
    created = subprocess.run([gh, "issue", "create", "--title", f"[{inc.id}] {title}", "--body-file", str(path)],
                             capture_output=True, text=True, timeout=_GH_TIMEOUT_S, check=False, cwd=cwd)
    if created.returncode != 0:
        reason = (created.stderr or created.stdout).strip().splitlines()
        return FiledIssue(path, None, f"gh issue create failed: {reason[-1] if reason else created.returncode}")
    url = created.stdout.strip().splitlines()[-1] if created.stdout.strip() else None
    atomic_write_text(path, f"# {title}\n\nFiled: {url}\n\n{body}")
    return FiledIssue(path, url, None)


def _body(ev: Evidence, title: str, *, cwd: Path) -> str:
    inc, meta = ev.inc, ev.package
    spec = ev.spec
    data = ev.latest("data")
    root = relative_posix(cwd, inc.root)
    lines = ["## Context", "",
             f"- Increment: `{inc.id}` — {spec.title} ({spec.problem_type})",
             f"- Model: model-v{meta['version']} ({meta.get('candidate')}, `{meta.get('estimator')}`), "
             f"status {meta.get('status')}, packaged {str(meta.get('created', ''))[:10]}"
             + (f", `{meta['mlflow']['model_uri']}`" if meta.get("mlflow") else ""),
             f"- Trained on data {data.meta.get('data_fingerprint') if data is not None else 'unknown'}", "",
             "## Current metrics (held-out test split and benchmark)", "",
             "| target | measured | 95% CI | status |", "| --- | --- | --- | --- |"]
    for r in ev.gate_rows:
        value = "—" if r.get("value") is None else f"{r['value']:.4g}"
        ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if r.get("ci_low") is not None else "—"
        lines.append(f"| {r['target']} | {value} | {ci} | {r['status']} |")
    lines += ["", "## Drift evidence", ""]
    drift = ev.latest("drift")
    if drift is None:
        lines.append(f"No drift check is recorded. Run one on the new data first: "
                     f"`specweave-ray drift {inc.id} --root {root} --data NEW_DATA.parquet`.")
    else:
        m = drift.metrics
        verdict = "drift detected" if not m.get("drift_passed", 1) else "no drift past the thresholds"
        lines.append(f"{drift.id} ({str(drift.meta.get('started', ''))[:10]}, {int(m.get('rows', 0)):,} rows, "
                     f"model {drift.meta.get('model')}): **{verdict}**; {int(m.get('drifted_features', 0))} drifted "
                     f"features, max PSI {m.get('max_psi', 0):.3f}.")
        report = drift.path / "drift-report.md"
        if report.is_file():
            table = [ln for ln in report.read_text(encoding="utf-8").splitlines() if ln.startswith("|")]
            lines += ["", *table[:25]]
    lines += ["", "## Retrain", "", "```bash", retrain_command(inc, cwd),
              f"specweave-ray validate {inc.id} --root {root}", "```", "",
              f"Point the config's `data:` at the new data first. Hyperparameters today: `{meta.get('params')}`.",
              ""]
    if (completion := read_json(inc.path / "completion.json")) and completion.get("done_at"):
        lines.append(f"The increment was closed on {completion['done_at'][:10]}"
                     + (" (forced past failing checks)" if completion.get("forced") else "") + ".")
    return "\n".join(lines).rstrip() + "\n"

