"""One trial's body in a forked child of its Ray worker, so that how it ended is known.

A trial that kills its own process (``os._exit``, a signal, the kernel's OOM killer) takes a Ray
worker with it, and Ray reports only "the actor died unexpectedly" (no exit code, no signal, no
node for a trial that had not reported yet). Run in a child, the worker survives and sees the
child's exit status; it can also end a child that hangs past its time limit (Tune's stoppers only
run when a trial reports, so a hung trial that never reports is never stopped) and cap the
child's address space (``RLIMIT_AS``: Ray's ``memory`` resource only schedules, it enforces
nothing per trial). The child is a plain ``fork`` (copy-on-write: the data already deserialised
in the worker is shared, nothing is pickled again); its reports come back through a pipe and are
handed to ``report`` (Tune's) in the worker. Hand-written because multiprocessing's pools give
neither the exit status of a dead worker nor a per-task kill.

:func:`run_served` is the same with one long-lived child per worker process (a fork server): it
is forked once, after the worker has the sweep's data, and runs the worker's trials one after
another, each sent over a pipe; a new one is forked only after a trial that did not end cleanly
(it raised, died, ran out of memory or time, or Tune stopped it). Measured (2 cores, 32 XGBoost
trials): a fresh child per trial ran each trial's body ~2x slower than the worker itself
(the preprocessing 278 against 80 ms, the fit 385 against 257 ms: every child starts cold,
faulting in copy-on-write pages and redoing the caches the previous trial warmed), plus ~60 ms
to fork and start and ~150 ms to exit and join.

Every error raised here ends with one ``specweave-trial: {json}`` line (the node and the cause)
that the coordinator reads from the error text on the driver.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing
import os
import pickle
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from specweave_ray.exceptions import TrialFault

__all__ = ["TRIAL_TAG", "ask_worker", "parse_tag", "run_isolated", "run_served", "stop_server"]

TRIAL_TAG = "specweave-trial: "
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TO_WORKER: tuple[Any, Any] | None = None  # in a child: (its pipe to the worker, the worker's replies)


def _tag(node: str | None, cause: dict[str, Any]) -> str:
    return TRIAL_TAG + json.dumps({"node": node, "cause": cause}, sort_keys=True)


def parse_tag(text: str) -> dict[str, Any]:
    """The ``{"node", "cause"}`` of the last ``specweave-trial:`` line in an error text ({} if none)."""
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith(TRIAL_TAG):
            with contextlib.suppress(ValueError):
                return json.loads(line[len(TRIAL_TAG):])
    return {}


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent(parent: int) -> None:
    """Linux: the child gets SIGKILL when its worker dies (Ray killing the worker at shutdown or
    Ctrl-C must not leave a hung trial behind)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the worker died before prctl
        os._exit(1)


def ask_worker(request: Any) -> Any:
    """In a trial's child: have the worker answer ``request`` (``run_isolated``'s ``serve``, e.g.
    the Ray tasks a forked, Ray-free child can't start itself) and return its answer.

    Raises:
        Exception: what ``serve`` raised (a chunk's ``TrialFault``), here in the child.
    """
    if _TO_WORKER is None:
        raise RuntimeError("ask_worker is only for a trial body run by run_isolated(..., serve=...)")
    conn, replies = _TO_WORKER
    conn.send(("request", request))
    status, value = replies.recv()
    if status == "error":
        raise value
    return value


def _limit_memory(memory_mb: float | None) -> tuple[int, int]:
    """Cap the address space at what this process maps now plus ``memory_mb``; return the old limit."""
    old = resource.getrlimit(resource.RLIMIT_AS)
    if memory_mb:
        # on top of what the forked worker already maps (Ray's worker reserves gigabytes of address
        # space it never touches), so the limit is what the trial itself may add
        soft = _vm_bytes() + int(memory_mb * 2**20)
        if old[1] != resource.RLIM_INFINITY:
            soft = min(soft, old[1])
        resource.setrlimit(resource.RLIMIT_AS, (soft, old[1]))
    return old


def _run_body(conn: Any, body: Callable[[Callable[[dict], None]], Any], memory_mb: float | None) -> bool:
    """In a child: run ``body`` under the memory limit, its reports and its end sent on ``conn``.
    True when it returned."""
    old = _limit_memory(memory_mb)
    try:
        body(lambda result: conn.send(("report", result)))
    except BaseException as err:  # noqa: BLE001 - everything goes back to the worker
        tb = traceback.format_exc()
        resource.setrlimit(resource.RLIMIT_AS, old)  # room to pickle and send the error
        try:
            blob = pickle.dumps(err)
        except Exception:  # noqa: BLE001 - an unpicklable error travels as text
            blob = None
        conn.send(("error", blob, type(err).__name__, str(err)[:4000], tb))
        return False
    resource.setrlimit(resource.RLIMIT_AS, old)
    conn.send(("done", None))
    return True


def _child(conn: Any, body: Callable[[Callable[[dict], None]], Any], memory_mb: float | None,
           parent: int, replies: Any = None) -> None:
    global _TO_WORKER
    _die_with_parent(parent)
    _TO_WORKER = (conn, replies) if replies is not None else None
    try:
        _run_body(conn, body, memory_mb)
    finally:
        conn.close()


def _server_child(conn: Any, inbox: Any, fn: Callable[[Any, Callable[[dict], None]], Any], parent: int) -> None:
    """The fork server's loop: ``("trial", arg, memory_mb)`` from ``inbox`` runs ``fn(arg, send)``;
    it ends when the worker closes the pipe, or after a trial that raised (the worker forks anew)."""
    global _TO_WORKER
    _die_with_parent(parent)
    _TO_WORKER = (conn, inbox)
    try:
        while True:
            try:
                msg = inbox.recv()
            except EOFError:
                return
            if msg[0] != "trial":
                return
            _, arg, memory_mb = msg
            if not _run_body(conn, lambda send, arg=arg: fn(arg, send), memory_mb):
                return
    finally:
        conn.close()


def _signal_name(num: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(num).name
    return f"signal {num}"


def _timeout(node: str | None, timeout_s: float | None, t0: float) -> TrialFault:
    cause = {"kind": "timeout", "limit_s": timeout_s, "elapsed_s": round(time.monotonic() - t0, 3)}
    return TrialFault(f"trial ran past its time limit of {timeout_s:g} s and was killed\n"
                      + _tag(node, cause), cause=cause, node=node)


def _reply(conn: Any, status: str, value: Any) -> None:
    try:
        conn.send((status, value))
    except Exception:  # noqa: BLE001 - an unpicklable answer or error travels as text
        conn.send(("error", RuntimeError(f"{type(value).__name__}: {str(value)[:4000]}")))


def _pump(proc: Any, recv: Any, to_child: Any, report: Callable[[dict], None] | None,
          serve: Callable[[Any, float | None], Any] | None, *, node: str | None, timeout_s: float | None,
          t0: float) -> tuple | None:
    """Hand the child's reports to ``report`` and answer its requests until its trial ends: the
    child's last message (``("done", None)`` or the error it raised), or None when its pipe closed
    (it died). Past the time limit the child is killed and the timeout raised."""
    deadline = t0 + timeout_s if timeout_s else None
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not recv.poll(wait):
            proc.kill()
            proc.join(5)
            raise _timeout(node, timeout_s, t0)
        try:
            msg = recv.recv()
        except EOFError:
            return None
        if msg[0] == "report":
            if report is not None:
                report(msg[1])
        elif msg[0] == "request" and to_child is not None:
            if serve is None:
                _reply(to_child, "error", RuntimeError("this trial has no worker to answer ask_worker"))
                continue
            try:
                answer = serve(msg[1], deadline)
            except TimeoutError:
                proc.kill()
                proc.join(5)
                raise _timeout(node, timeout_s, t0) from None
            except Exception as err:  # noqa: BLE001 - the child raises it, in the trial's code
                _reply(to_child, "error", err)
            else:
                _reply(to_child, "ok", answer)
        else:
            return msg


def _raise_for(outcome: tuple | None, proc: Any, *, node: str | None, memory_mb: float | None) -> None:
    """Raise what a trial's end means (nothing for ``("done", None)``); ``proc`` joined if it died."""
    if outcome is not None and outcome[0] == "done":
        return
    if outcome is not None:  # the body raised
        _, blob, type_name, message, tb = outcome
        if type_name == "MemoryError":
            cause = {"kind": "oom", "limit_mb": memory_mb, "detail": "MemoryError"}
            limit = f" of {memory_mb:g} MB" if memory_mb else ""
            raise TrialFault(f"trial went over its memory limit{limit} (MemoryError)\n{tb}\n" + _tag(node, cause),
                             cause=cause, node=node)
        err = None
        if blob is not None:
            with contextlib.suppress(Exception):
                err = pickle.loads(blob)
        if not isinstance(err, BaseException):
            err = RuntimeError(f"{type_name}: {message}")
        err.add_note(f"trial traceback (in the trial's process):\n{tb}")
        if isinstance(err, TrialFault) and err.cause:
            # a fault served to the child (a chunk's process died, or its memory): its own cause and node
            err.add_note(_tag(err.node or node, err.cause))
            raise err
        cause = {"kind": "exception", "type": type_name}
        err.add_note(_tag(node, cause))
        raise err
    code = proc.exitcode
    if code is not None and code < 0:
        name = _signal_name(-code)
        cause: dict[str, Any] = {"kind": "signal", "signal": name}
        text = f"trial process was killed by {name}"
        if memory_mb and -code in (signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV):
            cause["memory_limit_mb"] = memory_mb
            text += f" (its memory limit was {memory_mb:g} MB)"
    else:
        cause = {"kind": "exit", "exit_code": code}
        text = f"trial process exited with code {code} before finishing"
    raise TrialFault(text + "\n" + _tag(node, cause), cause=cause, node=node)


def run_isolated(body: Callable[[Callable[[dict], None]], Any], report: Callable[[dict], None] | None, *,
                 node: str | None = None, timeout_s: float | None = None, memory_mb: float | None = None,
                 serve: Callable[[Any, float | None], Any] | None = None) -> None:
    """Run ``body(send)`` in a forked child; each ``send(result)`` there is ``report(result)`` here.

    With ``serve``, the child's :func:`ask_worker` calls are answered here by ``serve(request,
    deadline)`` (``deadline``: ``time.monotonic()`` at the time limit, or None): what it returns
    or raises goes back to the child; a ``TimeoutError`` from it is the trial's timeout.

    Raises:
        TrialFault: the child exited (code), was killed (signal), went over ``memory_mb`` or ran
            past ``timeout_s`` (it is then killed); ``cause`` and ``node`` say which and where.
        Exception: what ``body`` raised, re-raised here with the child's traceback as a note.
    """
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    answers, to_child = ctx.Pipe(duplex=False) if serve is not None else (None, None)
    proc = ctx.Process(target=_child, args=(send, body, memory_mb, os.getpid(), answers), name="specweave-trial")
    t0 = time.monotonic()
    proc.start()
    send.close()
    if answers is not None:
        answers.close()
    outcome: tuple | None = None
    try:
        outcome = _pump(proc, recv, to_child, report, serve, node=node, timeout_s=timeout_s, t0=t0)
    finally:
        if proc.is_alive() and outcome is None:
            proc.kill()  # the worker's own report raised (Tune stopping the trial): end the child
        proc.join(5 if outcome is not None else None)
        recv.close()
        if to_child is not None:
            to_child.close()
    _raise_for(outcome, proc, node=node, memory_mb=memory_mb)


class _Server:
    """The worker's long-lived trial child (:func:`run_served`).

    It is forked from a thread of its own that lives as long as the child: ``PR_SET_PDEATHSIG``
    fires when the *thread* that forked the child ends, and Tune runs each trial in a thread of
    its own, so a child forked there would be killed when its first trial's thread ended."""

    def __init__(self, key: Any, fn: Callable[[Any, Callable[[dict], None]], Any]) -> None:
        ctx = multiprocessing.get_context("fork")
        self.key = key
        self.recv, child_send = ctx.Pipe(duplex=False)
        child_inbox, self.to_child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_server_child, args=(child_send, child_inbox, fn, os.getpid()),
                                name="specweave-trial")
        self._release = threading.Event()
        started = threading.Event()
        failed: list[BaseException] = []

        def fork() -> None:
            try:
                self.proc.start()
            except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
                failed.append(err)
            finally:
                started.set()
            self._release.wait()

        threading.Thread(target=fork, name="specweave-trial-forker", daemon=True).start()
        started.wait()
        child_send.close()
        child_inbox.close()
        if failed:
            self._release.set()
            raise failed[0]

    def stop(self) -> None:
        """End the child (killed if it is still running a trial) and its thread."""
        with contextlib.suppress(Exception):
            self.to_child.close()  # an idle child reads EOF and returns
            self.proc.join(0.5)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.recv.close()
        self._release.set()


_SERVER: list[_Server] = []  # this worker's fork server, at most one
_SERVER_LOCK = threading.Lock()  # one trial at a time uses it


def stop_server() -> None:
    """End this process's fork server, if any (run at exit, and before one for other data)."""
    while _SERVER:
        _SERVER.pop().stop()


def run_served(key: Any, fn: Callable[[Any, Callable[[dict], None]], Any], arg: Any,
               report: Callable[[dict], None] | None, *, node: str | None = None, timeout_s: float | None = None,
               memory_mb: float | None = None, serve: Callable[[Any, float | None], Any] | None = None) -> None:
    """:func:`run_isolated` of ``fn(arg, send)`` in this worker's long-lived child.

    The child is forked on the first call, and again when ``key`` changes (``fn`` is the one of
    the call that forked it: the same ``key`` must mean the same ``fn``, e.g. the same sweep data)
    or after a trial that did not end cleanly. ``arg`` travels pickled; what ``fn`` closes over
    is the worker's memory at the fork. The memory limit is counted from what the child maps when
    the trial starts. Same errors as :func:`run_isolated`.
    """
    if not _SERVER_LOCK.acquire(blocking=False):
        # another trial's thread still holds the child (Tune stopping one trial while starting
        # the next on the same actor): this one gets a child of its own
        run_isolated(lambda send: fn(arg, send), report, node=node, timeout_s=timeout_s, memory_mb=memory_mb,
                     serve=serve)
        return
    try:
        if _SERVER and (_SERVER[0].key != key or not _SERVER[0].proc.is_alive()):
            stop_server()
        if not _SERVER:
            _SERVER.append(_Server(key, fn))
        server = _SERVER[0]
        t0 = time.monotonic()
        outcome: tuple | None = None
        try:
            server.to_child.send(("trial", arg, memory_mb))
            outcome = _pump(server.proc, server.recv, server.to_child, report, serve, node=node,
                            timeout_s=timeout_s, t0=t0)
        except (BrokenPipeError, ConnectionResetError):
            outcome = None  # the child died between trials: its exit status says how
        finally:
            if outcome is None or outcome[0] != "done":
                # it raised, died, timed out, or our report raised (Tune stopping the trial): the
                # next trial gets a fresh child
                stop_server()
        _raise_for(outcome, server.proc, node=node, memory_mb=memory_mb)
    finally:
        _SERVER_LOCK.release()


atexit.register(stop_server)  # before multiprocessing's own exit handler joins the child
