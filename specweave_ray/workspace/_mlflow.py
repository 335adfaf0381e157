"""The MLflow mirror of experiment records (records.py and coordinator.py call it).

One MLflow experiment per increment (named by the increment id), one run per record, child runs
under a parent run for a sweep. The tracking store is ``$MLFLOW_TRACKING_URI`` when set, else a
sqlite file inside the increments root with artifacts beside it. Set ``SPECWEAVE_MLFLOW=0`` to
switch the mirror off; records on disk are the source of truth either way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from specweave_ray._fs import cache_dir, file_lock
from specweave_ray.workspace import storage
from specweave_ray.workspace._lineage import redact_uri

logger = logging.getLogger(__name__)
_LOCK = threading.Lock()
_MAX_PARAM = 6000  # MLflow's limit on a param value's length


def enabled() -> bool:
    return os.environ.get("SPECWEAVE_MLFLOW", "1").lower() not in ("0", "false", "off", "no")


def tracking_uri(root: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def local_store(root: Path, increment_id: str) -> list[Path]:
    """The default store's files for one increment (the sqlite file and its artifacts), which a URI
    root uploads after each task; empty when ``$MLFLOW_TRACKING_URI`` names another store."""
    if not enabled() or os.environ.get("MLFLOW_TRACKING_URI"):
        return []
    return [Path(root) / "mlflow.db", Path(root) / "mlartifacts" / increment_id]


_DOWN: dict[str, str] = {}   # tracking URI -> why it is unreachable (this process gave up on it)
_PROBE_TIMEOUT_S = 2.0


def unreachable(uri: str) -> str | None:
    """Why the tracking server at ``uri`` can't be reached (None when it can, or is not a server).

    Checked once per process and URI with one TCP connect (``_PROBE_TIMEOUT_S``): MLflow's own HTTP
    client retries a refused connection for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default
    7, with exponential backoff), once per record of a sweep. A URI found down stays down for the
    process; ``specweave-ray sync-mlflow`` replays the records later."""
    with _LOCK:
        if uri in _DOWN:
            return _DOWN[uri]
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S).close()
        return None
    except OSError as err:
        return mark_down(uri, f"{type(err).__name__}: {err}")


def mark_down(uri: str, reason: str) -> str:
    """Give up on ``uri`` for this process: ONE warning, then every mirror call fails at once."""
    with _LOCK:
        first = uri not in _DOWN
        _DOWN.setdefault(uri, reason)
    if first:
        logger.warning("MLflow tracking server %s is unreachable (%s): records are written to the increment "
                       "only; replay them with `specweave-ray sync-mlflow <increment>`",
                       redact_uri(uri), reason)
    return _DOWN[uri]


def is_connection_error(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(s in text for s in ("connection refused", "connectionerror", "max retries exceeded",
                                   "failed to establish", "timed out", "name or service not known"))


@functools.lru_cache(maxsize=8)
def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    db = _sqlite_file(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    # MLflow creates and migrates a new sqlite store when a client is built; processes doing
    # that at once collide ("table ... already exists"), so each process's first one waits its turn.
    db.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(db.with_name(f"{db.name}.lock")):
        if not db.exists():
            _from_template(db)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # in case a later MLflow builds the store lazily
    return client


def _template_dir() -> Path:
    return cache_dir()


def _from_template(db: Path) -> None:
    """Start a new sqlite store as a copy of an empty one this machine built once per MLflow version.

    Written by hand because MLflow has no such option: building a store runs every alembic
    migration of MLflow's schema (measured 2.3 s on 2 quiet cores, 6–12 s loaded, against 0.04 s
    for the copy), and every new increments root pays it on its first record. The copy's
    ``Default`` experiment gets the artifact folder MLflow would give it beside the file. Any
    failure leaves ``db`` absent, so MLflow builds the store itself as before.
    """
    import sqlite3

    import mlflow
    from mlflow.tracking import MlflowClient

    template = _template_dir() / f"mlflow-{mlflow.__version__}.db"
    part = db.with_name(f".{db.name}.part")
    try:
        if not template.is_file():
            template.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(template.with_name(f"{template.name}.lock")):
                if not template.is_file():
                    fd, tmp = tempfile.mkstemp(dir=template.parent, prefix=".build-", suffix=".db")
                    os.close(fd)
                    os.unlink(tmp)  # MLflow builds the store only where no file is
                    try:
                        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
                        os.replace(tmp, template)
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(tmp)
        shutil.copyfile(template, part)
        with contextlib.closing(sqlite3.connect(part)) as con, con:
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                        (str(db.parent.resolve() / "mlruns" / "0"),))
        os.replace(part, db)
    except (OSError, sqlite3.Error) as err:  # a read-only home, an odd sqlite: MLflow builds it
        logger.debug("no MLflow store template (%s); MLflow builds %s itself", err, db)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    name = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(name) if name and name != ":memory:" else None


def client_for(root: Path) -> Any:
    """The tracking store's client; ``ConnectionError`` at once when its server is unreachable."""
    uri = tracking_uri(root)
    if (why := unreachable(uri)) is not None:
        raise ConnectionError(f"MLflow tracking server {redact_uri(uri)} unreachable: {why}")
    return _client(uri)


_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}


def experiment_id(root: Path, increment_id: str) -> str:
    """Get or create the MLflow experiment named after the increment (cached per process: a sweep
    mirrors one run per trial and the lookup is a query each time)."""
    client = client_for(root)
    key = (tracking_uri(root), increment_id)
    with _LOCK:
        if key in _EXPERIMENT_IDS:
            return _EXPERIMENT_IDS[key]
        exp = client.get_experiment_by_name(increment_id)
        if exp is not None and exp.lifecycle_stage == "active":
            _EXPERIMENT_IDS[key] = exp.experiment_id
            return exp.experiment_id
        location = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            location = (Path(root).resolve() / "mlartifacts" / increment_id).as_uri()
        try:
            _EXPERIMENT_IDS[key] = client.create_experiment(increment_id, artifact_location=location)
        except Exception:  # another process created it first
            exp = client.get_experiment_by_name(increment_id)
            if exp is None:
                raise
            _EXPERIMENT_IDS[key] = exp.experiment_id
        return _EXPERIMENT_IDS[key]


def _retry(fn: Any, *args: Any, **kwargs: Any) -> Any:
    # sqlite raises "database is locked" when several processes write at once; a short
    # backoff is enough because each write is a few milliseconds.
    for attempt in range(8):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - MLflow wraps sqlite errors in several types
            if "locked" not in str(err).lower() or attempt == 7:
                raise
            time.sleep(0.05 * 2**attempt)
    return None


def start_run(
    root: Path,
    increment_id: str,
    *,
    name: str,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Create an MLflow run (a child when ``parent_run_id``) and return its id."""
    client = client_for(root)
    all_tags = {"mlflow.runName": name, "specweave.increment": increment_id, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = _retry(client.create_run, experiment_id(root, increment_id), tags=all_tags, run_name=name)
    return run.info.run_id


def _push_artifacts(root: Path, client: Any, run_id: str) -> None:
    """A URI root's local store: send the run's artifacts up now (the upload thread), not in one
    burst when the task ends."""

    if storage.mount_of(root) is None:
        return
    uri = client.get_run(run_id).info.artifact_uri
    if uri.startswith("file://"):
        storage.push(Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path)))


def log_run(
    root: Path,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    history: Iterable[Mapping[str, Any]] = (),
    tags: Mapping[str, str] | None = None,
    artifacts_dir: Path | None = None,
    status: str | None = None,
) -> None:
    """Log params, metrics (+ step history), tags, artifacts and the final status in few calls."""
    from mlflow.entities import Metric, Param, RunTag

    client = client_for(root)
    now = int(time.time() * 1000)
    ms = [Metric(h["name"], float(h["value"]), int(h.get("ts", now)), int(h["step"])) for h in history]
    # A metric with a step history gets its final value at its last step (and only when it
    # differs from it): a copy at step 0 would sit in the history, and MLflow reports the value
    # of the highest step, which must be the one in metrics.json.
    last: dict[str, Metric] = {}
    for m in ms:
        if m.key not in last or (m.step, m.timestamp) >= (last[m.key].step, last[m.key].timestamp):
            last[m.key] = m
    for k, v in (metrics or {}).items():
        if v is None:
            continue
        prev = last.get(k)
        if prev is None:
            ms.append(Metric(k, float(v), now, 0))
        elif float(v) != prev.value:
            ms.append(Metric(k, float(v), max(now, prev.timestamp + 1), prev.step))
    ps = [Param(k, str(v)[:_MAX_PARAM]) for k, v in (params or {}).items()]
    ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    # log_batch takes at most 1000 entries, 100 of them params and 100 tags, per call: one call
    # for a typical record, more only for large ones
    while ps or ts or ms:
        p_, t_ = ps[:100], ts[:100]
        m_ = ms[: 1000 - len(p_) - len(t_)]
        _retry(client.log_batch, run_id, params=p_, tags=t_, metrics=m_)
        ps, ts, ms = ps[len(p_):], ts[len(t_):], ms[len(m_):]
    if artifacts_dir is not None and any(artifacts_dir.iterdir()):
        _retry(client.log_artifacts, run_id, str(artifacts_dir))
        _push_artifacts(root, client, run_id)
    if status:
        _retry(client.set_terminated, run_id, status=status)
