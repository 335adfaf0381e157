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

Every error raised here ends with one ``specweave-trial: {json}`` line (the node and the cause)
that the coordinator reads from the error text on the driver.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import resource
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from specweave_ray.exceptions import TrialFault

__all__ = ["TRIAL_TAG", "ask_worker", "parse_tag", "run_isolated"]

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


def _child(conn: Any, body: Callable[[Callable[[dict], None]], Any], memory_mb: float | None,
           parent: int, replies: Any = None) -> None:
    global _TO_WORKER
    _die_with_parent(parent)
    _TO_WORKER = (conn, replies) if replies is not None else None
    old = resource.getrlimit(resource.RLIMIT_AS)
    if memory_mb:
        # on top of what the forked worker already maps (Ray's worker reserves gigabytes of address
        # space it never touches), so the limit is what the trial itself may add
        soft = _vm_bytes() + int(memory_mb * 2**20)
        if old[1] != resource.RLIM_INFINITY:
            soft = min(soft, old[1])
        resource.setrlimit(resource.RLIMIT_AS, (soft, old[1]))
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
    else:
        conn.send(("done", None))
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
    deadline = t0 + timeout_s if timeout_s else None
    outcome: tuple | None = None
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not recv.poll(wait):
                proc.kill()
                proc.join(5)
                raise _timeout(node, timeout_s, t0)
            try:
                msg = recv.recv()
            except EOFError:
                break
            if msg[0] == "report":
                if report is not None:
                    report(msg[1])
            elif msg[0] == "request" and serve is not None:
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
                outcome = msg
                break
    finally:
        if proc.is_alive() and outcome is None:
            proc.kill()  # the worker's own report raised (Tune stopping the trial): end the child
        proc.join(5 if outcome is not None else None)
        recv.close()
        if to_child is not None:
            to_child.close()
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
