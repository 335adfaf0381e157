"""The ``specweave-ray`` command. It only parses arguments, calls the package and prints.

Any :class:`SpecweaveError` becomes one line on stderr and exit status 2 (``--debug`` shows the
traceback); an interrupted run exits 130 with what was recorded kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

# Each command imports the stages it runs: `specweave-ray --help` starts in 0.06 s instead of the
# 1.7 s that loading every stage (pandas, scikit-learn, pydantic, the pipeline) takes on 2 cores
# (measured with the whole tree imported at the top), and `status` loads no sweep or deploy code.
from specweave_ray.exceptions import SpecweaveError, UsageError

# Not read from the registry: that would load pandas for `--help`; a test keeps it in step.
TYPE_HELP = "problem type: classification, regression, recommendation or timeseries (or an alias such as binary, forecasting)"


def _console() -> Any:
    from rich.console import Console

    # Through a pipe (`status | cat`, a log file) nobody's terminal sets the width: rich's
    # default of 80 columns would cut ids and names short, so the table is as wide as it needs.
    width = None if sys.stdout.isatty() else 100_000
    return Console(stderr=False, highlight=False, width=width)


# -- commands ------------------------------------------------------------------------------
def cmd_inc(args: argparse.Namespace) -> int:
    from specweave_ray.workspace import storage
    from specweave_ray.workspace.increment import Increment

    inc = Increment.create(args.name, problem_type=args.type, root=args.root, exist_ok=args.exist_ok,
                           parent=args.parent)
    print(f"created {storage.display(inc.path)}" + (f" (parent {inc.parent().id})" if args.parent else ""))
    for name in ("spec.md", "plan.md", "tasks.md", "tests.md"):
        print(f"  {name}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from specweave_ray.workspace import storage
    from specweave_ray.workspace.increment import Increment, list_increments, resolve_root
    from specweave_ray.workspace.records import RECORD_FILES, list_records

    console = _console()
    # A terminal is narrow: a node id is cut to 16 characters there, never through a pipe.
    node_width = 16 if sys.stdout.isatty() else None
    if args.id:
        inc = Increment.open(args.id, root=args.root)
        rows = [{"record": rec.id, "kind": rec.kind, "status": rec.status,
                 "model": rec.meta.get("candidate") or rec.meta.get("model") or None,
                 "cv_mean": rec.metrics.get("cv_mean"), "node": rec.meta.get("node") or None}
                for rec in list_records(inc)]
        tasks = inc.tasks()
        done = sum(t.done for t in tasks)
        if args.json:
            print(json.dumps({"id": inc.id, "state": _state_of(inc), "experiments": rows,
                              "tasks": [{"id": t.id, "title": t.title, "done": t.done} for t in tasks]},
                             indent=2, default=str))
            return 0
        table = Table(title=f"{inc.id} — experiments")
        for col in ("record", "kind", "status", "model", "cv_mean", "node"):
            table.add_column(col)
        for r in rows:
            score = r["cv_mean"]
            table.add_row(r["record"], str(r["kind"]), str(r["status"]), str(r["model"] or ""),
                          f"{score:.4f}" if score is not None else "",
                          str(r["node"] or "")[:node_width])
        console.print(table)
        console.print(f"tasks: {done}/{len(tasks)} done · {_state_of(inc)}")
        return 0
    incs = list_increments(args.root)
    where = storage.display(resolve_root(args.root))
    listed = []
    for inc in incs:
        try:
            spec = inc.spec()
            title, ptype = spec.title, spec.problem_type
        except SpecweaveError:
            title, ptype = "(unreadable spec.md)", None
        # a URI root's mirror holds documents only; the table needs the records' summaries
        storage.pull(inc.experiments_dir, names={*RECORD_FILES, "comparison.json"})
        tasks = inc.tasks()
        listed.append({"id": inc.id, "title": title, "type": ptype, "experiments": len(list_records(inc)),
                       "best": _best_of(inc) or None, "tasks_done": sum(t.done for t in tasks),
                       "tasks": len(tasks), "state": _state_of(inc)})
    if args.json:
        print(json.dumps({"root": where, "increments": listed}, indent=2))
        return 0
    if not incs:
        print(f"no increments under {where}")
        return 0
    table = Table(title=f"increments under {where}")
    for col in ("id", "title", "type", "experiments", "best", "tasks", "state"):
        table.add_column(col)
    for row in listed:
        table.add_row(row["id"], row["title"], row["type"] or "?", str(row["experiments"]),
                      row["best"] or "", f"{row['tasks_done']}/{row['tasks']}", row["state"])
    console.print(table)
    return 0


def _state_of(inc: Any) -> str:
    """``done`` (``done (forced)``) once ``specweave-ray done`` closed it, else ``open``."""
    from specweave_ray._fs import read_json

    try:
        closed = read_json(inc.path / "completion.json")
    except ValueError:  # an unreadable completion record: the increment is not known to be done
        return "open"
    if not closed:
        return "open"
    return "done (forced)" if closed.get("forced") else "done"


def _best_of(inc: Any) -> str:
    from specweave_ray._fs import read_json

    comp = read_json(inc.experiments_dir / "comparison.json")
    if not comp or not comp.get("best"):
        return ""
    row = next((r for r in comp["rows"] if r["record"] == comp["best"]), None)
    return f"{comp['best_candidate']} {comp['metric']}={row['cv_mean']:.4f}" if row else ""


def cmd_run(args: argparse.Namespace) -> int:
    from specweave_ray.spec.config import load_config, parse_config

    if args.config and args.data:
        raise _usage("give a CONFIG or --data, not both")
    if args.config:
        cfg = load_config(args.config)
    elif args.data:
        interactions = args.user_column or args.item_column
        if not args.type or not (args.target or interactions):
            raise _usage("--data needs --type TYPE and --target COLUMN (or, for recommendation, "
                         "--user-column U --item-column I)")
        if args.rating_column and args.target:
            raise _usage("give --rating-column or --target, not both (the rating is the target)")
        name = args.increment or os.path.splitext(os.path.basename(args.data))[0]
        if args.time_column and args.timestamp_column and args.time_column != args.timestamp_column:
            raise _usage("give --time-column or --timestamp-column, not both (they name the same role)")
        data = {"path": os.path.abspath(args.data), "target": args.target or args.rating_column,
                "user_column": args.user_column, "item_column": args.item_column,
                "relevance_threshold": args.relevance_threshold,
                "time_column": args.time_column or args.timestamp_column,
                "series_column": args.series_column, "horizon": args.horizon, "frequency": args.frequency}
        cfg = parse_config({"increment": name, "problem_type": args.type,
                            "data": {k: v for k, v in data.items() if v is not None},
                            **({"k": args.k} if args.k is not None else {}),
                            "sweep": {"cv": args.cv}}, source="command line")
    else:
        raise _usage("give a CONFIG file, or --data FILE --target COLUMN --type TYPE")
    return _run_tasks(args, cfg, increment=None)


def cmd_do(args: argparse.Namespace) -> int:
    from specweave_ray.pipeline import stored_config
    from specweave_ray.spec.config import load_config
    from specweave_ray.workspace.increment import Increment

    inc = Increment.open(args.id, root=args.root)
    cfg = load_config(args.config) if args.config else stored_config(inc)
    return _run_tasks(args, cfg, increment=inc)


def _run_tasks(args: argparse.Namespace, cfg: Any, *, increment: Any) -> int:
    from specweave_ray.pipeline import run_pipeline
    from specweave_ray.workspace import storage

    if getattr(args, "time_budget", None) is not None:
        cfg = cfg.model_copy(update={"time_budget_s": args.time_budget})
    console = _console()
    progress = _ProgressView(console)
    try:
        result = run_pipeline(cfg, root=args.root, increment=increment, start=args.start, address=args.address,
                              use_cache=not args.no_cache, on_progress=progress.update,
                              on_stage=lambda m: console.print(f"[bold]›[/] {m}", soft_wrap=True))
    finally:
        progress.stop()
    if result.skipped:
        console.print(f"skipped (already done): {', '.join(result.skipped)}; --from T-00N reruns from a task",
                      soft_wrap=True)
    if result.sweep is not None:
        _print_comparison(console, result.sweep.comparison)
    if result.gate:
        _print_gate(console, result.gate, result.evaluation)
    elif result.evaluation is not None:
        console.print("gate: no targets (spec.md names no success criteria): nothing was checked, "
                      "so nothing passed", soft_wrap=True)
    _print_parent(console, result.evaluation)
    console.print(f"records: {storage.display(result.increment.experiments_dir)}", soft_wrap=True)
    return 0


def _print_parent(console: Any, evaluation: Any) -> None:
    parent = (evaluation or {}).get("parent")
    if not parent:
        return
    if "error" in parent:
        console.print(f"parent {parent['increment']}: its best model was not scored on this test split "
                      f"({parent['error']})", soft_wrap=True)
        return
    name = evaluation.get("metric")
    new, old = evaluation["metrics"].get(name), parent["metrics"].get(name)
    if new is None or old is None:
        return
    console.print(f"parent {parent['increment']}: its best model ({parent['candidate']}) on this test split "
                  f"{name}={old:.4f}; this increment's {evaluation['candidate']} {name}={new:.4f} "
                  f"({new - old:+.4f})", soft_wrap=True)


def _print_gate(console: Any, rows: Any, evaluation: Any) -> None:
    from rich.table import Table

    title = f"gate: spec targets on the held-out test split ({evaluation['record']})" if evaluation else "gate"
    table = Table(title=title)
    for col in ("target", "measured", "95% CI", "status", "CI worse bound meets?"):
        table.add_column(col)
    style = {"met": "green", "not met": "red", "not measured": "yellow"}
    for r in rows:
        ci = f"[{r.ci_low:.4g}, {r.ci_high:.4g}]" if r.ci_low is not None and r.ci_high is not None else "—"
        worst = {True: "yes", False: "no", None: "—"}[r.worst_bound_met]
        table.add_row(r.target.render(), f"{r.value:.4g}" if r.value is not None else "—", ci,
                      f"[{style[r.status]}]{r.status}[/]", worst)
    console.print(table)


class _ProgressView:
    """Live trials done/running/failed and the best so far, drawn with rich."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._progress = None
        self._task = None

    def update(self, p: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        if self._progress is None:
            self._progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task("", total=p.total)
        running = max(0, p.started - (p.finished - p.cached) - p.failed)
        best = f"best {p.best:.4f} ({p.best_name})" if p.best is not None else ""
        desc = f"running {running} · failed {p.failed} · cached {p.cached} · {best}"
        self._progress.update(self._task, completed=p.finished + p.failed, total=p.total, description=desc)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_comparison(console: Any, comp: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{comp['increment']}: {comp['metric']} ({'higher' if comp['mode'] == 'max' else 'lower'} is better)")
    for col in ("", "candidate", "kind", "cv mean ± std", "lift vs best baseline", "fit s", "record"):
        table.add_column(col)
    for r in comp["rows"]:
        lift = r["lift_over_best_baseline_pct"]
        table.add_row("★" if r["best"] else "", r["candidate"], r["kind"],
                      f"{r['cv_mean']:.4f} ± {r['cv_std'] or 0:.4f}", f"{lift:+.1f}%" if lift is not None else "—",
                      f"{r['fit_time_s']:.2f}" if r["fit_time_s"] is not None else "—", r["record"])
    console.print(table)
    if comp["failed"]:
        console.print(f"[yellow]{comp['failed']} of {comp['trials']} trials failed:[/]")
        for f in comp["failures"][:10]:
            console.print(f"  {f['record']}: {f['error']}", soft_wrap=True)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from rich.table import Table

    from specweave_ray.pipeline._reproduce import reproduce

    for name in ("rtol", "atol"):
        value = getattr(args, name)
        if not (value >= 0 and math.isfinite(value)):
            raise _usage(f"--{name} must be a finite number >= 0, got {value}")
    out = reproduce(args.id, args.experiment, root=args.root, rtol=args.rtol, atol=args.atol)
    console = _console()
    table = Table(title=f"reproduce {out.record} ({out.candidate}): |rerun − recorded| ≤ "
                        f"{out.atol:g} + {out.rtol:g}·|recorded|")
    for col in ("metric", "recorded", "rerun", "difference", "match"):
        table.add_column(col)
    for c in out.checks:
        table.add_row(c.name, f"{c.recorded:.10g}", "—" if c.rerun is None else f"{c.rerun:.10g}",
                      "—" if c.difference is None else f"{c.difference:+.3g}",
                      "[green]yes[/]" if c.matches else "[red]no[/]")
    if out.checks:
        console.print(table)
    for note in out.notes:
        console.print(f"note: {note}", soft_wrap=True)
    bad = sum(not c.matches for c in out.checks)
    console.print("reproduced: every metric matches" if out.matched else
                  f"not reproduced: {bad} of {len(out.checks)} metrics differ" if out.checks else
                  "not reproduced: nothing was rerun", soft_wrap=True)
    return 0 if out.matched else 1


# -- serve, bench, drift --------------------------------------------------------------------
def _version(raw: str) -> str | int:
    text = str(raw).strip().lower()
    if text == "latest":
        return "latest"
    digits = text.removeprefix("model-").removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise _usage(f"--version must be 'latest' or a model version such as 3 or v3, got {raw!r}")
    return int(digits)


def _engine(args: argparse.Namespace) -> str:
    if args.engine:
        return args.engine
    return "ray-serve" if (args.address or os.environ.get("RAY_ADDRESS")) else "local"


def cmd_serve(args: argparse.Namespace) -> int:
    version = _version(args.version)
    engine = _engine(args)
    if engine == "local" and args.replicas not in (None, 1):
        raise _usage("--replicas needs --engine ray-serve (the local engine is one process)")
    if engine != "local" and args.compile:
        raise _usage("--compile needs --engine local (Ray Serve replicas load the booster)")
    if not 0 < args.port < 65536:
        raise _usage(f"--port must be between 1 and 65535, got {args.port}")
    from specweave_ray.deploy.serve import check_port

    check_port(args.host, args.port)
    if engine == "local":
        from specweave_ray.deploy.predictor import Predictor
        from specweave_ray.deploy.serve import serve_local

        predictor = Predictor.load(args.id, version=version, root=args.root)
        if args.compile:
            predictor.compile()  # checked against the package's background rows first
        print(f"serving {predictor.metadata.get('increment')} model-v{predictor.version} on "
              f"http://{args.host}:{args.port} (engine local); Ctrl-C stops", flush=True)
        try:
            serve_local(predictor, host=args.host, port=args.port)
        except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises the Ctrl-C
            pass
        return 0
    from specweave_ray.deploy.serve import run_ray_serve

    run_ray_serve(args.id, root=args.root, version=version, host=args.host, port=args.port,
                  replicas=args.replicas or 1, address=args.address,
                  on_ready=lambda url: print(f"serving on {url} (engine ray-serve); Ctrl-C stops",
                                             flush=True))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.table import Table

    from specweave_ray.deploy.bench import run_bench

    if args.engine and not args.http:
        raise _usage("--engine picks the HTTP engine; add --http")
    record_id, metrics, gate = run_bench(
        args.id, root=args.root, version=_version(args.version), http=args.http,
        engine=_engine(args), n_single=args.single, concurrency=args.concurrency,
        total_requests=args.requests, address=args.address)
    console = _console()
    table = Table(title=f"inference benchmark ({record_id})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:,.0f}" if abs(value) >= 1000 or float(value).is_integer()
                      else f"{value:.3f}")
    console.print(table)
    _print_bench_gate(console, gate)
    return 0


def _print_bench_gate(console: Any, rows: Any) -> None:
    from rich.table import Table

    if not rows:
        console.print("gate: the spec has no latency or throughput target")
        return
    table = Table(title="gate: the spec's latency and throughput targets")
    for col in ("target", "measured", "status"):
        table.add_column(col)
    style = {"met": "green", "not met": "red", "not measured": "yellow"}
    for r in rows:
        table.add_row(r.target.render(), f"{r.value:.4g}" if r.value is not None else "—",
                      f"[{style[r.status]}]{r.status}[/]")
    console.print(table)


def cmd_drift(args: argparse.Namespace) -> int:
    from specweave_ray.data import load_table
    from specweave_ray.deploy.drift import drift_command, load_reference
    from specweave_ray.deploy.predictor import Predictor
    from specweave_ray.workspace import storage
    from specweave_ray.workspace.records import resolve_increment, track_experiment

    inc = resolve_increment(args.id, args.root)
    predictor = Predictor.load(inc, version=_version(args.version))
    name = predictor.metadata.get("reference")
    if not name:
        raise _usage(f"model-v{predictor.version} of {inc.id} was packaged without a drift "
                     "reference; rebuild the package (specweave_ray.deploy.package.build_package)")
    reference = load_reference(predictor.folder / name)
    data = load_table(args.data)
    report, status = drift_command(reference, data, predict=predictor.monitored_output,
                                   psi_threshold=args.psi, ks_alpha=args.ks_alpha)
    rows = [*report.rows, *([report.prediction] if report.prediction is not None else [])]
    metrics = {"drift_passed": int(report.passed), "drifted_features": len(report.drifted),
               "max_psi": max((r.psi for r in rows if math.isfinite(r.psi)), default=0.0),
               "rows": len(data)}
    if report.prediction is not None:
        metrics["prediction_psi"] = report.prediction.psi
    with track_experiment("drift", increment=inc, kind="drift",
                          model=f"model-v{predictor.version}") as exp:
        exp.log_params({"data": os.path.abspath(args.data), "model_version": predictor.version,
                        "psi_threshold": args.psi, "ks_alpha": args.ks_alpha})
        exp.log_metrics(metrics)
        exp.save_report("drift-report.md", report.to_markdown())
        exp.save_report("drift-report.json", json.dumps(report.to_json(), indent=2))
        record_id = exp.id
    print(report.to_markdown())
    print(f"record: {storage.display(inc.experiments_dir / record_id)}")
    return status


def cmd_forecast(args: argparse.Namespace) -> int:
    from specweave_ray.data import load_table
    from specweave_ray.deploy.predictor import Predictor

    if args.horizon is not None and args.horizon < 1:
        raise _usage(f"--horizon must be a positive integer, got {args.horizon}")
    predictor = Predictor.load(args.id, version=_version(args.version), root=args.root)
    if not hasattr(predictor, "forecast"):
        raise _usage(f"model-v{predictor.version} of {predictor.metadata.get('increment')} is not a forecaster; "
                     "forecast reads a timeseries increment's package")
    series = [s.strip() for s in args.series.split(",") if s.strip()] if args.series else None
    fc = predictor.forecast(args.horizon, history=load_table(args.history) if args.history else None,
                            series=series, future=load_table(args.future) if args.future else None)
    text = fc.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S")
    if args.out:
        from specweave_ray._fs import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"{len(fc)} forecasts ({fc['unique_id'].nunique()} series) → {args.out}; intervals: "
              f"{fc.attrs['intervals_note']}")
    else:
        print(text, end="")
    return 0


def cmd_sync_mlflow(args: argparse.Namespace) -> int:
    from specweave_ray.exceptions import RecordError, UsageError
    from specweave_ray.workspace import _mlflow
    from specweave_ray.workspace.records import list_records, resolve_increment, sync_mlflow

    if not _mlflow.enabled():
        raise UsageError("MLflow mirroring is off (SPECWEAVE_MLFLOW=0); unset it to sync")
    inc = resolve_increment(args.id, args.root)
    total = len([r for r in list_records(inc) if r.status != "running"])
    out = sync_mlflow(inc)
    if out["failed"]:
        why = _mlflow.unreachable(_mlflow.tracking_uri(inc.root)) or "see each record's mlflow_error"
        raise RecordError(f"{len(out['failed'])} of {total} records of {inc.id} could not be mirrored to "
                          f"{_mlflow.redact_uri(_mlflow.tracking_uri(inc.root))} ({why})")
    print(f"sync-mlflow {inc.id}: {len(out['mirrored'])} record(s) mirrored, "
          f"{total - len(out['mirrored'])} already in MLflow")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from specweave_ray.finish.validate import (
        checks_json,
        render_checks,
        validate,
        validation_passed,
    )
    from specweave_ray.workspace.records import resolve_increment

    inc = resolve_increment(args.id, args.root)
    checks = validate(inc)
    if args.json:
        print(json.dumps({"increment": inc.id, "passed": validation_passed(checks),
                          "checks": checks_json(checks)}, indent=2))
    else:
        print(f"validate {inc.id}")
        print(render_checks(checks))
    return 0 if validation_passed(checks) else 1


def cmd_done(args: argparse.Namespace) -> int:
    from specweave_ray.finish.docs import sync_docs
    from specweave_ray.finish.notebooks import write_notebooks
    from specweave_ray.finish.summary import complete
    from specweave_ray.finish.validate import render_checks
    from specweave_ray.workspace import storage
    from specweave_ray.workspace.records import resolve_increment

    inc = resolve_increment(args.id, args.root)
    result = complete(inc, force=args.force)
    if result.summary is None:
        print(render_checks(result.checks))
        names = ", ".join(c.name for c in result.failed)
        print(f"done refused: {len(result.failed)} check(s) fail ({names}); fix them, or pass --force "
              f"(recorded in completion.json and the summary)", file=sys.stderr)
        return 1
    docs = sync_docs(inc)  # the workflow's done also syncs the model to the living docs
    notebooks = write_notebooks(inc, execute=True)  # the living docs include the notebooks, run
    state = "done (forced past: " + ", ".join(c.name for c in result.failed) + ")" if result.forced else "done"
    print(f"{inc.id}: {state}")
    for path in (result.summary, docs.architecture, docs.adr, docs.runbook, *notebooks):
        print(f"  {storage.display(path)}")
    return 0


def cmd_sync_docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from specweave_ray.finish.docs import sync_docs
    from specweave_ray.workspace.records import resolve_increment

    inc = resolve_increment(args.id, args.root)
    docs = sync_docs(inc, docs=Path(args.docs) if args.docs else None)
    for path in (docs.architecture, docs.adr, docs.runbook):
        print(path)
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from specweave_ray.finish.issue import write_issue
    from specweave_ray.workspace import storage
    from specweave_ray.workspace.records import resolve_increment

    inc = resolve_increment(args.id, args.root)
    filed = write_issue(inc, args.title, file=not args.no_file)
    print(f"issue written: {storage.display(filed.path)}")
    print(f"filed: {filed.url}" if filed.url else f"not filed: {filed.why_not}")
    return 0


# -- parser --------------------------------------------------------------------------------
def _usage(msg: str) -> UsageError:
    return UsageError(msg)


def _duration(text: str) -> float:
    """``90`` / ``90s`` / ``2m`` / ``1h`` as seconds (argparse turns the error into one line, exit 2)."""
    value = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--time-budget {text!r}: give seconds or a duration like 90, 60s, 2m, 1h") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"--time-budget {text!r}: the budget must be a positive duration")
    return seconds


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage and all would be a screenful in a pipe)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    # On the subcommands the defaults are SUPPRESS: a subparser's default would otherwise
    # overwrite the value given before the command (`specweave-ray --root X status`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=argparse.SUPPRESS if suppress else None,
                        help="increments root: a folder or a pyarrow.fs URI (s3://bucket/prefix, gs://…, "
                             "hdfs://…); default $SPECWEAVE_ROOT, the config's root, or .specweave/increments")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="show tracebacks and debug logs")
    return common


def _task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", metavar="T-00N", help="rerun from this task even if ticked")
    p.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS or an embedded local Ray)")
    p.add_argument("--no-cache", action="store_true", help="rerun trials already recorded as finished")
    p.add_argument("--time-budget", type=_duration, metavar="DURATION",
                   help="the whole run's wall-clock budget: 90, 60s, 2m, 1h (split across the sweeps; "
                        "overrides the config's time_budget_s)")


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(suppress=True)
    parser = _Parser(prog="specweave-ray", description=__doc__.splitlines()[0],
                     parents=[_common_options(suppress=False)])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("inc", parents=[common], help="create an increment folder from templates")
    p.add_argument("name", help='e.g. "Fraud Detection"')
    p.add_argument("--type", required=True, metavar="TYPE", help=TYPE_HELP)
    p.add_argument("--exist-ok", action="store_true", help="reuse an increment with the same slug")
    p.add_argument("--parent", metavar="ID", help="the increment this one follows (e.g. 0001): its best model is "
                                                  "scored on this one's test data")
    p.set_defaults(func=cmd_inc)

    p = sub.add_parser("status", parents=[common], help="list increments, or one increment's experiments")
    p.add_argument("id", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("run", parents=[common], help="create the increment if missing, then run the pipeline")
    p.add_argument("config", nargs="?", help="pipeline config (YAML)")
    p.add_argument("--data", help="CSV/Parquet file, instead of a config")
    p.add_argument("--target", help="target column (with --data)")
    p.add_argument("--type", metavar="TYPE", help=TYPE_HELP + " (with --data)")
    p.add_argument("--increment", help="increment name (with --data; default: the file name)")
    p.add_argument("--cv", type=int, default=5, help="folds (with --data)")
    p.add_argument("--user-column", help="user id column (with --data, recommendation)")
    p.add_argument("--item-column", help="item id column (with --data, recommendation)")
    p.add_argument("--rating-column", help="rating or weight column (with --data, recommendation; optional)")
    p.add_argument("--relevance-threshold", type=float,
                   help="a rating at or above it is relevant (with --rating-column; default: any rating > 0)")
    p.add_argument("--timestamp-column", help="interaction time: per-user splits hold out the latest (with --data)")
    p.add_argument("--k", type=int, help="list length of the ranking metrics (precision@k …; default from the spec)")
    p.add_argument("--time-column", help="time column (with --data; timeseries: required)")
    p.add_argument("--series-column", help="series id column, many series in one file (with --data, timeseries)")
    p.add_argument("--horizon", type=int, help="steps to forecast (with --data, timeseries; default by frequency)")
    p.add_argument("--frequency", help="pandas frequency alias, e.g. W, D, MS (with --data, timeseries; "
                                       "default: inferred per series)")
    _task_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("do", parents=[common], help="run the open tasks of an increment (T-001 … T-006)")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--config", help="pipeline config (default: the one the increment last ran with)")
    _task_options(p)
    p.set_defaults(func=cmd_do)

    p = sub.add_parser("reproduce", parents=[common],
                       help="rerun one trial record from the stored config; exit 0 if its metrics match, 1 if not")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--experiment", required=True, metavar="exp-NNN", help="the record to rerun (exp-NNN or its folder)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance per metric (default 1e-6)")
    p.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance per metric (default 1e-9)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("serve", parents=[common], help="serve a packaged model over HTTP (loopback by default)")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--engine", choices=("local", "ray-serve"),
                   help="local: uvicorn in this process (default); ray-serve: a Ray Serve deployment "
                        "(default with --address or $RAY_ADDRESS)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--replicas", type=int, help="Ray Serve replicas (ray-serve only; default 1)")
    p.add_argument("--version", default="latest", help="model version K or latest")
    p.add_argument("--address", help="Ray cluster address (ray-serve; default $RAY_ADDRESS or a local Ray)")
    p.add_argument("--compile", action="store_true",
                   help="score XGBoost/LightGBM through trees compiled to C (TL2cgen + gcc, cached; "
                        "local engine): one row ~9x faster for XGBoost here")
    p.add_argument("--trust-unsigned", action="store_true",
                   help="load a package that is unsigned or fails its signature check (logged); only one you trust")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", parents=[common],
                       help="inference latency/throughput against the spec's targets (a benchmark record)")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--http", action="store_true", help="also serve the model and load it over loopback HTTP")
    p.add_argument("--engine", choices=("local", "ray-serve"), help="HTTP engine (with --http; default local)")
    p.add_argument("--version", default="latest", help="model version K or latest")
    p.add_argument("--single", type=int, default=2000, help="timed single-row calls in process")
    p.add_argument("--requests", type=int, default=4000, help="HTTP requests (with --http)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent HTTP clients (with --http)")
    p.add_argument("--address", help="Ray cluster address for --engine ray-serve")
    p.add_argument("--trust-unsigned", action="store_true",
                   help="load a package that is unsigned or fails its signature check (logged); only one you trust")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("drift", parents=[common],
                       help="PSI/KS drift of new data against the model's reference; exit 1 past thresholds")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--data", required=True, help="new data (CSV/Parquet), the model's input columns")
    p.add_argument("--version", default="latest", help="model version K or latest")
    p.add_argument("--psi", type=float, default=0.2, help="PSI above which a feature drifts (default 0.2)")
    p.add_argument("--ks-alpha", type=float, default=0.01, help="KS p-value below which a numeric feature may drift")
    p.add_argument("--trust-unsigned", action="store_true",
                   help="load a package that is unsigned or fails its signature check (logged); only one you trust")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("forecast", parents=[common],
                       help="forecast with a timeseries increment's package (CSV per series and step)")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--horizon", type=int, help="steps to forecast (default the fitted horizon)")
    p.add_argument("--series", help="comma-separated series ids (default all)")
    p.add_argument("--history", help="new observations after the stored history (CSV/Parquet, the data's columns)")
    p.add_argument("--future", help="future values of the exogenous columns (CSV/Parquet)")
    p.add_argument("--out", help="write the CSV here instead of stdout")
    p.add_argument("--version", default="latest", help="model version K or latest")
    p.add_argument("--trust-unsigned", action="store_true",
                   help="load a package that is unsigned or fails its signature check (logged); only one you trust")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("validate", parents=[common],
                       help="check an increment against its records and spec; exit 1 when a check fails")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("sync-mlflow", parents=[common],
                       help="mirror to MLflow the records it lacks (after the tracking server was unreachable)")
    p.add_argument("id", help="increment id, number or slug")
    p.set_defaults(func=cmd_sync_mlflow)

    p = sub.add_parser("done", parents=[common],
                       help="close a validated increment: COMPLETION-SUMMARY.md, then the living docs")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--force", action="store_true", help="close it although checks fail (recorded)")
    p.set_defaults(func=cmd_done)

    p = sub.add_parser("sync-docs", parents=[common],
                       help="write docs/architecture/ml-models.md, an ADR and a runbook from the records")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("--docs", help="docs folder (default: docs/ beside .specweave/)")
    p.set_defaults(func=cmd_sync_docs)

    p = sub.add_parser("issue", parents=[common],
                       help="write a ready-to-file issue (metrics, drift, the retrain command); file it with gh")
    p.add_argument("id", help="increment id, number or slug")
    p.add_argument("title", help='e.g. "Retrain with new data"')
    p.add_argument("--no-file", action="store_true", help="only write the file, even when gh is set up")
    p.set_defaults(func=cmd_issue)
    return parser


def _quiet_dependencies() -> None:
    """The CLI owns the terminal: Optuna's per-study INFO lines, MLflow's schema-migration INFO,
    Ray's start-up banners and Optuna's note on list-valued choices are noise for a user (the
    records hold every result); ``--debug`` shows them all."""
    import warnings

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow configures its loggers
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("optuna", "mlflow", "alembic", "ray", "ray.tune", "ray.serve"):
        logging.getLogger(name).setLevel(logging.WARNING if name != "optuna" else logging.ERROR)
    logging.getLogger("ray.tune.search.searcher").setLevel(logging.ERROR)
    # A failed trial's traceback ("Trial task failed for trial …") and Tune's "Trials did not
    # complete" are in the trial's record (meta.json error, logs/); the terminal gets one line.
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # "Token authentication is enabled for this Ray cluster …" on every local start: a warning
    # the user can do nothing about here (the embedded Ray is on loopback, with its own token)
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Choices for a categorical distribution")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.debug:
        _quiet_dependencies()
    from specweave_ray.workspace import storage

    trusted = os.environ.get("SPECWEAVE_TRUST_UNSIGNED")
    if getattr(args, "trust_unsigned", False):  # read wherever a package loads: Serve replicas too
        os.environ["SPECWEAVE_TRUST_UNSIGNED"] = "1"
    try:
        return _call(args, storage)
    finally:  # for this command only (main called in-process, as the tests do, must not leak it)
        if trusted is None:
            os.environ.pop("SPECWEAVE_TRUST_UNSIGNED", None)
        else:
            os.environ["SPECWEAVE_TRUST_UNSIGNED"] = trusted


def _call(args: argparse.Namespace, storage: Any) -> int:
    try:
        code = int(args.func(args) or 0)
        storage.flush()  # a URI root: the command succeeded only if what it wrote is there
        return code
    except SpecweaveError as err:
        if args.debug:
            raise
        print(f"specweave-ray {args.command}: error: {err}", file=sys.stderr)
        try:
            storage.flush()  # what was recorded before the error still goes up
        except SpecweaveError as late:
            print(f"specweave-ray {args.command}: error: {late}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished trials are recorded; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
