"""Experiment records on disk, mirrored to MLflow: ``track_experiment`` / ``track_model``.

A record is ``experiments/exp-NNN-<slug>/`` holding ``meta.json``, ``params.json``,
``metrics.json``, ``notes.md`` and ``logs/`` (DESIGN.md). Every file write is atomic and the
number is claimed under a folder lock, so concurrent writers never share one.

>>> from specweave_ray import track_experiment
>>> with track_experiment("eda", increment="0001") as exp:   # doctest: +SKIP
...     exp.log_metric("missing_values", 3)
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import functools
import json
import logging
import math
import os
import platform
import re
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specweave_ray._fs import (
    atomic_write_json,
    atomic_write_text,
    claim_numbered_dir,
    read_json,
    to_jsonable,
)
from specweave_ray.candidates.serialization import save_native
from specweave_ray.exceptions import RecordError
from specweave_ray.workspace import _lineage, _mlflow, storage
from specweave_ray.workspace.increment import Increment, slugify

logger = logging.getLogger(__name__)

STATUSES = ("running", "finished", "failed", "interrupted")
_EXP_RE = re.compile(r"^exp-(\d{3,})-")
_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = frozenset({"meta.json", "params.json", "metrics.json", "logs"})
RECORD_FILES = frozenset({"meta.json", "params.json", "metrics.json"})  # what read_record reads
_PACKAGES = ("specweave-ray", "numpy", "pandas", "scikit-learn", "ray", "optuna", "mlflow",
             "xgboost", "lightgbm", "torch", "pyarrow")


@contextlib.contextmanager
def _writing(what: Path) -> Iterator[None]:
    """An OSError while writing a record (a full disk, a read-only folder) is a RecordError naming
    the file; the record's earlier files and every earlier record stay as they were."""
    try:
        yield
    except OSError as err:
        raise RecordError(f"cannot write the record {what}: {err}") from err


def stamp(t: float) -> str:
    """A record's time: `t` (seconds since the epoch) as UTC ISO 8601 to the millisecond."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


def _now() -> str:
    return stamp(time.time())


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Python, key package versions, git commit and dirty flag of the repository holding the
    specweave_ray code that runs (not of the working dir), hostname (cached)."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            packages[name] = version(name)
    git = _lineage.code_git()
    return {"python": platform.python_version(), "packages": packages, "git_commit": git["commit"],
            "git_dirty": git["dirty"], "hostname": socket.gethostname(), "platform": sys.platform}


_RUN_LINEAGE: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("run_lineage", default=None)


@contextlib.contextmanager
def run_lineage(**fields: Any) -> Iterator[None]:
    """Lineage every record opened inside the block gets (the pipeline's config hash and seed)."""
    token = _RUN_LINEAGE.set({**(_RUN_LINEAGE.get() or {}), **fields})
    try:
        yield
    finally:
        _RUN_LINEAGE.reset(token)


def lineage(**fields: Any) -> dict[str, Any]:
    """The ``lineage`` block of a record's ``meta.json``: the package version, the git commit of
    the code that ran and whether its tree was dirty, and (None until a stage knows them) the
    data fingerprint, the config hash, the seed, the hashes of a user-supplied estimator's and
    preprocessor's source, and the environment freeze (``open_experiment`` saves it); ``fields``
    fill or override them."""
    env = environment()
    run = _RUN_LINEAGE.get() or {}
    return {"package_version": env["packages"].get("specweave-ray"), "git_commit": env["git_commit"],
            "git_dirty": env["git_dirty"],
            # where the run wrote to and how it was set up, credentials dropped (_lineage.safe_environ)
            "mlflow_tracking_uri": _lineage.redact_uri(os.environ["MLFLOW_TRACKING_URI"])
            if os.environ.get("MLFLOW_TRACKING_URI") else None,
            "environ": _lineage.captured_environ(), "data_fingerprint": None, "config_hash": None, "seed": None,
            "estimator_source_sha256": None, "preprocessor_source_sha256": None,
            "environment_sha256": None, "environment_freeze": None, **run,
            **{k: v for k, v in fields.items() if v is not None or k not in run}}


def code_version() -> str:
    env = environment()
    v = env["packages"].get("specweave-ray", "0+unknown")
    return f"{v}+g{env['git_commit'][:12]}" if env["git_commit"] else v


def resolve_increment(increment: Increment | str | int | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Increment:
    if isinstance(increment, Increment):
        # one of a URI root's list_increments holds its documents only: fetch the rest, once
        storage.pull_once(increment.path)
        return increment
    return Increment.open(increment, root=root)


def _check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not _METRIC_RE.match(key):
            raise RecordError(f"metric name {key!r} must be lower snake case, e.g. 'precision_at_10'")
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise RecordError(f"metric {key!r} must be a number, got {value!r}") from err
        if not math.isfinite(number):
            raise RecordError(f"metric {key!r} is {number}; only finite numbers are recorded")
        clean[key] = int(number) if isinstance(value, int) and not isinstance(value, bool) else number
    return clean


class Experiment:
    """An open experiment record. Use :func:`track_experiment` rather than building one."""

    def __init__(self, path: Path, increment: Increment, meta: dict[str, Any], *, mirror: bool = True) -> None:
        self.path = path
        self.increment = increment
        self.meta = meta
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}
        self._history: list[dict[str, Any]] = []
        self._mirror = mirror and _mlflow.enabled()
        self._closed = False
        self._t0 = time.perf_counter()

    id = property(lambda self: self.path.name)
    number = property(lambda self: int(_EXP_RE.match(self.path.name).group(1)))

    # -- logging ---------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._check_open()
        self.params.update({str(k): to_jsonable(v) for k, v in params.items()})
        with _writing(self.path):
            atomic_write_json(self.path / "params.json", self.params)

    def log_metric(self, key: str, value: float, *, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Record numbers; with ``step`` the history also goes to ``logs/metrics.jsonl``."""
        self._check_open()
        clean = _check_metrics(metrics)
        self.metrics.update(clean)
        with _writing(self.path):
            atomic_write_json(self.path / "metrics.json", self.metrics)
        if step is not None:
            ts = int(time.time() * 1000)
            rows = [{"name": k, "value": v, "step": int(step), "ts": ts} for k, v in clean.items()]
            self._history.extend(rows)
            with open(self.path / "logs" / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)

    def append_history(self, rows: list[dict[str, Any]]) -> None:
        """Add ``{"name", "value", "step"}`` rows to ``logs/metrics.jsonl`` (and the MLflow history)
        without touching ``metrics.json``."""
        self._check_open()
        ts = int(time.time() * 1000)
        rows = [{"ts": ts, **r} for r in rows]
        self._history.extend(rows)
        with open(self.path / "logs" / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    def log_note(self, text: str) -> None:
        self._check_open()
        with open(self.path / "notes.md", "a", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n\n")

    def log_artifact(self, path: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Copy a file or folder into the record; returns the copy's path."""
        self._check_open()
        src = Path(path)
        if not src.exists():
            raise RecordError(f"artifact {src} does not exist")
        dest = self.increment.check_inside(self.path / _plain_name(name or src.name, what="artifact"))
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        return dest

    def save_report(self, filename: str, text: str) -> Path:
        self._check_open()
        return atomic_write_text(self.path / _plain_name(filename, what="report"), text)

    def save_artifact(self, estimator: Any, name: str = "model") -> dict[str, Any]:
        """Save a fitted model in its native format (XGBoost UBJ, LightGBM text, torch state
        dict; pickle + sha256 otherwise) and note it in ``meta.json``."""
        self._check_open()

        stem = slugify(name) or "model"
        if any(f"{stem}{ext}" in _RESERVED for ext in (".json", "")):
            raise RecordError(f"artifact name {name!r} is reserved for the record's own files; "
                              "choose another, e.g. 'model'")
        info = save_native(estimator, self.path, name=stem)
        self.meta.setdefault("artifacts", {})[name] = info
        self._write_meta()
        return info

    def set_status(self, status: str) -> None:
        if status not in STATUSES:
            raise RecordError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        self.meta["status"] = status
        self._write_meta()

    def update_meta(self, **fields: Any) -> None:
        self.meta.update(fields)
        if "data_fingerprint" in fields and isinstance(self.meta.get("lineage"), dict):
            self.meta["lineage"]["data_fingerprint"] = fields["data_fingerprint"]
        self._write_meta()

    # -- closing ---------------------------------------------------------------------------
    def close(self, *, error: BaseException | None = None, parent_run_id: str | None = None,
              status: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if status is not None:
            if status not in STATUSES:
                raise RecordError(f"status {status!r} is not one of {', '.join(STATUSES)}")
            self.meta["status"] = status
        if error is not None:
            self.meta["status"] = "failed"
            self.meta["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            }
        elif self.meta.get("status") == "running":
            self.meta["status"] = "finished"
        self.meta["ended"] = self.meta.get("ended") or _now()  # a writer may give the end it saw
        if self.meta.get("duration_s") is None:
            self.meta["duration_s"] = round(time.perf_counter() - self._t0, 4)
        self._write_meta()  # a URI root: a meta.json write uploads its whole record, itself last
        if self._mirror:
            self.mirror_to_mlflow(parent_run_id=parent_run_id)

    def mirror_to_mlflow(self, *, parent_run_id: str | None = None) -> str | None:
        """Copy the closed record to MLflow (a child run under ``parent_run_id`` when given).

        Failures are logged and noted in ``meta.json``; the record on disk is kept either way.
        """
        root = self.increment.root
        parent_run_id = parent_run_id or self.meta.get("mlflow_parent_run_id")
        try:
            # a run opened early (a sweep's parent run) is completed, not duplicated
            run_id = self.meta.get("mlflow_run_id") or _mlflow.start_run(
                root, self.increment.id, name=self.id, parent_run_id=parent_run_id,
                tags={"specweave.record": self.id, "specweave.kind": self.meta["kind"]})
            tags = {f"specweave.{k}": v for k, v in self.meta.items()
                    if k in ("status", "model", "node", "trial_id", "data_fingerprint", "code_version")
                    and v is not None}
            self.meta["mlflow_run_id"] = run_id
            self.meta.pop("mlflow_error", None)
            self._write_meta()
            _mlflow.log_run(root, run_id, params=self.params, metrics=self.metrics, history=self._history,
                            tags=tags, artifacts_dir=self.path,
                            status="FAILED" if self.meta["status"] == "failed" else "FINISHED")
            return run_id
        except Exception as err:  # noqa: BLE001 - the record on disk stays the source of truth
            uri = _mlflow.tracking_uri(root)
            if isinstance(err, ConnectionError) or _mlflow.is_connection_error(err):
                _mlflow.mark_down(uri, f"{type(err).__name__}: {err}")  # one warning a process
                logger.debug("MLflow mirror of %s skipped: %s", self.path, err)
            else:
                logger.warning("MLflow mirror of %s failed: %s", self.path, err)
            self.meta["mlflow_error"] = _lineage.redact_text(f"{type(err).__name__}: {err}")[:2000]
            self._write_meta()
            return None

    def _write_meta(self) -> None:
        with _writing(self.path):
            atomic_write_json(self.path / "meta.json", self.meta)

    def _check_open(self) -> None:
        if self._closed:
            raise RecordError(f"experiment {self.id} is closed")

    def __repr__(self) -> str:
        return f"Experiment({self.path})"


def _plain_name(name: str, *, what: str) -> str:
    if not name or Path(name).name != name or name in (".", ".."):
        raise RecordError(f"{what} name {name!r} must be a plain file name (no folders)")
    if name in _RESERVED:
        raise RecordError(f"{what} name {name!r} is reserved for the record's own files; choose another")
    return name


def open_experiment(
    name: str,
    *,
    increment: Increment | str | int | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    kind: str = "experiment",
    model: str | None = None,
    meta: Mapping[str, Any] | None = None,
    mirror: bool = True,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    notes: str = "",
) -> Experiment:
    """Claim the next ``exp-NNN-<slug>`` folder and write its first files.

    ``params``, ``metrics`` and ``notes`` given here are written with those first files (one
    write each), which is how the coordinator records a finished trial in four writes.
    """
    inc = resolve_increment(increment, root)
    slug = slugify(re.sub(r"^exp-", "", name))
    if not slug:
        raise RecordError(f"experiment name {name!r} has no letters or digits")
    with _writing(inc.experiments_dir):
        inc.check_inside(inc.experiments_dir).mkdir(parents=True, exist_ok=True)
        path = inc.check_inside(claim_numbered_dir(inc.experiments_dir, pattern=_EXP_RE,
                                                   make_name=lambda n: f"exp-{n:03d}-{slug}"))
        (path / "logs").mkdir()
    with _writing(path):
        return _first_files(path, inc, name=name, kind=kind, model=model, meta=meta, mirror=mirror,
                            params=params, metrics=metrics, notes=notes)


def _first_files(path: Path, inc: Increment, *, name: str, kind: str, model: str | None,
                 meta: Mapping[str, Any] | None, mirror: bool, params: Mapping[str, Any] | None,
                 metrics: Mapping[str, float] | None, notes: str) -> Experiment:
    env = environment()
    record_meta: dict[str, Any] = {
        "id": path.name, "name": name, "increment": inc.id, "kind": kind, "model": model,
        "status": "running", "started": _now(), "ended": None, "duration_s": None,
        "node": env["hostname"], "resources": None, "trial_id": None, "data_fingerprint": None,
        "code_version": code_version(), "environment": env, "error": None, "mlflow_run_id": None,
        # who writes it: a record left `running` by a process that is gone was interrupted
        "writer": {"pid": os.getpid(), "hostname": env["hostname"]},
    }
    given = dict(meta or {})
    record_meta.update(given)
    # a stage's lineage fields (seed, config hash …) fill the block, never replace it
    record_meta["lineage"] = lineage(**{"data_fingerprint": record_meta.get("data_fingerprint"),
                                        **(given.get("lineage") or {})})
    # the environment freeze: saved once per environment in the increment, named by its hash
    with contextlib.suppress(OSError):
        record_meta["lineage"].update(_lineage.write_freeze(inc.experiments_dir))
    exp = Experiment(path, inc, record_meta, mirror=mirror)
    exp.params = {str(k): to_jsonable(v) for k, v in (params or {}).items()}
    exp.metrics = _check_metrics(metrics or {})
    exp._write_meta()
    atomic_write_json(path / "params.json", exp.params)
    atomic_write_json(path / "metrics.json", exp.metrics)
    atomic_write_text(path / "notes.md", f"# {name}\n\n" + (notes.rstrip("\n") + "\n\n" if notes else ""))
    return exp


@contextlib.contextmanager
def track_experiment(name: str, *, increment: Increment | str | int | os.PathLike[str],
                     root: str | os.PathLike[str] | None = None, kind: str = "experiment",
                     **kwargs: Any) -> Iterator[Experiment]:
    """Open a record for the block; an exception marks it failed (with traceback) and re-raises.

    Args:
        name: Short name; the folder becomes ``exp-NNN-<slug of name>``.
        increment: An :class:`Increment`, an id (``"0001-fraud"``), a number or a folder path.
        root: Increments root when ``increment`` is an id or number.
        kind: ``experiment``, ``model``, ``baseline``, ``trial``, ``evaluation`` …
    """
    exp = open_experiment(name, increment=increment, root=root, kind=kind, **kwargs)
    try:
        yield exp
    except BaseException as err:
        exp.close(error=err)
        raise
    exp.close()


def track_model(name: str, *, increment: Increment | str | int | os.PathLike[str],
                root: str | os.PathLike[str] | None = None, **kwargs: Any) -> contextlib.AbstractContextManager[Experiment]:
    """:func:`track_experiment` with ``kind="model"`` and ``model=name``."""
    kwargs.setdefault("model", name)
    return track_experiment(name, increment=increment, root=root, kind="model", **kwargs)


@dataclass(frozen=True)
class Record:
    """A record read back from disk."""

    path: Path
    meta: Mapping[str, Any]
    params: Mapping[str, Any]
    metrics: Mapping[str, float]

    id = property(lambda self: self.path.name)
    status = property(lambda self: self.meta.get("status"))
    kind = property(lambda self: self.meta.get("kind"))


def read_record(path: str | os.PathLike[str]) -> Record:
    path = Path(path)
    try:
        meta = read_json(path / "meta.json")
        if meta is None:
            raise RecordError(f"{path} has no meta.json; it is not an experiment record")
        return Record(path, meta, read_json(path / "params.json", {}), read_json(path / "metrics.json", {}))
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: unreadable JSON ({err})") from err


def list_records(increment: Increment | str | int | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                 kind: str | None = None) -> list[Record]:
    """Every record of the increment in creation order (optionally of one kind)."""
    if isinstance(increment, Increment):
        inc = increment
        # one of a URI root's list_increments holds its documents only: fetch what this reads
        storage.pull_once(inc.experiments_dir, names=RECORD_FILES)
    else:
        inc = resolve_increment(increment, root)
    if not inc.experiments_dir.is_dir():
        return []
    dirs = sorted((p for p in inc.experiments_dir.iterdir() if p.is_dir() and _EXP_RE.match(p.name)),
                  key=lambda p: int(_EXP_RE.match(p.name).group(1)))
    out = []
    for d in dirs:
        if (d / "meta.json").exists():
            rec = read_record(d)
            if kind is None or rec.kind == kind:
                out.append(rec)
    return out


def _writer_gone(meta: Mapping[str, Any]) -> bool:
    writer = meta.get("writer") or {}
    pid, host = writer.get("pid"), writer.get("hostname")
    if not isinstance(pid, int) or host != socket.gethostname() or pid == os.getpid():
        return False  # another machine's process, or this one: it may still be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def mark_interrupted(increment: Increment) -> list[str]:
    """Records left ``running`` by a process that is gone (a killed driver) become
    ``interrupted``; returns their ids. A running record of a live process is left alone."""
    done = []
    for rec in list_records(increment):
        if rec.status == "running" and _writer_gone(rec.meta):
            meta = dict(rec.meta)
            meta.update(status="interrupted", ended=meta.get("ended") or _now(),
                        error=meta.get("error") or {"type": "Interrupted", "cause": {"kind": "interrupted"},
                                                    "message": "its process ended before the record was closed"})
            atomic_write_json(rec.path / "meta.json", meta)
            done.append(rec.id)
    if done:
        logger.warning("%d record(s) left running by an ended process marked interrupted: %s",
                       len(done), ", ".join(done))
    return done


def _read_history(path: Path) -> list[dict[str, Any]]:
    rows = []
    with contextlib.suppress(OSError):
        for line in (path / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows


def unmirrored(increment: Increment) -> list[Record]:
    """Closed records not (fully) in MLflow: no run id, or a mirror that failed."""
    return [r for r in list_records(increment) if r.status != "running"
            and (not r.meta.get("mlflow_run_id") or r.meta.get("mlflow_error"))]


def sync_mlflow(increment: Increment, *, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Mirror every closed record that MLflow lacks (``specweave-ray sync-mlflow``; a sweep also
    calls it at its start for records a killed driver left unmirrored). Idempotent: a mirrored
    record is skipped; so are the records in ``skip`` and the trials of a sweep in it (a running
    sweep mirrors its own). Returns ``{"mirrored": [...], "failed": [...]}`` (record ids)."""
    todo = [r for r in unmirrored(increment) if r.id not in skip and r.meta.get("sweep") not in skip]
    parents: dict[str, str] = {}
    for rec in list_records(increment, kind="sweep"):
        if rec.meta.get("mlflow_run_id") and not rec.meta.get("mlflow_error"):
            parents[rec.id] = rec.meta["mlflow_run_id"]
    out: dict[str, list[str]] = {"mirrored": [], "failed": []}
    for rec in sorted(todo, key=lambda r: r.kind != "sweep"):  # sweeps first: trials are their children
        exp = Experiment(rec.path, increment, dict(rec.meta), mirror=True)
        exp.params, exp.metrics = dict(rec.params), dict(rec.metrics)
        exp._history = _read_history(rec.path)
        exp._closed = True
        run_id = exp.mirror_to_mlflow(parent_run_id=parents.get(rec.meta.get("sweep") or ""))
        if run_id is None:
            out["failed"].append(rec.id)
        else:
            out["mirrored"].append(rec.id)
            if rec.kind == "sweep":
                parents[rec.id] = run_id
    return out
