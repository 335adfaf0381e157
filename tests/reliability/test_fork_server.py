"""The worker's long-lived trial child (``_isolate.run_served``), without Ray: successive trials
run in one forked child, and a trial that crashes, hangs, runs out of memory or raises is
recorded with its cause while the next trial gets a fresh child and succeeds."""

from __future__ import annotations

import os
import time

import pytest

from specweave_ray.exceptions import TrialFault
from specweave_ray.search._isolate import ask_worker, parse_tag, run_served, stop_server

DATA = {"rows": list(range(1000))}  # in the worker before the fork: the child has it without pickling


def _trial(data: dict) -> object:
    def run(arg: tuple, send: object) -> None:
        kind, value = arg
        if kind == "ok":
            send({"pid": os.getpid(), "sum": sum(data["rows"]) + value})
        elif kind == "exit":
            os._exit(value)
        elif kind == "hang":
            time.sleep(value)
        elif kind == "hog":
            send({"pid": os.getpid()})
            _ = bytearray(value * 2**20)
        elif kind == "raise":
            raise ValueError(f"bad value {value}")
        elif kind == "ask":
            send({"answer": ask_worker(value)})

    return run


def _run(arg: tuple, *, key: str = "data-1", **kw: object) -> list[dict]:
    got: list[dict] = []
    run_served(key, _trial(DATA), arg, got.append, node="n1", **kw)
    return got


@pytest.fixture(autouse=True)
def _no_server_left():
    yield
    stop_server()


def test_successive_trials_share_one_child_until_the_data_changes() -> None:
    first = _run(("ok", 1))
    second = _run(("ok", 2))
    assert first[0]["sum"] == 499501 and second[0]["sum"] == 499502
    assert first[0]["pid"] == second[0]["pid"] != os.getpid()
    assert _run(("ok", 0), key="data-2")[0]["pid"] != first[0]["pid"]


@pytest.mark.parametrize(("arg", "kw", "cause"), [
    (("exit", 3), {}, {"kind": "exit", "exit_code": 3}),
    (("hang", 60), {"timeout_s": 1.0}, {"kind": "timeout", "limit_s": 1.0}),
    (("hog", 4096), {"memory_mb": 256}, {"kind": "oom", "limit_mb": 256}),
])
def test_a_fault_is_raised_with_its_cause_and_the_next_trial_gets_a_fresh_child(arg, kw, cause) -> None:
    before = _run(("ok", 0))[0]["pid"]
    with pytest.raises(TrialFault) as info:
        _run(arg, **kw)
    tag = parse_tag(str(info.value))
    assert tag["node"] == "n1"
    assert {k: tag["cause"][k] for k in cause} == cause
    after = _run(("ok", 0))
    assert after[0]["sum"] == 499500 and after[0]["pid"] != before


def test_a_raised_error_comes_back_as_itself_and_the_memory_limit_is_per_trial() -> None:
    with pytest.raises(ValueError, match="bad value 7") as info:
        _run(("raise", 7))
    assert parse_tag("\n".join(info.value.__notes__))["cause"] == {"kind": "exception", "type": "ValueError"}
    # a limit counted from what the child maps at each trial's start: many trials each under it pass
    pids = {_run(("hog", 64), memory_mb=256)[0]["pid"] for _ in range(5)}
    assert len(pids) == 1


def test_the_child_asks_the_worker_and_a_trial_without_a_server_is_told_so() -> None:
    assert _run(("ask", 21), serve=lambda request, deadline: request * 2) == [{"answer": 42}]
    with pytest.raises(RuntimeError, match="no worker to answer"):
        _run(("ask", 1))
