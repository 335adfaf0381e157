"""The increment's three notebooks, written from its records: never a model trained or scored.

``notebooks/01-eda.ipynb`` (the T-001 profile and data sample), ``02-feature-engineering.ipynb``
(the T-002 feature record, the schema, the features in the sample) and
``03-model-analysis.ipynb`` (the comparison and every trial, the T-006 evaluation with its CIs
and plots, the T-007 explanations, the T-008 benchmark and gate, the model packages). Their
cells read the increment's files with pandas and matplotlib through a path relative to the
notebook (``..``), so the increment folder can be moved or copied and its notebooks still run; a
record that is not there yet (a task that has not run) becomes a markdown note, not an error.

>>> from specweave_ray.finish.notebooks import write_notebooks
>>> paths = write_notebooks(inc, execute=True)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbformat import v4

from specweave_ray._fs import atomic_write_text
from specweave_ray.workspace.increment import Increment

__all__ = ["NOTEBOOKS", "build_notebook", "write_notebooks"]

logger = logging.getLogger(__name__)

NOTEBOOKS = ("01-eda.ipynb", "02-feature-engineering.ipynb", "03-model-analysis.ipynb")
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}

# -- cells every notebook starts with -------------------------------------------------------
_SETUP = '''\
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, Markdown, display

pd.set_option("display.max_columns", 40)
INC = Path("..").resolve()  # the increment folder: this notebook lives in its notebooks/
EXP = INC / "experiments"
if not (INC / "spec.md").exists():
    raise FileNotFoundError(f"{INC} is not an increment folder; open this notebook from "
                            "<increment>/notebooks/ (Jupyter starts a notebook in its own folder)")
print(f"increment {INC.name}")'''

_HELPERS = '''\
def read_json(path, default=None):
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def records(kind, status="finished"):
    """The increment's records of one kind, oldest first; status=None keeps every status."""
    found = []
    for folder in EXP.glob("exp-*"):
        meta = read_json(folder / "meta.json")
        if meta and meta.get("kind") == kind and status in (None, meta.get("status")):
            found.append({"path": folder, "id": folder.name, "meta": meta,
                          "params": read_json(folder / "params.json", {}),
                          "metrics": read_json(folder / "metrics.json", {})})
    return sorted(found, key=lambda r: int(r["id"].split("-")[1]))


def latest(kind):
    found = records(kind)
    return found[-1] if found else None


def missing(task, what):
    display(Markdown(f"> **Not recorded yet:** {what} ({task} has not run for {INC.name}). "
                     f"Run `specweave-ray do {INC.name}`, then run this notebook again."))


def show_plots(folder, *, skip=()):
    for png in sorted(Path(folder).glob("*.png")):
        if png.name not in skip:
            display(Markdown(f"`{png.parent.name}/{png.name}`"))
            display(Image(filename=str(png)))


def with_cis(metrics):
    """Metric, value and CI bounds (metrics recorded with *_ci_low / *_ci_high) as a table."""
    rows = [{"metric": k, "value": v, "ci_low": metrics.get(f"{k}_ci_low"),
             "ci_high": metrics.get(f"{k}_ci_high")}
            for k, v in metrics.items()
            if not k.endswith(("_ci_low", "_ci_high")) and isinstance(v, (int, float))]
    return pd.DataFrame(rows).set_index("metric") if rows else pd.DataFrame()'''


# -- 01: exploratory data analysis -------------------------------------------------------------
_EDA = [
    ("md", "## The data profile (T-001)\n\nThe `data` record: where the data came from, the held-out "
           "split and the counts the profile took."),
    ("code", '''\
profile_rec = latest("data")
if profile_rec is None:
    missing("T-001", "the data profile")
else:
    params = profile_rec["params"]
    print(f"record {profile_rec['id']}; source {params.get('source')}; target {params.get('target')!r}")
    print(f"rows: {params.get('rows_train')} train / {params.get('rows_test')} held out "
          f"(test_size {params.get('test_size')}); fingerprint {profile_rec['meta'].get('data_fingerprint')}")
    display(pd.Series(profile_rec["metrics"], name="value").to_frame())'''),
    ("md", "## Columns\n\nTypes and missing values from `data/profile.json`, with the columns the profile "
           "flagged."),
    ("code", '''\
profile = read_json(INC / "data" / "profile.json")
if profile is None:
    missing("T-001", "data/profile.json")
else:
    columns = pd.DataFrame({"dtype": pd.Series(profile.get("dtypes", {})),
                            "missing": pd.Series(profile.get("missing", {}))})
    columns["missing"] = columns["missing"].fillna(0).astype(int)
    display(columns)
    for flag in ("constant_columns", "all_nan_columns", "high_cardinality_columns", "leakage_suspects"):
        print(f"{flag.replace('_', ' ')}: {profile.get(flag) or 'none'}")'''),
    ("code", '''\
if profile is not None and profile.get("numeric"):
    display(pd.DataFrame(profile["numeric"]).T)'''),
    ("md", "## Target"),
    ("code", '''\
if profile is None or not profile.get("target"):
    missing("T-001", "the target profile")
else:
    print(json.dumps(profile["target"], indent=2, default=str)[:4000])'''),
    ("md", "## The data sample\n\n`data/sample.parquet` is the sample T-001 kept (stratified by the "
           "target where it has classes); the plots below are drawn from it."),
    ("code", '''\
sample_path = INC / "data" / "sample.parquet"
sample = pd.read_parquet(sample_path) if sample_path.exists() else None
if sample is None:
    missing("T-001", "data/sample.parquet")
else:
    print(f"{len(sample)} rows x {sample.shape[1]} columns")
    display(sample.head(10))
    display(sample.describe(include="all").T)'''),
    ("code", '''\
target = (profile_rec or {}).get("params", {}).get("target")
if sample is None or target not in getattr(sample, "columns", ()):
    display(Markdown("> No target column to plot: the sample or the T-001 record is missing."))
else:
    y = sample[target]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if pd.api.types.is_numeric_dtype(y) and y.nunique() > 20:
        y.plot.hist(bins=40, ax=ax)
    else:
        y.value_counts().sort_index().plot.bar(ax=ax)
    ax.set_title(f"{target} in the sample")
    plt.show()'''),
    ("md", "## Plots the profile saved"),
    ("code", '''\
if profile_rec is None:
    missing("T-001", "the EDA plots")
else:
    show_plots(profile_rec["path"])'''),
    ("md", "## The EDA report as written"),
    ("code", '''\
report = None if profile_rec is None else profile_rec["path"] / "eda-summary.md"
if report is None or not report.exists():
    missing("T-001", "eda-summary.md")
else:
    display(Markdown(report.read_text(encoding="utf-8")))'''),
]

# -- 02: feature engineering -------------------------------------------------------------------
_FEATURES = [
    ("md", "## The feature pipeline (T-002)\n\nThe `features` record: each input column's type and the "
           "steps applied to each type. The pipeline is fitted inside each CV fold by the sweep."),
    ("code", '''\
feat_rec = latest("features")
if feat_rec is None:
    missing("T-002", "the feature pipeline")
    feature_types = pd.Series(dtype=object)
else:
    params = dict(feat_rec["params"])
    feature_types = pd.Series(params.pop("features", {}), name="type")
    print(f"record {feat_rec['id']}")
    for key, value in params.items():
        print(f"{key}: {value}")
    display(feature_types.value_counts().to_frame("columns"))
    display(pd.Series(feat_rec["metrics"], name="value").to_frame())'''),
    ("md", "## The schema\n\n`data/schema.yaml`, written once from the first data: later runs must "
           "match it."),
    ("code", '''\
schema = INC / "data" / "schema.yaml"
if schema.exists():
    print(schema.read_text(encoding="utf-8")[:6000])
else:
    missing("T-001", "data/schema.yaml")'''),
    ("md", "## The features in the sample\n\nMissing share and distinct values per feature, from "
           "`data/sample.parquet`."),
    ("code", '''\
sample_path = INC / "data" / "sample.parquet"
sample = pd.read_parquet(sample_path) if sample_path.exists() else None
if sample is None:
    missing("T-001", "data/sample.parquet")
else:
    cols = list(feature_types.index) if len(feature_types) else list(sample.columns)
    cols = [c for c in cols if c in sample.columns]
    overview = pd.DataFrame({"type": feature_types.reindex(cols),
                             "dtype": sample[cols].dtypes.astype(str),
                             "missing_share": sample[cols].isna().mean(),
                             "distinct": sample[cols].nunique()})
    display(overview)
    if overview["missing_share"].gt(0).any():
        ax = overview["missing_share"][overview["missing_share"] > 0].plot.barh(figsize=(6, 3))
        ax.set_title("missing share per feature")
        plt.show()'''),
    ("code", '''\
data_rec = latest("data")
target = None if data_rec is None else data_rec["params"].get("target")
if sample is None or target not in sample.columns or not pd.api.types.is_numeric_dtype(sample[target]):
    display(Markdown("> No numeric target in the sample to correlate the features with."))
else:
    numeric = sample.drop(columns=[target]).select_dtypes("number")
    if numeric.shape[1] == 0:
        display(Markdown("> The sample has no numeric features."))
    else:
        corr = numeric.corrwith(sample[target]).dropna().sort_values()
        display(corr.to_frame(f"correlation with {target}"))
        ax = corr.plot.barh(figsize=(6, max(2, 0.3 * len(corr))))
        ax.set_title(f"correlation with {target} (sample)")
        plt.show()'''),
    ("code", '''\
if sample is not None:
    categorical = [c for c in sample.columns if c != target and not pd.api.types.is_numeric_dtype(sample[c])]
    for col in categorical[:10]:
        display(sample[col].value_counts().head(10).to_frame(col))'''),
]

# -- 03: model analysis ------------------------------------------------------------------------
_MODELS = [
    ("md", "## The comparison (T-003 … T-005)\n\n`experiments/comparison.json`: every candidate's best "
           "trial against the baselines, by the primary metric's cross-validated mean."),
    ("code", '''\
comparison = read_json(EXP / "comparison.json")
if comparison is None:
    missing("T-003", "the comparison")
    metric = None
else:
    metric = comparison.get("metric")
    print(f"primary metric {metric} ({comparison.get('mode')}); best {comparison.get('best_candidate')} "
          f"({comparison.get('best')}); best baseline {comparison.get('best_baseline')}")
    print(f"trials {comparison.get('trials')}, failed {comparison.get('failed')}")
    table = pd.DataFrame(comparison.get("rows", []))
    display(table.drop(columns=[c for c in ("params", "node") if c in table.columns]))'''),
    ("code", '''\
if comparison is not None and comparison.get("rows"):
    table = pd.DataFrame(comparison["rows"]).set_index("candidate")
    colors = ["tab:green" if b else ("tab:gray" if k == "baseline" else "tab:blue")
              for b, k in zip(table.get("best", False), table.get("kind", ""))]
    ax = table["cv_mean"].plot.barh(xerr=table.get("cv_std"), color=colors, figsize=(6, 0.4 * len(table) + 1))
    ax.set_xlabel(f"cv {metric}")
    ax.set_title("candidates and baselines (best in green)")
    plt.show()'''),
    ("md", "## Every trial"),
    ("code", '''\
trials = records("trial", status=None)
if not trials:
    missing("T-003", "trial records")
else:
    rows = [{"record": t["id"], "candidate": t["meta"].get("candidate"), "kind": t["meta"].get("candidate_kind"),
             "status": t["meta"].get("status"), "cv_mean": t["metrics"].get("cv_mean"),
             "cv_std": t["metrics"].get("cv_std"), "duration_s": t["meta"].get("duration_s"),
             "stopped_early": t["meta"].get("stopped_early"), "params": json.dumps(t["params"])[:80]}
            for t in trials]
    display(pd.DataFrame(rows).set_index("record"))
    for t in trials:
        if t["meta"].get("status") == "failed":
            error = t["meta"].get("error") or {}
            print(f"{t['id']} failed: {error.get('type')}: {error.get('message')}")'''),
    ("md", "## Held-out evaluation (T-006)\n\nThe best candidate, refitted, scored once on the held-out "
           "split; each metric with its bootstrap confidence interval."),
    ("code", '''\
evaluation = latest("evaluation")
if evaluation is None:
    missing("T-006", "the held-out evaluation")
else:
    ev_metrics = evaluation["metrics"]
    primary = metric if metric in ev_metrics else next(iter(ev_metrics), None)
    print(f"record {evaluation['id']}: {evaluation['meta'].get('candidate')} "
          f"(trial {evaluation['meta'].get('trial_record')})")
    print(f"held-out {primary} = {ev_metrics.get(primary)!r} "
          f"[{ev_metrics.get(f'{primary}_ci_low')!r}, {ev_metrics.get(f'{primary}_ci_high')!r}]")
    display(with_cis(ev_metrics))'''),
    ("code", '''\
baselines = records("baseline-evaluation")
if evaluation is None or not baselines:
    display(Markdown("> No held-out baseline evaluations recorded."))
else:
    keys = [k for k in (primary, "n_test") if k]
    rows = {evaluation["meta"].get("candidate"): {k: evaluation["metrics"].get(k) for k in keys}}
    rows.update({b["meta"].get("candidate"): {k: b["metrics"].get(k) for k in keys} for b in baselines})
    display(pd.DataFrame(rows).T)
    lifts = {k: v for k, v in evaluation["metrics"].items() if "lift" in k}
    if lifts:
        display(pd.Series(lifts, name="value").to_frame())'''),
    ("code", '''\
gate_rows = None if evaluation is None else read_json(evaluation["path"] / "gate.json")
if gate_rows:
    display(Markdown("**Spec targets on the held-out split**"))
    display(pd.DataFrame(gate_rows)[[c for c in ("target", "status", "value", "ci_low", "ci_high")
                                     if c in gate_rows[0]]])'''),
    ("code", '''\
errors = None if evaluation is None else read_json(evaluation["path"] / "error_analysis.json")
if errors:
    worst = errors.get("worst") if isinstance(errors, dict) else None
    if worst:
        display(Markdown(f"**Worst held-out rows by {errors.get('worst_by')}**"))
        display(pd.DataFrame(worst).head(10))
    others = {k: v for k, v in errors.items() if k not in ("worst", "worst_by")} if isinstance(errors, dict) else {}
    if others:
        print(json.dumps(others, indent=2, default=str)[:3000])'''),
    ("code", '''\
if evaluation is not None:
    show_plots(evaluation["path"])'''),
    ("md", "## Explanations (T-007)"),
    ("code", '''\
explained = latest("explainability")
if explained is None:
    missing("T-007", "the explanations")
else:
    params = explained["params"]
    print(f"record {explained['id']}: {params.get('method') or params.get('explainer')} on "
          f"{params.get('package') or explained['meta'].get('package')}")
    counts = {k: v for k, v in explained["metrics"].items() if not k.startswith("importance_")}
    if counts:
        display(pd.Series(counts, name="value").to_frame())
    importance = pd.Series({k[len("importance_"):]: v for k, v in explained["metrics"].items()
                            if k.startswith("importance_")}, dtype=float).sort_values()
    if len(importance):
        ax = importance.tail(20).plot.barh(figsize=(6, 0.3 * min(20, len(importance)) + 1))
        ax.set_title("mean |contribution| per feature")
        plt.show()
    report = explained["path"] / "explainability.md"
    if report.exists():
        display(Markdown(report.read_text(encoding="utf-8")[:8000]))'''),
    ("md", "## Benchmark and release gate (T-008)"),
    ("code", '''\
bench = latest("benchmark")
if bench is None:
    missing("T-008", "the benchmark")
else:
    print(f"record {bench['id']}: {bench['meta'].get('package')}, engine {bench['params'].get('engine')}")
    display(pd.Series({k: v for k, v in bench["metrics"].items()
                       if k.startswith(("latency_", "throughput", "http_latency"))}, name="value").to_frame())'''),
    ("code", '''\
release = latest("gate")
if release is None:
    missing("T-008", "the release gate")
else:
    params, counts = release["params"], release["metrics"]
    verdict = params.get("verdict") or ("passed" if params.get("passed") else "failed")  # older records
    print(f"record {release['id']}: {params.get('package')} {verdict} the gate "
          f"({counts.get('met')} met, {counts.get('not_met')} not met, {counts.get('not_measured')} not measured)")
    rows = read_json(release["path"] / "gate.json", [])
    if rows:
        display(pd.DataFrame(rows)[[c for c in ("target", "status", "value", "ci_low", "ci_high") if c in rows[0]]])'''),
    ("md", "## Model packages"),
    ("code", '''\
packages = [read_json(p) for p in sorted((INC / "models").glob("model-v*.metadata.json"))]
if not packages:
    missing("T-007", "a model package")
else:
    display(pd.DataFrame([{"version": p.get("version"), "status": p.get("status"), "candidate": p.get("candidate"),
                           "format": p.get("format"), "evaluation": p.get("evaluation_record")}
                          for p in packages]).set_index("version"))'''),
]

_BOOKS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "01-eda.ipynb": ("exploratory data analysis", "the T-001 data profile and the data sample", _EDA),
    "02-feature-engineering.ipynb": ("feature engineering", "the T-002 feature record, the schema and "
                                     "the data sample", _FEATURES),
    "03-model-analysis.ipynb": ("model analysis", "the comparison, the trial records, the T-006 "
                                "evaluation, the T-007 explanations and the T-008 benchmark and gate",
                                _MODELS),
}


def build_notebook(inc: Increment, name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` (one of :data:`NOTEBOOKS`) for ``inc``, unexecuted."""
    title, sources, body = _BOOKS[name]
    cells = [v4.new_markdown_cell(
        f"# {inc.id}: {title}\n\nWritten by specweave-ray from {sources}. Every cell reads the "
        "increment's own files (the folder above this notebook); nothing here trains or scores a "
        "model. A section whose record is missing says which task to run."),
        v4.new_code_cell(_SETUP), v4.new_code_cell(_HELPERS)]
    cells += [v4.new_markdown_cell(src) if kind == "md" else v4.new_code_cell(src) for kind, src in body]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["specweave"] = {"increment": inc.id, "notebook": name}
    return nb


def write_notebooks(inc: Increment, *, execute: bool = False, timeout: float = 120.0) -> list[Path]:
    """Write ``notebooks/01-eda.ipynb``, ``02-feature-engineering.ipynb``, ``03-model-analysis.ipynb``.

    Each file is replaced atomically, so a rerun overwrites cleanly. With ``execute`` (and
    ``ipykernel`` installed) the notebooks are run first, one after the other in one kernel
    started in the notebooks folder (its namespace reset between them), and saved with their
    outputs; one that fails is saved unexecuted and a warning names the cell.

    Args:
        inc: The increment; its notebooks go to ``inc.notebooks_dir``.
        execute: Run each notebook with nbclient before saving it.
        timeout: Seconds one cell may take when executing.

    Returns:
        The three notebook paths, in :data:`NOTEBOOKS` order.
    """
    folder = inc.notebooks_dir
    folder.mkdir(parents=True, exist_ok=True)
    books = {name: build_notebook(inc, name) for name in NOTEBOOKS}
    if execute and _can_execute():
        books = _execute_all(inc, books, folder, timeout=timeout)
    paths = []
    for name, nb in books.items():
        nbformat.validate(nb)
        paths.append(atomic_write_text(folder / name, nbformat.writes(nb)))
    return paths


def _execute_all(inc: Increment, books: dict[str, nbformat.NotebookNode], folder: Path, *,
                 timeout: float) -> dict[str, nbformat.NotebookNode]:
    # jupyter_client and zmq load only when executing; one kernel for the three notebooks saves
    # two kernel starts and two pandas/matplotlib imports
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    # IPC (unix sockets, in a private temporary folder) rather than TCP on loopback: nothing else
    # on the machine can reach the kernel, and ipykernel has no "running over TCP without
    # encryption" warning to print into the run's output
    sockets = tempfile.mkdtemp(prefix="specweave-kernel-")
    km = AsyncKernelManager(kernel_name=KERNEL["name"], transport="ipc", ip=os.path.join(sockets, "kernel"))
    try:
        run_sync(km.start_kernel)(cwd=str(folder))
    except Exception as err:  # noqa: BLE001 - the notebooks still ship, without outputs
        logger.warning("%s/notebooks: no kernel to execute them, saved unexecuted (%s: %s)",
                       inc.id, type(err).__name__, err)
        return books
    out = {}
    try:
        for name, nb in books.items():
            try:
                out[name] = _execute(nb, km, timeout=timeout)
            except Exception as err:  # noqa: BLE001 - this notebook ships without outputs
                lines = str(err).strip().splitlines()
                logger.warning("%s/notebooks/%s: %s failed, saved it unexecuted (%s)", inc.id, name,
                               _failed_cell(nb), lines[-1] if lines else type(err).__name__)
                out[name] = build_notebook(inc, name)
                run_sync(km.restart_kernel)(now=True)  # a timed-out cell may still be running
    finally:
        run_sync(km.shutdown_kernel)(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    return out


def _execute(nb: nbformat.NotebookNode, km: object, *, timeout: float) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in the started kernel ``km``, after clearing its namespace."""
    from nbclient import NotebookClient

    reset = v4.new_notebook(cells=[v4.new_code_cell("%reset -f")])
    for book in (reset, nb):
        client = NotebookClient(book, km=km, timeout=int(timeout), kernel_name=KERNEL["name"])
        try:
            client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
    return nb


def _failed_cell(nb: nbformat.NotebookNode) -> str:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i} ({out.get('ename')}: {out.get('evalue')})"
    return "a cell (no error output: a timeout or a dead kernel)"


def _can_execute() -> bool:
    if importlib.util.find_spec("ipykernel") is None or importlib.util.find_spec("nbclient") is None:
        logger.warning("notebooks are saved without outputs: executing them needs "
                       "`pip install nbclient ipykernel`")
        return False
    return True
