"""Increments roots that are URIs (``s3://``, ``gs://``, ``hdfs://``: anything ``pyarrow.fs`` opens).

Every stage reads and writes plain local paths (matplotlib, XGBoost, MLflow's sqlite store and
pandera all need one), so a URI root is *mounted*: a local mirror under
``$SPECWEAVE_STAGING`` (default ``<tmp>/specweave-roots-<uid>/<hash of the URI>/``) that is kept in
step with the root through ``pyarrow.fs``, the way Ray Tune stages trial folders for its own
``storage_path``:

- mounting lists the root and fetches each increment's top-level documents (``spec.md``,
  ``tasks.md`` …) and the MLflow store, enough to number, list and find increments;
- opening an increment fetches the whole folder (Tune's own state under ``experiments/tune/``
  excepted: Tune reads that itself);
- every atomic write (records, comparison, reports, metadata: :mod:`._fs`) is uploaded by a
  background thread as soon as it lands (a metadata file with its folder, itself last), and
  :func:`push` uploads whatever else changed in a folder (files that libraries write themselves:
  plots, model files, logs) — records when they close, the whole increment and the MLflow store
  after every pipeline task and at the end of every run;
- a mirror file newer than the root's copy (an upload that failed or never ran) is kept, never
  fetched over, and the next push uploads it;
- :func:`flush` waits for the uploads and raises :class:`StorageError` naming a file that could
  not be uploaded; the pipeline flushes after every task, so a task is ticked only when its
  outputs are at the root.

One object is one PUT, so readers of the root see a whole file or the previous one, as with the
local atomic rename. Object stores have no lock: two drivers creating increments under one URI
root at the same moment can pick the same number, and the default MLflow store (one sqlite file
at the root) is uploaded whole, so the last driver's copy wins. One driver per root at a time is
safe; drivers on several increments at once need ``MLFLOW_TRACKING_URI`` (a tracking server).
Credentials and endpoints come from the usual places (``AWS_*`` variables, ``AWS_ENDPOINT_URL``,
``?endpoint_override=…&scheme=http`` in the URI, Google/HDFS defaults); they are never stored.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specweave_ray import _fs
from specweave_ray.exceptions import StorageError

logger = logging.getLogger(__name__)

_URI_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SECRET_PARAMS = frozenset({"access_key", "secret_key", "session_token", "credentials"})
_MTIME_SLACK_NS = 2_000_000_000
_OBJECT_STORES = frozenset({"s3", "gcs"})  # pyarrow FileSystem.type_name
_UPLOAD_THREADS = 8


def is_uri(root: str | os.PathLike[str] | None) -> bool:
    """True for ``scheme://…`` roots other than ``file://`` (which is a local path)."""
    return isinstance(root, str) and bool(_URI_RE.match(root)) and not root.lower().startswith("file://")


def local_path(root: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """``file:///x`` → ``/x``; anything else unchanged."""
    if isinstance(root, str) and root.lower().startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlparse(root).path)
    return root


def redact(uri: str) -> str:
    """``uri`` without credentials (for messages and records): no ``user:secret@`` (pyarrow reads
    ``s3://ACCESS_KEY:SECRET_KEY@bucket/…`` as the keys) and no credential query parameters."""
    parts = urllib.parse.urlsplit(uri)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    if parts.query:
        kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in _SECRET_PARAMS]
        parts = parts._replace(query=urllib.parse.urlencode(kept))
    return urllib.parse.urlunsplit(parts)


def _skipped(name: str) -> bool:
    # locks, atomic-write temporaries and sqlite journals are local to one machine
    return name.startswith(".") or name.endswith((".lock", ".tmp", "-journal", "-wal", "-shm"))


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _version(st: os.stat_result) -> tuple[int, int, int]:
    # Size and mtime alone miss a same-size rewrite within one clock tick (file times come from
    # the kernel's coarse clock, ms apart); every atomic write is a new inode, so add it.
    return st.st_size, st.st_mtime_ns, st.st_ino


def _tune_state(rel: str) -> bool:
    # <increment>/experiments/tune/…: Tune's own experiment state (sweep.py), which Tune reads itself
    parts = rel.split("/", 3)
    return len(parts) >= 3 and parts[1:3] == ["experiments", "tune"]


@dataclass
class Mount:
    """A URI root and its local mirror."""

    uri: str
    fs: Any  # pyarrow.fs.FileSystem
    base: str  # the root's path inside ``fs``
    local: Path
    # local path -> (size, mtime_ns, inode, when) of its last fetch or upload: unchanged files are skipped
    _synced: dict[Path, tuple[int, int, int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _made: set[str] = field(default_factory=set)  # remote folders created by this process
    # mirror folders this process pulled recursively -> the file names pulled (None: all of them)
    _pulled: dict[Path, frozenset[str] | None] = field(default_factory=dict)

    def remote(self, path: str | os.PathLike[str]) -> str:
        rel = Path(path).relative_to(self.local).as_posix()
        return self.base if rel == "." else f"{self.base}/{rel}"

    def display(self, path: str | os.PathLike[str]) -> str:
        rel = Path(path).relative_to(self.local).as_posix()
        head = redact(self.uri).split("?", 1)[0].rstrip("/")
        return head if rel == "." else f"{head}/{rel}"

    # -- listing -----------------------------------------------------------------------------
    def _infos(self, path: Path, *, recursive: bool) -> list[Any]:
        from pyarrow import fs as pafs

        try:
            return self.fs.get_file_info(pafs.FileSelector(self.remote(path), recursive=recursive,
                                                           allow_not_found=True))
        except (OSError, ValueError) as err:
            raise StorageError(f"cannot list {self.display(path)}: {err}") from err

    # -- download ----------------------------------------------------------------------------
    def pull(self, path: str | os.PathLike[str], *, recursive: bool = True,
             names: Collection[str] | None = None) -> int:
        """Fetch the files under ``path`` (a folder of the mirror) that are new or changed at the
        root (only those called one of ``names`` when given); returns how many were fetched.
        Local files the root lacks are left alone."""
        from pyarrow import fs as pafs

        path = Path(path)
        fetched = 0
        for info in self._infos(path, recursive=recursive):
            rel = info.path[len(self.base) + 1:]
            target = self.local / rel
            if _tune_state(rel):
                continue
            if info.type == pafs.FileType.Directory:
                target.mkdir(parents=True, exist_ok=True)
                continue
            if _skipped(target.name) or (names is not None and target.name not in names) \
                    or not self._stale(target, info):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.fs.open_input_stream(info.path) as src:
                    data = src.read()
            except OSError as err:
                raise StorageError(f"cannot read {self.display(target)}: {err}") from err
            if _same_bytes(target, data):
                # fetched in doubt (see _stale) and unchanged: keep the file, and its inode (an
                # open sqlite store or a reader holding it would lose a replaced file)
                self._remember(target)
                continue
            _fs.atomic_write_bytes(target, data, upload=False)  # a fetched file goes back up unchanged
            if info.mtime_ns:
                os.utime(target, ns=(info.mtime_ns, info.mtime_ns))
            self._remember(target)
            fetched += 1
        if recursive:
            before = self._pulled.get(path, frozenset())
            self._pulled[path] = None if names is None or before is None else before | frozenset(names)
        return fetched

    def has_pulled(self, path: Path, names: Collection[str] | None = None) -> bool:
        """Whether this process pulled ``path`` (or a folder above it) whole, or ``path`` with
        at least the file ``names``."""
        if any(p in self._pulled and self._pulled[p] is None for p in (path, *path.parents)):
            return True
        got = self._pulled.get(path)
        return names is not None and got is not None and set(names) <= got

    def _stale(self, target: Path, info: Any) -> bool:
        try:
            st = target.stat()
        except FileNotFoundError:
            return True
        remote_ns = info.mtime_ns or 0
        # Object stores keep whole-second times (and their clock is not ours), so a copy written
        # at the root within a second or two of a local time may look older than it is: when in
        # doubt, fetch (pull keeps the file when the bytes are the same).
        known = self._synced.get(target)
        if known is not None:
            if known[:3] != _version(st):
                return False  # changed here since we last fetched or uploaded it: pending upload, it wins
            # unchanged here: stale if someone may have written the root's copy since
            return st.st_size != info.size or remote_ns >= known[3] - _MTIME_SLACK_NS
        # A file this process has not transferred (a mirror left by an earlier process): the
        # newer side wins, whatever the sizes. A local copy clearly newer than the root's is a
        # write whose upload failed or never ran (the next push uploads it), not a stale copy:
        # fetched copies carry the root's time (pull sets it).
        return remote_ns >= st.st_mtime_ns - _MTIME_SLACK_NS

    def _remember(self, path: Path) -> None:
        st = path.stat()
        with self._lock:
            self._synced[path] = (*_version(st), time.time_ns())

    # -- upload ------------------------------------------------------------------------------
    def changed(self, path: str | os.PathLike[str]) -> list[Path]:
        """Files under ``path`` (a file or folder of the mirror) that the root lacks or holds an
        older copy of; metadata files (``meta.json``, ``*.metadata.json``) after the others, so a
        reader who sees a record's final status finds its other files too."""
        return sorted(self._changed(Path(path)), key=lambda p: (_is_metadata(p), p.parent.as_posix(), p.name))

    def _changed(self, path: Path) -> dict[Path, tuple[int, int, int] | None]:
        # changed files -> the (size, mtime_ns) a metadata file must still have when uploaded
        if path.is_file():
            files, metas = [path], None
        elif path.is_dir():
            # Metadata first: a version seen now was written after the files it describes, which
            # the scan below then finds. A later version is left to the push its write queued.
            metas = {}
            for p in path.rglob("*.json"):
                if _is_metadata(p):
                    with contextlib.suppress(FileNotFoundError):
                        st = p.stat()
                        metas[p] = _version(st)
            files = [p for p in sorted(path.rglob("*")) if p.is_file()
                     and not any(_skipped(part) for part in p.relative_to(self.local).parts)]
        else:
            return {}
        out: dict[Path, tuple[int, int, int] | None] = {}
        remote = None
        for p in files:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue  # removed since the folder was scanned (a library's scratch file)
            expect = None
            if metas is not None and _is_metadata(p):
                expect = metas.get(p)
                if expect != _version(st):
                    continue
            known = self._synced.get(p)
            if known is not None:
                if known[:3] != _version(st):
                    # changed since this process fetched or uploaded it, whatever its mtime says
                    # (shutil.copy2 and copytree keep the source's)
                    out[p] = expect
                continue
            if remote is None:  # one listing per call, only when something might need uploading
                remote = {i.path: i for i in (self._infos(path, recursive=True) if path.is_dir() else
                                              [self.fs.get_file_info(self.remote(path))])}
            info = remote.get(self.remote(p))
            if info is not None and info.size == st.st_size and (info.mtime_ns or 0) >= st.st_mtime_ns:
                self._remember(p)
                continue
            out[p] = expect
        return out

    def upload(self, path: Path, *, expect: tuple[int, int, int] | None = None) -> None:
        """Upload one file of the mirror; with ``expect``, only while it still has that (size,
        mtime_ns): a metadata file rewritten since its folder was compared goes up with the push
        its new write queued, after what that version describes."""
        try:
            with open(path, "rb") as fh:  # stat and bytes of one version, whatever renames meanwhile
                st = os.fstat(fh.fileno())
                if expect is not None and expect != _version(st):
                    return
                if self._synced.get(path, ())[:3] == _version(st):
                    return  # queued again by a later write of the same bytes, already uploaded
                data = fh.read()
        except FileNotFoundError:
            return  # replaced or removed since it was queued; its successor is queued too
        except OSError as err:
            raise StorageError(f"cannot read {path} to upload it to {self.display(path)}: {err}") from err
        remote = self.remote(path)
        parent = remote.rsplit("/", 1)[0]
        try:
            # Object stores have no folders (create_dir would PUT an empty marker object: one
            # more request per upload); other filesystems need the parent, made once.
            if self.fs.type_name not in _OBJECT_STORES and parent not in self._made:
                self.fs.create_dir(parent, recursive=True)
                self._made.add(parent)
            with self.fs.open_output_stream(remote) as out:
                out.write(data)
        except OSError as err:
            raise StorageError(f"cannot write {self.display(path)}: {err}") from err
        with self._lock:
            self._synced[path] = (*_version(st), time.time_ns())


_MOUNTS: dict[str, Mount] = {}
_MOUNTS_LOCK = threading.Lock()


def staging_dir() -> Path:
    """``$SPECWEAVE_STAGING``, else ``<tmp>/specweave-roots-<uid>`` (one per user: mirrors hold
    results and credentials-protected data, and another user's folder would not be writable)."""
    if os.environ.get("SPECWEAVE_STAGING"):
        return Path(os.environ["SPECWEAVE_STAGING"])
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"specweave-roots-{user}"


def mount(uri: str) -> Path:
    """Open the URI root (once per process), fetch what listing and numbering need, and return
    its local mirror."""
    with _MOUNTS_LOCK:
        found = _MOUNTS.get(uri)
        if found is not None:
            _refresh(found)
            return found.local
        from pyarrow import fs as pafs

        try:
            filesystem, base = pafs.FileSystem.from_uri(uri)
        except (OSError, ValueError, ImportError) as err:
            raise StorageError(f"cannot open increments root {redact(uri)}: {err}") from err
        base = base.rstrip("/")
        # the endpoint is part of the identity (two S3-compatible servers, one bucket name)
        key = hashlib.sha256(f"{uri}|{os.environ.get('AWS_ENDPOINT_URL', '')}".encode()).hexdigest()[:16]
        staging_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        local = staging_dir() / key
        local.mkdir(exist_ok=True)
        m = Mount(uri=uri, fs=filesystem, base=base, local=local)
        try:
            info = filesystem.get_file_info(base)
            if info.type == pafs.FileType.File:
                raise StorageError(f"increments root {redact(uri)} is a file, not a folder")
            if info.type == pafs.FileType.NotFound:
                filesystem.create_dir(base, recursive=True)
        except (OSError, ValueError) as err:  # ValueError: pyarrow's ArrowInvalid ("s3://b/x//y")
            raise StorageError(f"cannot open increments root {redact(uri)}: {err}") from err
        _MOUNTS[uri] = m
    _refresh(m, first=True)
    _start_uploader()
    return local


def _refresh(m: Mount, *, first: bool = False) -> None:
    # Listing and numbering need each increment's documents (and the MLflow store), not results.
    # The MLflow sqlite file is fetched by the first mount only: later, this process's MLflow
    # client may hold it open, and replacing it would send its writes to a deleted file.
    m.pull(m.local, recursive=False, names=None if first else ())
    for entry in list(m.local.iterdir()):
        if entry.is_dir() and not _skipped(entry.name) and entry.name != "mlartifacts":
            m.pull(entry, recursive=False)


def mount_of(path: str | os.PathLike[str]) -> Mount | None:
    """The mount whose mirror holds ``path``, or ``None`` for a path of a local root."""
    if not _MOUNTS:
        return None
    path = Path(path)
    for m in list(_MOUNTS.values()):
        if path == m.local or m.local in path.parents:
            return m
    return None


def display(path: str | os.PathLike[str]) -> str:
    """``path`` as the user named it: the URI for a mirrored file, else the path."""
    m = mount_of(path)
    return m.display(path) if m else os.fspath(path)


def pull(path: str | os.PathLike[str], *, names: Collection[str] | None = None) -> None:
    """Fetch a mirrored folder (an increment), or only its files called one of ``names``, from
    its root; nothing for local roots."""
    m = mount_of(path)
    if m is not None:
        m.pull(path, names=names)


def pull_once(path: str | os.PathLike[str], *, names: Collection[str] | None = None) -> None:
    """:func:`pull` unless this process has pulled as much of ``path`` already (the folder or
    one above it whole, or the folder with these ``names``); nothing for local roots."""
    m = mount_of(path)
    if m is not None and not m.has_pulled(Path(path), names):
        m.pull(path, names=names)


def push(path: str | os.PathLike[str]) -> None:
    """Queue uploads of whatever changed under ``path`` (file or folder; the comparison with the
    root runs on the upload thread, off the caller's path); nothing for local roots."""
    m = mount_of(path)
    if m is not None:
        _QUEUE.put((m, Path(path)))


def push_now(*paths: str | os.PathLike[str]) -> None:
    """:func:`push` each path, then :func:`flush`."""
    for path in paths:
        push(path)
    flush()


def tune_storage(path: str | os.PathLike[str]) -> tuple[str, Any]:
    """Ray Tune's ``(storage_path, storage_filesystem)`` for a folder: the root's own filesystem
    for a mirrored folder (trials on other nodes write there directly), else the local path."""
    m = mount_of(path)
    if m is None:
        return os.fspath(path), None
    return m.remote(path), m.fs


# -- background uploads ------------------------------------------------------------------------
_QUEUE: queue.Queue[tuple[Mount, Path] | None] = queue.Queue()
_ERRORS: list[StorageError] = []
_THREAD: threading.Thread | None = None


def _after_write(path: Path) -> None:
    m = mount_of(path)
    if m is not None:
        # A metadata file says its folder is complete (a record's final status, a package): the
        # folder goes up with it, metadata last. Queued alone, it could be uploaded in a batch of
        # its own before the push of the files it describes (a record's close mirrors to MLflow
        # in between).
        _QUEUE.put((m, path.parent if _is_metadata(path) else path))


def _start_uploader() -> None:
    global _THREAD
    with _MOUNTS_LOCK:
        if _THREAD is not None and _THREAD.is_alive():
            return
        _THREAD = threading.Thread(target=_upload_loop, name="specweave-uploads", daemon=True)
        _THREAD.start()
        if _after_write not in _fs.WRITE_HOOKS:
            _fs.WRITE_HOOKS.append(_after_write)
            atexit.register(_flush_at_exit)


def _upload_loop() -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Uploads are round trips (tens of ms to S3): several at once, and each file once per batch.
    # Whatever queued up while the last batch was uploading is the next batch, so the four
    # writes of a record's meta.json cost one upload, of the final bytes.
    pool = ThreadPoolExecutor(max_workers=_UPLOAD_THREADS, thread_name_prefix="specweave-upload")
    while True:
        batch = [_QUEUE.get()]
        with contextlib.suppress(queue.Empty):
            while True:
                batch.append(_QUEUE.get_nowait())
        try:
            _upload_batch([item for item in batch if item is not None], pool)
        finally:
            for _ in batch:
                _QUEUE.task_done()
        if None in batch:
            pool.shutdown()
            return


def _upload_batch(batch: list[tuple[Mount, Path]], pool: Any) -> None:
    files: dict[Path, tuple[Mount, tuple[int, int, int] | None]] = {}
    for m, path in batch:
        try:
            for p, expect in (m._changed(path) if path.is_dir() else {path: None}).items():
                files[p] = (m, expect)
        except Exception as err:  # noqa: BLE001 - the thread must live on, or nothing more goes up
            _ERRORS.append(_failure(m, path, err))
    # metadata after the files it describes: a reader who sees a record's final status finds the rest
    first = [p for p in files if not _is_metadata(p)]
    last = [p for p in files if _is_metadata(p)]
    for group in (first, last):
        for err in pool.map(lambda p: _try_upload(*files[p], p), group):
            if err is not None:
                _ERRORS.append(err)


def _try_upload(m: Mount, expect: tuple[int, int, int] | None, path: Path) -> StorageError | None:
    try:
        m.upload(path, expect=expect)
    except Exception as err:  # noqa: BLE001 - reported by flush(), not lost with a pool thread
        return _failure(m, path, err)
    return None


def _failure(m: Mount, path: Path, err: Exception) -> StorageError:
    if not isinstance(err, StorageError):
        wrapped = StorageError(f"cannot upload {m.display(path)}: {type(err).__name__}: {err}")
        wrapped.__cause__ = err
        err = wrapped
    logger.error("%s", err)
    return err


def _is_metadata(path: Path) -> bool:
    return path.name == "meta.json" or path.name.endswith(".metadata.json")


def flush() -> None:
    """Wait until every queued upload is done; raise the first upload failure since the last flush."""
    if _THREAD is None:
        return
    _QUEUE.join()
    if _ERRORS:
        errors = list(_ERRORS)
        _ERRORS.clear()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise StorageError(f"{errors[0]}{more}; the files stay in the local mirror under {staging_dir()} "
                           "and the next run uploads them")


def _flush_at_exit() -> None:
    try:
        flush()
    except StorageError as err:  # exit code is already decided; say what did not reach the root
        logger.error("%s", err)


def unmount(uri: str | None = None) -> None:
    """Finish the uploads and forget ``uri``'s mount (every mount when ``None``); the next
    :func:`mount` lists the root afresh. The local mirror stays on disk."""
    flush()
    with _MOUNTS_LOCK:
        for key in [uri] if uri is not None else list(_MOUNTS):
            _MOUNTS.pop(key, None)
