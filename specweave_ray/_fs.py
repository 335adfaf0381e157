"""Filesystem helpers shared by every stage: atomic writes and exclusive number claims.

Atomic means: the bytes go to a temporary file in the destination folder, are flushed to disk,
and the file is renamed over the destination. A reader (or a crash) sees the old file or the new
one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if os.name == "posix":  # pragma: no branch
    import fcntl

# mkstemp creates files 0600; a record must get the mode any other file would (0666 - umask),
# or other users of a shared results folder cannot read it. Read once: os.umask can only swap.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# Called with the path after every atomic write; storage.py adds the upload to a URI root.
WRITE_HOOKS: list[Callable[[Path], None]] = []


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, upload: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    ``upload=False`` skips :data:`WRITE_HOOKS` (a file just fetched from a URI root)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _unwritable(path, err) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o666 & ~_UMASK)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None:
            raise _unwritable(path, err) from err
        raise  # the old file, if any, is left as it was
    if upload:
        for hook in WRITE_HOOKS:
            hook(path)
    return path


def _unwritable(path: Path, err: OSError) -> OSError:
    """The same OSError, its message naming the file and the likely cause (full disk, read-only)."""
    hint = {28: "the disk is full", 27: "the file size limit is reached", 30: "the filesystem is read-only",
            13: "the folder is not writable", 1: "the folder is not writable"}.get(err.errno or 0, "")
    return type(err)(err.errno, f"cannot write {path}: {err.strerror}" + (f" ({hint})" if hint else ""))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars, tuples, paths and classes into plain JSON values (recursively)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        with contextlib.suppress(Exception):
            return to_jsonable(item())
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        with contextlib.suppress(Exception):
            return to_jsonable(tolist())
    return repr(value)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[int]:
    """Hold an exclusive advisory lock on ``folder/.lock`` (blocks until free); yields its fd."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / ".lock") as fd:
        yield fd


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[int]:
    """Hold an exclusive advisory ``flock`` on ``path`` (created if missing; blocks until free);
    yields the file's descriptor (open for reading and writing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str], *, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold ``flock`` on ``path`` without waiting: when another process holds it, raise
    ``busy(holder)``, where ``holder`` is what that process wrote there ("pid 123 since …").
    The lock goes with the process, so a killed holder never leaves it stale."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise busy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def claim_numbered_dir(
    parent: str | os.PathLike[str],
    *,
    pattern: re.Pattern[str],
    make_name: Callable[[int], str],
) -> Path:
    """Create the next numbered folder under ``parent`` and return it.

    ``pattern`` must capture the number of existing entries as group 1; the new folder takes
    max + 1. The listing and the ``mkdir`` happen under one folder lock, so two processes never
    get the same number; ``mkdir`` without ``exist_ok`` is the second line of defence.
    """
    parent = Path(parent)
    with folder_lock(parent) as fd:
        return make_next_dir(parent, pattern=pattern, make_name=make_name, lock_fd=fd)


def make_next_dir(
    parent: Path, *, pattern: re.Pattern[str], make_name: Callable[[int], str], lock_fd: int | None = None
) -> Path:
    """The body of :func:`claim_numbered_dir`, for a caller already holding ``folder_lock(parent)``
    (``flock`` is per open file, so taking the lock again in the same process would deadlock).

    With ``lock_fd`` (the held ``.lock`` file) the number claimed is written there with the
    folder's ``stat`` after the ``mkdir``; the next claim that finds the folder unchanged since
    (same mtime, link count and inode) takes the next number without listing the folder. Listing
    it every time made claiming quadratic: 10,000 claims took 62 s here, the last ones ~10 ms
    each. Any entry made or removed by anyone, with or without the lock, changes the folder's
    mtime (its link count too for a sub-folder, should two land in one timestamp tick), and then
    the folder is listed as before."""
    number = _trusted_last(parent, lock_fd)
    if number is None:
        taken = [int(m.group(1)) for p in parent.iterdir() if (m := pattern.match(p.name))]
        number = max(taken, default=0)
    number += 1
    while True:
        path = parent / make_name(number)
        try:
            path.mkdir()
        except FileExistsError:
            number += 1
            continue
        if lock_fd is not None:
            # one fixed-width write over the last note (an ftruncate first cost 0.4 ms a claim here)
            os.pwrite(lock_fd, f"{number} {_stat_key(parent)}".ljust(_NOTE_WIDTH).encode(), 0)
        return path


_NOTE_WIDTH = 96  # "number mtime_ns nlink inode", padded: wider than any such line


def _stat_key(folder: Path) -> str:
    st = os.stat(folder)
    return f"{st.st_mtime_ns} {st.st_nlink} {st.st_ino}"


def _trusted_last(folder: Path, lock_fd: int | None) -> int | None:
    """The number the last claim wrote into the lock file, when the folder has not changed since."""
    if lock_fd is None:
        return None
    number, _, key = os.pread(lock_fd, _NOTE_WIDTH, 0).decode("ascii", "replace").strip().partition(" ")
    if not number.isdigit() or key != _stat_key(folder):
        return None
    return int(number)


def cache_dir() -> Path:
    """The user's cache folder for the package (``$XDG_CACHE_HOME/specweave-ray``, else
    ``~/.cache/specweave-ray``): rebuildable files only (the MLflow store template, compiled
    models), never a record."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "specweave-ray"


def relative_posix(base: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """``path`` relative to ``base`` with ``/`` (what a doc written into a repository may name:
    no machine's absolute path); the absolute path where none exists (another drive)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()
    except ValueError:
        return Path(path).as_posix()
