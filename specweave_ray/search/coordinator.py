"""The driver-side coordinator: every trial, from any node, becomes an experiment record.

It is fed by a thin Ray Tune ``Callback`` in :mod:`specweave_ray.search._ray.tune` (Ray stays in one
module) and never reads the workers' filesystems: metrics arrive in Tune's reported results, the
error of a failed trial in Tune's error text, fitted models through the object store. Records are
written on the driver as each trial ends, by a writer thread in the order the trials ended (the
Tune callback only queues them: Tune's event loop is serial, so a record's writes and fsyncs
there delayed every next trial); the MLflow mirror runs on another background thread so a slow
tracking store does not hold the records back. :meth:`Coordinator.flush` waits for both.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specweave_ray._fs import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from specweave_ray.metrics import MetricDef
from specweave_ray.search._cache import estimator_path
from specweave_ray.search._isolate import parse_tag
from specweave_ray.search.trial import ERROR_KEY, INFO_PREFIX, OOF_KEY
from specweave_ray.spec.experiment import ModelExperiment
from specweave_ray.workspace import _mlflow
from specweave_ray.workspace._lineage import source_hash
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import Record, list_records, open_experiment, stamp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    """One trial as recorded: its candidate, params, scores, where it ran and how it ended."""

    candidate: str
    kind: str                       # "candidate" | "baseline"
    trial_id: str
    record_id: str
    status: str                     # "finished" | "failed" | "interrupted"
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    node: str | None = None
    error: str | None = None
    cached: bool = False
    stopped_early: bool = False

    @property
    def score(self) -> float | None:
        return self.metrics.get("cv_mean")


@dataclass
class Progress:
    total: int
    started: int = 0
    finished: int = 0
    failed: int = 0
    cached: int = 0
    best: float | None = None
    best_name: str | None = None
    events: list[str] = field(default_factory=list)


class Coordinator:
    """Turns trial events into records; knows nothing of Ray.

    Args:
        increment: Where records go.
        metric: The primary metric (direction decides "best").
        candidates: Candidates by name.
        meta: Fields every trial record gets (data fingerprint, cv, sweep id …).
        parent_run_id: MLflow run of the sweep; trial runs are its children.
        on_progress: Called with a :class:`Progress` after each event (the CLI draws it).
    """

    def __init__(self, increment: Increment, *, metric: MetricDef, candidates: Mapping[str, ModelExperiment],
                 meta: Mapping[str, Any], parent_run_id: str | None, total: int,
                 on_progress: Callable[[Progress], None] | None = None,
                 cache_key_fn: Callable[[str, Mapping[str, Any]], str] | None = None,
                 contexts: Mapping[str, str] | None = None) -> None:
        self.increment = increment
        self._cache_key_fn = cache_key_fn
        self._contexts = dict(contexts or {})
        self.metric = metric
        self.candidates = dict(candidates)
        self.meta = dict(meta)
        self._parent_run_id = parent_run_id
        self.results: dict[str, TrialResult] = {}
        self.progress = Progress(total=total)
        self._on_progress = on_progress
        self._last: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._mirror = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-mirror") \
            if _mlflow.enabled() else None
        self._pending: list[Future[Any]] = []
        # the record writes, in order, off Tune's event loop (measured on 2 cores: ~45 ms a trial
        # of JSON encoding, five fsyncs and a folder claim that held up the next trial's start)
        self._writer: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record-writer")
        self._writes: list[Future[TrialResult]] = []
        self._prune_at = _KEEP_WRITES
        self._recorded: set[str] = set()   # trial ids whose record is written or queued
        self._notify_lock = threading.Lock()
        self._oof_in: dict[str, np.ndarray] = {}                    # trial id → its final OOF outputs
        self._oof: dict[str, tuple[TrialResult, np.ndarray]] = {}   # candidate → its best trial's

    # -- events (called by the Tune callback on the driver) ------------------------------
    def trial_started(self, trial_id: str, config: Mapping[str, Any]) -> None:
        with self._lock:
            self._started[trial_id] = time.time()
            self._configs[trial_id] = dict(config)
            self.progress.started += 1
        self._notify()

    def trial_result(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        # the out-of-fold outputs are taken out of the result in place (Tune lets a callback
        # modify it), so Tune's own trial state and experiment checkpoints never carry the array
        oof = result.pop(OOF_KEY, None) if isinstance(result, dict) else None
        if ERROR_KEY in result:  # the trial failed: keep what it reported before, add the error
            with self._lock:
                self._last[trial_id] = {**self._last.get(trial_id, {}), ERROR_KEY: result[ERROR_KEY]}
            return
        with self._lock:
            if oof is not None:
                self._oof_in[trial_id] = np.asarray(oof)
            hist = self._last.get(trial_id, {}).get("_history", [])
            if "stage" in result and self.metric.name in result:
                hist.append({"name": self.metric.name, "value": float(result[self.metric.name]),
                             "step": int(result["stage"])})
            self._last[trial_id] = {**result, "_history": hist}

    def trial_completed(self, trial_id: str, config: Mapping[str, Any]) -> Future[TrialResult]:
        last = self._last.get(trial_id, {})
        if ERROR_KEY in last:  # failed in its own process (search/_isolate.py): the worker lived on
            text = last[ERROR_KEY]
            tag = parse_tag(text)
            return self.trial_failed(trial_id, config, text, node=tag.get("node"),
                                     cause=tag.get("cause") or {"kind": "exception"})
        stopped = bool(last) and int(last.get("stage", 1)) < int(last.get("n_stages", 1))
        return self._record(trial_id, config, last, error=None, stopped_early=stopped)

    def trial_failed(self, trial_id: str, config: Mapping[str, Any], error: str, *, node: str | None = None,
                     cause: Mapping[str, Any] | None = None) -> Future[TrialResult]:
        last = dict(self._last.get(trial_id, {}))
        if node and not last.get(f"{INFO_PREFIX}node"):
            last[f"{INFO_PREFIX}node"] = node
        return self._record(trial_id, config, last, error=error or "trial failed (no error text)", cause=cause)

    def record_interrupted(self, reason: str = "the sweep was interrupted (Ctrl-C)", *,
                           by: str = "ctrl_c") -> list[TrialResult]:
        """Record every trial that started and did not end as ``interrupted`` (a later run reruns it);
        ``by`` (``ctrl_c``, ``time_budget``) goes in the record's cause."""
        with self._lock:
            open_trials = [(tid, cfg) for tid, cfg in self._configs.items() if tid not in self._recorded]
        queued = [self._record(tid, cfg, dict(self._last.get(tid, {})), error=reason,
                               cause={"kind": "interrupted", "by": by}, status="interrupted") for tid, cfg in open_trials]
        return [fut.result() for fut in queued]

    def add_cached(self, record: Record) -> TrialResult:
        """Count a finished record from an earlier run as this sweep's result (no new record)."""
        meta = record.meta
        tr = TrialResult(candidate=meta.get("candidate") or meta.get("model") or record.id,
                         kind=meta.get("candidate_kind", "candidate"), trial_id=meta.get("trial_id") or record.id,
                         record_id=record.id, status=record.status, params=dict(record.params),
                         metrics=dict(record.metrics), node=meta.get("node"), cached=True,
                         stopped_early=bool(meta.get("stopped_early")))
        with self._lock:
            self.results[tr.trial_id] = tr
            self.progress.cached += 1
            self.progress.finished += 1
            self._update_best(tr)
        self._notify()
        return tr

    # -- writing -----------------------------------------------------------------------------
    def _record(self, trial_id: str, config: Mapping[str, Any], last: Mapping[str, Any], *,
                error: str | None, stopped_early: bool = False, cause: Mapping[str, Any] | None = None,
                status: str = "failed") -> Future[TrialResult]:
        """Queue the trial's record on the writer thread (numbered here, in the order the trials
        end); the future is its :class:`TrialResult`."""
        name = config["candidate"]
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            index = self._counts[name]
            self._recorded.add(trial_id)
            oof = self._oof_in.pop(trial_id, None)
            # a recorded trial's events are done with: what it reported and its config go into the
            # record; the driver keeps only its TrialResult (memory flat in the trials but for that)
            started = self._started.pop(trial_id, None)
            self._configs.pop(trial_id, None)
            self._last.pop(trial_id, None)
            if len(self._writes) >= self._prune_at:  # written ones are done with too, but for errors
                self._writes = [f for f in self._writes if not f.done() or f.exception() is not None]
                self._prune_at = max(_KEEP_WRITES, 2 * len(self._writes))  # amortised: a long queue is not rescanned
        write = functools.partial(self._write, trial_id, dict(config), dict(last), index, oof, ended=time.time(),
                                  started=started, error=error, stopped_early=stopped_early, cause=cause,
                                  status=status)
        if self._writer is None:  # after flush (nothing the sweep does): written here and now
            done: Future[TrialResult] = Future()
            done.set_result(write())
            return done
        # in this thread's context: the run's lineage (workspace.records.run_lineage) is a context variable
        fut = self._writer.submit(contextvars.copy_context().run, write)
        self._writes.append(fut)
        return fut

    def _write(self, trial_id: str, config: Mapping[str, Any], last: Mapping[str, Any], index: int,
               oof: np.ndarray | None, *, ended: float, started: float | None, error: str | None, stopped_early: bool,
               cause: Mapping[str, Any] | None, status: str) -> TrialResult:
        """On the writer thread: the record's four writes (meta, params, metrics, notes), its
        history append and its close, each atomic as every record write is; then the result."""
        name = config["candidate"]
        cand = self.candidates[name]
        params = dict(config.get("params", {}))
        info = {k[len(INFO_PREFIX):]: v for k, v in last.items() if k.startswith(INFO_PREFIX)}
        metrics = {k: float(v) for k, v in last.items()
                   if not k.startswith(INFO_PREFIX) and not k.startswith("_") and k not in _TUNE_KEYS
                   and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        meta = {
            **self.meta,
            "kind": "trial" if cand.kind == "candidate" else "baseline",
            "candidate": name, "candidate_kind": cand.kind, "model": estimator_path(cand.estimator),
            "trial_id": trial_id, "node": info.get("node"), "hostname": info.get("hostname"),
            "resources": {**dict(cand.resources), "gpu_ids": info.get("gpu_ids") or "",
                          "cuda_visible_devices": info.get("cuda_visible_devices") or ""},
            "device_warnings": [w for w in (info.get("device_warnings") or "").split(" | ") if w],
            "stopped_early": stopped_early,
            # a finished trial (ASHA's early stop included: it is the search's decision) is reused
            # by a later run; a failed one is retried
            "cache_key": self._cache_key_fn(name, params) if self._cache_key_fn and error is None else None,
            "cache_context": self._contexts.get(name),
            "lineage": {**self.meta.get("lineage", {}), "estimator_source_sha256": source_hash(cand.estimator)},
        }
        if info.get("chunk_nodes"):  # a local forecaster's series fitted in chunks (search/_ray)
            meta["chunks"] = {"tasks": int(info.get("chunk_tasks") or 0),
                              "nodes": str(info["chunk_nodes"]).split(",")}
        notes = []
        if metrics.get("series_fallbacks"):
            notes.append(f"Series fallbacks (summed over the folds): {metrics['series_fallbacks']:g} got the naive "
                         f"forecast, {metrics.get('series_timed_out', 0):g} of them over the per-series time limit")
        if meta["device_warnings"]:
            notes.append("Device fallback: " + "; ".join(meta["device_warnings"]))
        if error is not None:
            notes.append(f"Trial {status}:\n\n```\n{error.strip()[-4000:]}\n```")
            meta["status"] = status
            fault = dict(cause or {}).get("kind") in _FAULTS
            meta["error"] = {"type": "TrialFault" if fault else _error_type(error),
                             "message": _fault_message(error) if fault else _error_message(error),
                             "cause": dict(cause or {"kind": "exception"}), "traceback": error}
        if started is not None:
            meta["started"] = stamp(started)
            meta["duration_s"] = round(ended - started, 4)
        # when Tune reported the end, not when the writer thread got to it (spans must not overlap
        # the next trial on the freed resources)
        meta["ended"] = stamp(ended)
        exp = open_experiment(f"{name}-trial-{index:03d}", increment=self.increment, kind=meta["kind"],
                              model=meta["model"], meta=meta, mirror=False, params=params, metrics=metrics,
                              notes="\n\n".join(notes))
        history = last.get("_history", [])
        if history:
            exp.append_history([{**h, "name": f"{h['name']}_by_stage"} for h in history])
        exp.close()
        if self._mirror is not None:
            self._pending.append(self._mirror.submit(self._mirror_one, exp))
        tr = TrialResult(candidate=name, kind=cand.kind, trial_id=trial_id, record_id=exp.id,
                         status=exp.meta["status"], params=params, metrics=metrics, node=info.get("node"),
                         error=meta["error"]["message"] if error is not None else None,
                         stopped_early=stopped_early)
        with self._lock:
            self.results[trial_id] = tr
            self._keep_oof(tr, oof)
            if error is not None:
                self.progress.failed += 1
                self.progress.events.append(f"{exp.id} {status}: {tr.error}")
            else:
                self.progress.finished += 1
                self._update_best(tr)
        if error is not None:
            logger.warning("trial %s (%s) %s: %s", trial_id, name, status, tr.error)
        self._notify()
        return tr

    def _keep_oof(self, tr: TrialResult, oof: np.ndarray | None) -> None:
        """Hold only each candidate's best trial's out-of-fold outputs (called under the lock)."""
        if oof is None or tr.status != "finished" or tr.kind != "candidate":
            return
        cur = self._oof.get(tr.candidate)
        if cur is None or best_per_candidate([cur[0], tr], self.metric).get(tr.candidate) is tr:
            self._oof[tr.candidate] = (tr, oof)

    def out_of_fold(self, best: Mapping[str, TrialResult]) -> dict[str, np.ndarray]:
        """Each candidate's best trial's out-of-fold outputs, saved as ``oof.npy`` in its record
        (meta.json ``artifacts.oof``); a best trial reused from the cache reads its own file. A
        candidate whose best trial has none (stopped early by ASHA, an earlier version) is left out."""
        out = {}
        for name, tr in best.items():
            if tr.kind != "candidate":
                continue
            path = self.increment.experiments_dir / tr.record_id
            kept = self._oof.get(name)
            if kept is not None and kept[0].trial_id == tr.trial_id:
                buf = io.BytesIO()
                np.save(buf, kept[1], allow_pickle=False)
                data = buf.getvalue()
                atomic_write_bytes(path / "oof.npy", data)
                meta = read_json(path / "meta.json", {})
                meta.setdefault("artifacts", {})["oof"] = {
                    "file": "oof.npy", "sha256": hashlib.sha256(data).hexdigest(), "shape": list(kept[1].shape)}
                atomic_write_json(path / "meta.json", meta)
                out[name] = kept[1]
            elif (path / "oof.npy").is_file():
                out[name] = read_oof(path)
        return out

    def open_parent_run(self, factory: Callable[[], str | None]) -> None:
        """Create the sweep's MLflow run on the mirror thread: the first use of a sqlite store
        costs seconds (schema creation), which would otherwise delay the first trial."""
        if self._mirror is not None:
            self._parent = self._mirror.submit(factory)

    @property
    def parent_run_id(self) -> str | None:
        fut = getattr(self, "_parent", None)
        if fut is None:
            return self._parent_run_id
        try:
            return fut.result()
        except Exception as err:  # noqa: BLE001 - records on disk stay the truth
            if isinstance(err, ConnectionError) or _mlflow.is_connection_error(err):
                _mlflow.mark_down(_mlflow.tracking_uri(self.increment.root), f"{type(err).__name__}: {err}")
            else:
                logger.warning("MLflow parent run could not be created: %s", err)
            return None

    def mirror_later(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the mirror thread (after what is queued), waited for by :meth:`flush`."""
        if self._mirror is not None:
            self._pending.append(self._mirror.submit(fn))

    def _mirror_one(self, exp: Any) -> None:
        exp.mirror_to_mlflow(parent_run_id=self.parent_run_id)

    def _update_best(self, tr: TrialResult) -> None:
        score = tr.score
        if score is not None and tr.status == "finished" and tr.kind == "candidate" and (
                self.progress.best is None or self.metric.better(score, self.progress.best)):
            self.progress.best, self.progress.best_name = score, tr.record_id

    def _notify(self) -> None:
        if self._on_progress is not None:
            try:
                with self._notify_lock:  # called from the driver's Tune loop and the writer thread
                    self._on_progress(self.progress)
            except Exception:  # noqa: BLE001 - a broken display must not fail the sweep
                logger.debug("progress callback failed", exc_info=True)

    def flush(self) -> None:
        """Wait for the queued records to be written, then for the MLflow mirror to catch up.

        Raises:
            RecordError: a record could not be written (the first such error; every other
                queued record was still written).
        """
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        errors = [fut.exception() for fut in self._writes if fut.exception() is not None]
        self._writes.clear()
        if errors:
            raise errors[0]
        for fut in self._pending:
            fut.result()
        self._pending.clear()
        if self._mirror is not None:
            self._mirror.shutdown(wait=True)
            self._mirror = None


_KEEP_WRITES = 512  # queued-record futures kept before the written ones are let go


_TUNE_KEYS = {"training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "time_since_restore",
              "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore",
              "done", "pid", "date", "stage", "n_stages", "n_folds", "config", "trial_id",
              "node_ip", "hostname", "checkpoint_dir_name", "should_checkpoint", "experiment_tag"}


_FAULTS = ("exit", "signal", "oom", "timeout", "worker_died", "node_died", "interrupted")


def _fault_message(text: str) -> str:
    """The TrialFault's own line (``…TrialFault: trial process exited with code 3 …``)."""
    for line in reversed(text.strip().splitlines()):
        if "TrialFault: " in line:
            return line.split("TrialFault: ", 1)[1].strip()[:500]
    lines = text.strip().splitlines()
    for line in lines:  # Ray's own words for a worker whose node went away
        if "its node has died" in line:
            return line.strip()[:500]
    for line in lines:  # Ray's own words for a worker that died under it
        if "actor died" in line.lower() or "worker exit detail" in line.lower():
            return line.strip()[:500]
    return _error_message(text)


def _error_type(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        head = line.split(":", 1)[0].strip()
        if head and head.replace(".", "").replace("_", "").isalnum() and (head.endswith("Error") or head.endswith("Exception")):
            return head.rsplit(".", 1)[-1]
    if "ActorDiedError" in text or "actor died" in text.lower() or "RayActorError" in text:
        return "WorkerDied"
    return "TrialError"


def _error_message(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if ":" in line and (line.split(":", 1)[0].strip().endswith(("Error", "Exception"))):
            return line.split(":", 1)[1].strip()[:500]
    return text.strip().splitlines()[0][:500] if text.strip() else "trial failed"


# -- comparison -----------------------------------------------------------------------------
def best_per_candidate(results: Mapping[str, TrialResult] | list[TrialResult], metric: MetricDef) -> dict[str, TrialResult]:
    """Each candidate's best finished trial, by name. The same whatever order ``results`` come in
    (the order trials finished in under Ray): on a tied score a complete trial wins over one ASHA
    stopped early (it scored fewer boosting rounds), then the one with the first params, then
    the first trial id."""
    items = results.values() if isinstance(results, Mapping) else results
    best: dict[str, TrialResult] = {}
    for tr in items:
        if tr.status != "finished" or tr.score is None:
            continue
        cur = best.get(tr.candidate)
        if cur is None or metric.better(tr.score, cur.score) or (tr.score == cur.score and _tie(tr) < _tie(cur)):
            best[tr.candidate] = tr
    return dict(sorted(best.items()))


def _tie(tr: TrialResult) -> tuple[bool, str, str]:
    return tr.stopped_early, json.dumps(tr.params, sort_keys=True, default=repr), tr.trial_id


def lift(score: float, baseline: float, metric: MetricDef) -> float | None:
    """Percent improvement over ``baseline`` in the metric's direction."""
    if baseline == 0:
        return None
    gain = (score - baseline) if metric.mode == "max" else (baseline - score)
    return 100.0 * gain / abs(baseline)


def write_comparison(increment: Increment, results: list[TrialResult], metric: MetricDef, *,
                     ensemble: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``experiments/comparison.md`` + ``comparison.json``: each candidate's best trial and each
    baseline, sorted by the primary metric, lift over the best baseline, best marked.

    ``ensemble`` is :func:`specweave_ray.search._ensemble.add_ensembles`' block: the ensembles
    (kind ``ensemble`` among ``results``) are rows too, and the chosen one is the best."""
    best = best_per_candidate(results, metric)
    rows = sorted(best.values(), key=lambda t: t.score, reverse=metric.mode == "max")
    baselines = [t for t in rows if t.kind == "baseline"]
    best_base = baselines[0] if baselines else None
    cands = [t for t in rows if t.kind == "candidate"]
    chosen = (ensemble or {}).get("chosen")
    picked = [t for t in rows if t.kind == "ensemble" and t.record_id == chosen]
    winner = picked[0] if picked else (cands[0] if cands else None)
    results = [t for t in results if t.kind != "ensemble"]  # trials counts: the sweep's own
    failed = [t for t in results if t.status == "failed"]
    interrupted = [t for t in results if t.status == "interrupted"]  # e.g. stopped by the time budget
    out_rows = []
    for t in rows:
        out_rows.append({
            "candidate": t.candidate, "kind": t.kind, "record": t.record_id, "cv_mean": t.score,
            "cv_std": t.metrics.get("cv_std"), "fit_time_s": t.metrics.get("fit_time_s"),
            "lift_over_best_baseline_pct": lift(t.score, best_base.score, metric) if best_base else None,
            "params": dict(t.params), "best": t is winner, "node": t.node,
        })
    summary = {
        "increment": increment.id, "metric": metric.name, "mode": metric.mode,
        "best": winner.record_id if winner else None, "best_candidate": winner.candidate if winner else None,
        "best_baseline": best_base.candidate if best_base else None,
        "trials": len(results), "failed": len(failed), "interrupted": len(interrupted),
        "failures": [{"record": t.record_id, "candidate": t.candidate, "error": t.error} for t in failed],
        "rows": out_rows,
    }
    if ensemble is not None:
        summary["ensemble"] = dict(ensemble)
    atomic_write_json(increment.experiments_dir / "comparison.json", summary)
    atomic_write_text(increment.experiments_dir / "comparison.md", render_comparison(summary))
    return summary


def render_comparison(summary: Mapping[str, Any]) -> str:
    m = summary["metric"]
    arrow = "higher is better" if summary["mode"] == "max" else "lower is better"
    lines = [f"# Model comparison — {summary['increment']}", "",
             f"Primary metric: **{m}** ({arrow}), cross-validated; {summary['trials']} trials, "
             f"{summary['failed']} failed"
             + (f", {summary['interrupted']} interrupted (not finished)" if summary.get("interrupted") else "")
             + ".", "",
             f"| | candidate | kind | {m} (cv mean ± std) | lift over best baseline | fit time (s) | record |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        std = f" ± {r['cv_std']:.4f}" if r["cv_std"] is not None else ""
        lift_s = f"{r['lift_over_best_baseline_pct']:+.1f}%" if r["lift_over_best_baseline_pct"] is not None else "—"
        fit = f"{r['fit_time_s']:.2f}" if r["fit_time_s"] is not None else "—"
        lines.append(f"| {'**best**' if r['best'] else ''} | {r['candidate']} | {r['kind']} | "
                     f"{r['cv_mean']:.4f}{std} | {lift_s} | {fit} | `{r['record']}` |")
    ens = summary.get("ensemble")
    if ens:
        lines += ["", "## Ensemble", ""]
        if not ens.get("built"):
            lines.append(f"{ens.get('reason', 'no ensemble')}.")
        else:
            single = ens["best_single"]
            target, clients = ens.get("target_latency_p99_ms"), int(ens.get("latency_clients") or 1)
            served = (f" at {clients} concurrent clients (estimated as 2 x {clients} x the model call's p99 on "
                      f"an encoded row: one server answers one request at a time, and a closed loop's p99 is "
                      f"twice its mean)" if clients > 1 else " (single-row, in process)")
            rps, single_rps = ens.get("target_throughput_rps"), single.get("single_served_throughput_rps_estimate")
            lines.append(f"Best single candidate: {single['candidate']} ({m} {single['cv_mean']:.4f}, single-row "
                         f"p99 {single['single_latency_p99_ms']:.1f} ms"
                         + (f", served at an estimated {single_rps:,.0f} req/s" if single_rps is not None else "")
                         + "); latency target: "
                         f"{f'latency_p99 < {target:g} ms{served}' if target is not None else 'none in the spec'}; "
                         f"throughput target: "
                         f"{f'{rps:g} req/s (estimated as 1000 / the p99 of the model call on an encoded row, in ms)' if rps is not None else 'none in the spec'}.")
            lines.append("An ensemble is chosen only when it beats the best single candidate by more than the "
                         "standard error of their per-fold differences (the ensemble by nested CV, both on the "
                         "sweep's folds) within the latency and throughput targets.")
            if ens.get("pruned"):
                drops = "; ".join(f"{d['candidate']} ({d['model_latency_p99_ms']:.2f} ms alone; the pool's stack took "
                                  f"{d['pool_model_latency_p99_ms']:.2f} ms)"
                                  for d in ens["pruned"])
                lines.append(f"To fit the targets (a model call within {ens['serving_budget_ms']:.2f} ms at p99), "
                             f"dropped from the pool, the least missed first: {drops}; "
                             f"the ensembles are over {', '.join(ens['pool'])}.")
            lines.append("")
            for e in ens["ensembles"]:
                members = ", ".join(f"{n} {w:.2f}" for n, w in zip(e["members"], e["weights"], strict=True)) \
                    if e["weights"] else ", ".join(e["members"])
                lines.append(f"- `{e['record']}` {e['candidate']} ({members}): "
                             f"{'**chosen**' if e['chosen'] else 'not chosen'} — {e['reason']}.")
        if ens.get("left_out"):
            lines.append(f"\nLeft out (no out-of-fold outputs or no refit model): {', '.join(ens['left_out'])}.")
    if summary["failures"]:
        lines += ["", "## Failed trials", ""]
        lines += [f"- `{f['record']}` ({f['candidate']}): {f['error']}" for f in summary["failures"]]
    return "\n".join(lines) + "\n"


def read_oof(record_path: Any) -> np.ndarray:
    """A record's ``oof.npy`` (no pickles: ``allow_pickle=False``)."""
    return np.load(record_path / "oof.npy", allow_pickle=False)


def cached_records(increment: Increment) -> list[Record]:
    """Finished trial/baseline records that carry a cache key."""
    return [r for r in list_records(increment) if r.status == "finished" and r.meta.get("cache_key")
            and r.kind in ("trial", "baseline")]
