"""Ray Tune: every candidate's trials in one Tuner, on the local cores or a Ray cluster.

This is the only module that imports Ray. One Tuner runs all candidates at once; a searcher
hands each candidate's trials to its own Optuna TPE search (Ray Tune's ``OptunaSearch``) and a
scheduler gives each iterative candidate its own ASHA, so one family never stops another's
trials. Data goes to the object store once; workers cache it per process across reused actors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from specweave_ray.candidates.forecasters import using_chunk_map
from specweave_ray.exceptions import TrialFault
from specweave_ray.search._isolate import ask_worker, parse_tag, run_isolated, run_served
from specweave_ray.search._ray.resources import PendingWatch, alive_nodes, bundles_of, chunk_workers
from specweave_ray.search._ray.resources import check_resources as check
from specweave_ray.search.trial import ERROR_KEY, refit, run_cv
from specweave_ray.spec.experiment import ModelExperiment
from specweave_ray.spec.search_space import Domain

logger = logging.getLogger(__name__)

# Measured on 2 cores (STACK.md): these settings cut a 32-trial sweep of short trials from ~35 s
# to ~3 s. They must be in the environment before Ray starts so workers inherit them.
_FAST_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_CHDIR_TO_TRIAL_DIR": "0",
             "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
             "RAY_AIR_NEW_OUTPUT": "0", "RAY_TRAIN_V2_ENABLED": "0",
             # Ctrl-C is ours (_interrupt_watch): Tune's own handler would end the sweep as if it
             # had finished, and the runner must record the running trials interrupted
             "TUNE_DISABLE_SIGINT_HANDLER": "1"}
_PAYLOADS: dict[str, Any] = {}  # per worker process: object-store payloads already deserialised


def ensure_ray(*, address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None,
               background: bool = False) -> bool:
    """Connect to ``address`` / ``$RAY_ADDRESS``, or start an embedded local Ray.

    With ``background``, an embedded Ray starts in a thread and this returns at once: the caller
    goes on with work that needs no Ray (a run's T-001 and T-002) while Ray's processes start
    (seconds on 2 cores); the next call of this function (the sweep's), :func:`wait_for_ray` and
    :func:`shutdown` wait for that start and raise what it raised (:func:`planned_node` says
    what it will have, for checks that need not wait).
    Connecting to a cluster is never put in the background (its resources are checked at once).

    Returns True when this call started Ray (so the caller shuts it down).
    """
    import ray

    for key, value in _FAST_ENV.items():
        os.environ.setdefault(key, value)
    wait_for_ray()
    if ray.is_initialized():
        return False
    _release()  # a background start whose Ray was shut down by ray.shutdown() itself
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr:
        ray.init(address=addr, log_to_driver=False)
        return True
    # address="local": always a new embedded Ray. With address=None, ray.init joins the cluster
    # named in /tmp/ray/ray_current_cluster (any `ray start --head` on this machine) and then
    # refuses num_cpus: "When connecting to an existing cluster, num_cpus ... must not be provided".
    options = {"address": "local", "num_cpus": num_cpus or os.cpu_count(), "num_gpus": num_gpus,
               "include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if not background:
        ray.init(**options)
        return True
    if threading.current_thread() is threading.main_thread():
        # what ray.init installs when called from the main thread (a SIGTERM ends the driver
        # through sys.exit, so atexit shuts Ray down); from a thread it cannot, and warns
        signal.signal(signal.SIGTERM, _exit_on_signal)
    start = _Start({"CPU": float(options["num_cpus"]), "GPU": None if num_gpus is None else float(num_gpus)})
    _STARTING.append(start)
    start.thread = threading.Thread(target=start.run, args=(options,), name="specweave-ray-start", daemon=True)
    start.thread.start()
    return True


class _Start:
    """An embedded Ray started in a thread, and that thread kept alive until ``shutdown``.

    Ray starts its processes with ``PR_SET_PDEATHSIG`` (they die with their parent), and Linux
    sends that signal when the parent *thread* ends: had the thread ended after ``ray.init``,
    the GCS and the raylet would have been killed with it.
    """

    def __init__(self, node: dict[str, float | None]) -> None:
        self.node = node  # the CPUs and GPUs asked for (GPU None: Ray detects them)
        self.ready = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self, options: dict[str, Any]) -> None:
        import ray

        # ray.init warns that it sets no SIGTERM handler outside the main thread: ensure_ray did
        worker_log = logging.getLogger("ray._private.worker")
        quiet = _DropMessage("SIGTERM handler is not set")
        worker_log.addFilter(quiet)
        try:
            ray.init(**options)
        except BaseException as err:  # noqa: BLE001 - raised in the thread that waits for Ray
            self.error = err
        finally:
            worker_log.removeFilter(quiet)
            self.ready.set()
        self.release.wait()


# the embedded Ray being started (or started) by ensure_ray(background=True); at most one
_STARTING: list[_Start] = []


def _exit_on_signal(signum: int, frame: Any) -> None:
    sys.exit(signum)


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def planned_node() -> dict[str, float | None] | None:
    """The CPUs and GPUs (None: Ray will detect them) of the embedded Ray that
    ``ensure_ray(background=True)`` started, or None when it started none (then ask Ray itself)."""
    return dict(_STARTING[0].node) if _STARTING else None


def wait_for_ray() -> None:
    """Wait for a background start (``ensure_ray(background=True)``) and raise what it raised
    (once: a failed start is forgotten, so the next ``ensure_ray`` tries again)."""
    if not _STARTING:
        return
    start = _STARTING[0]
    start.ready.wait()
    if start.error is not None:
        _release()
        raise start.error


def _release() -> None:
    """End the start's thread (after ``ray.shutdown``, or after a failed start)."""
    while _STARTING:
        start = _STARTING.pop()
        start.release.set()
        if start.thread is not None:
            start.thread.join()


def check_resources(experiments: Sequence[ModelExperiment], *, autoscale: bool | None = None,
                    pending_timeout_s: float = 900.0, nodes: Sequence[Mapping[str, float]] | None = None,
                    ) -> dict[str, float]:
    """Fail fast (not hang) when a candidate's trials fit on no node of the cluster (``nodes``,
    each one's resources; default: Ray's alive nodes).

    On an autoscaling cluster (``autoscale`` true; when None, ``SPECWEAVE_ALLOW_AUTOSCALE=1`` or
    an autoscaler seen in the cluster's status) log instead that those trials wait for a node.
    """

    return check(experiments, autoscale=autoscale, pending_timeout_s=pending_timeout_s, nodes=nodes)


def to_tune_space(space: Mapping[str, Any]) -> dict[str, Any]:
    from ray import tune

    out = {}
    for key, dom in space.items():
        if not isinstance(dom, Domain):
            out[key] = dom  # already a Ray Tune domain
        elif dom.kind == "choice":
            out[key] = tune.choice(list(dom.args[0]))
        elif dom.kind == "quniform":
            out[key] = tune.quniform(*dom.args)
        else:
            out[key] = getattr(tune, dom.kind)(*dom.args)
    return out


def _trainable(config: dict[str, Any], payload_box: Any = None) -> None:
    """The Tune function trainable: cross-validate one configuration, reporting each stage."""
    import ray
    from ray import tune


    # ``payload_box`` is ``[ObjectRef]``: boxed so that ``with_parameters`` hands us the ref and
    # we deserialise the data once per worker process, not once per trial (actors are reused).
    payload_ref = payload_box[0]
    key = payload_ref.hex()
    payload = _PAYLOADS.get(key)
    if payload is None:  # first trial on this (reused) actor process
        _PAYLOADS.clear()
        payload = _PAYLOADS[key] = ray.get(payload_ref)
    cand = payload["candidates"][config["candidate"]]
    node = ray.get_runtime_context().get_node_id()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    limits = payload.get("limits") or {}
    isolate = limits.get("isolate", True)
    workers = int(cand.get("chunks") or 0)
    chunk_nodes: list[str] = []
    serve = None
    if workers:
        # the trial holds `workers` one-CPU bundles and its actor none (run_tune): the series'
        # chunks run as tasks in those bundles, started here in the worker (a forked child must
        # not call Ray: it asks the worker through _isolate.ask_worker)
        serve = _chunk_server(ray.util.get_current_placement_group(), limits, chunk_nodes)

    def report(result: dict[str, Any]) -> None:
        if chunk_nodes:  # where the chunks ran, for the record (meta.json "chunks")
            result = {**result, "info_chunk_nodes": ",".join(sorted(set(chunk_nodes))),
                      "info_chunk_tasks": len(chunk_nodes)}
        tune.report(result)

    arg = (config, node, gpu_ids)
    if not isolate:
        _cv_trial(payload, arg, report, lambda fn, items: serve(("map", fn, items), None))
        return
    try:
        # in the worker's long-lived forked child (_isolate.run_served): its exit code / signal,
        # memory and time limits are seen here; a new child after a trial that did not end cleanly
        run_served((key, tuple(gpu_ids), os.environ.get("CUDA_VISIBLE_DEVICES")), _served_trial(payload), arg,
                   report, node=node, timeout_s=limits.get("timeout_s"), memory_mb=limits.get("memory_mb"),
                   serve=serve)
    except Exception as err:  # noqa: BLE001 - a failed trial is reported, its worker lives on
        # Reported as the trial's last result, not raised: Tune throws away the actor of a trial
        # that raised and starts a new one (seconds each), while this worker is healthy (the trial
        # died in its child). The searcher, the scheduler and the coordinator read ERROR_KEY.
        tune.report({payload["metric"]: float("nan"),
                     ERROR_KEY: "".join(traceback.format_exception(err))[-20000:]})


def _cv_trial(payload: dict[str, Any], arg: tuple[dict[str, Any], str | None, list[str]],
              report: Callable[[dict[str, Any]], None], fit_chunks: Callable[[Callable, list[tuple]], list]) -> None:
    """One trial's CV: ``arg`` is its ``(config, node, gpu_ids)``; chunked fits go to ``fit_chunks``."""
    config, node, gpu_ids = arg
    cand = payload["candidates"][config["candidate"]]
    workers = int(cand.get("chunks") or 0)
    with using_chunk_map(fit_chunks, workers) if workers else contextlib.nullcontext():
        run_cv(cand["cls"], config["params"], payload["X"], payload["y"], payload["folds"],
               metric=payload["metric"], preprocessor=None if cand["raw"] else payload["preprocessor"],
               problem_type=payload.get("problem_type"), keep_oof=bool(payload.get("keep_oof")),
               stages=cand["stages"], cpus=cand["cpus"],
               gpu_ids=gpu_ids, report=report, node=node)


def _served_trial(payload: dict[str, Any]) -> Callable[[Any, Callable[[dict[str, Any]], None]], None]:
    """What the fork server's child runs per trial (it has ``payload`` from the fork)."""
    def run(arg: Any, send: Callable[[dict[str, Any]], None]) -> None:
        _cv_trial(payload, arg, send, lambda fn, items: ask_worker(("map", fn, items)))

    return run


def _chunk_task(fn: Callable, args: tuple, limits: dict[str, Any]) -> tuple[str, Any, str]:
    """Ray task: one chunk's fit, ``fn(*args)``, isolated like a trial (its own forked child, the
    trial's memory limit per chunk). Returns ``(status, value, node)``: "ok" and the result, or
    "error" and what it raised (a ``TrialFault`` when its process died or ran out of memory)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    out: list[Any] = []
    try:
        if limits.get("isolate", True):
            run_isolated(lambda send: send(fn(*args)), out.append, node=node, memory_mb=limits.get("memory_mb"))
        else:
            out.append(fn(*args))
    except Exception as err:  # noqa: BLE001 - the trial raises it, with the chunk's node
        try:
            pickle.dumps(err)
        except Exception:  # noqa: BLE001
            err = RuntimeError(f"{type(err).__name__}: {str(err)[:4000]}")
        return "error", err, node
    return "ok", out[0], node


def _chunk_server(pg: Any, limits: dict[str, Any], nodes: list[str]) -> Callable[[Any, float | None], list]:
    """The worker's answer to a trial's ``("map", fn, items)``: one task per item in the
    placement group ``pg`` (one CPU each, any of its bundles: the trial's own resources, so no
    task waits for resources another trial holds), results in order. Past ``deadline`` the tasks
    are cancelled and ``TimeoutError`` raised; a failed chunk's error is raised, its node noted."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    task = ray.remote(_chunk_task).options(
        num_cpus=1, max_retries=0,
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=-1))

    def serve(request: Any, deadline: float | None) -> list:
        _, fn, items = request
        fn_ref = ray.put(fn)
        refs = [task.remote(fn_ref, args, limits) for args in items]
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=wait)
        if pending:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise TimeoutError("the chunks ran past the trial's time limit")
        out = []
        for status, value, node in ray.get(refs):
            nodes.append(node)
            if status != "ok":
                if not isinstance(value, TrialFault):
                    value.add_note(f"in a chunk of the series' fits, on node {node}")
                raise value
            out.append(value)
        return out

    return serve


def _refit_task(payload: dict[str, Any], name: str, params: dict[str, Any]) -> tuple[Any, Any, list[str], str]:
    """Ray task (Ray resolves the payload ref passed as an argument from the object store)."""
    import ray


    cand = payload["candidates"][name]
    workers = int(cand.get("chunks") or 0)
    pg = ray.util.get_current_placement_group() if workers else None
    with (using_chunk_map(lambda fn, items: _chunk_server(pg, payload.get("limits") or {}, [])(("map", fn, items), None),
                          workers) if pg is not None else contextlib.nullcontext()):
        model, pre, warnings = refit(cand["cls"], params, payload["X"], payload["y"],
                                     preprocessor=None if cand["raw"] else payload["preprocessor"], cpus=cand["cpus"],
                                     gpu_ids=[str(g) for g in ray.get_gpu_ids()])
    return model, pre, warnings, ray.get_runtime_context().get_node_id()


def _make_searcher(experiments: Sequence[ModelExperiment], *, metric: str, mode: str, seed: int,
                   budgets: Mapping[str, int], prior: Mapping[str, list[tuple[dict[str, Any], float]]]) -> Any:
    import optuna
    from ray import cloudpickle
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class CandidateSearcher(Searcher):
        """Round-robin over candidates; each searched one has its own Optuna TPE study."""

        def __init__(self) -> None:
            super().__init__(metric=metric, mode=mode)
            self._subs: dict[str, Any] = {}
            self._left = dict(budgets)
            self._owner: dict[str, str] = {}
            self._order = [e.name for e in experiments if self._left.get(e.name, 0) > 0]
            self._next = 0
            self._fixed = {e.name: e.fixed_params for e in experiments}
            for e in experiments:
                if e.has_search_space and self._left.get(e.name, 0) > 0:
                    points = prior.get(e.name, [])
                    sampler = optuna.samplers.TPESampler(
                        seed=seed, n_startup_trials=max(2, min(10, e.num_samples // 3)))
                    self._subs[e.name] = OptunaSearch(
                        space=OptunaSearch.convert_search_space(to_tune_space(e.search_space)), metric=metric, mode=mode, sampler=sampler,
                        points_to_evaluate=[p for p, _ in points] or None,
                        evaluated_rewards=[r for _, r in points] or None)

        def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
            return True

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            if not any(v > 0 for v in self._left.values()):
                return Searcher.FINISHED
            for _ in range(len(self._order)):
                name = self._order[self._next % len(self._order)]
                self._next += 1
                if self._left[name] <= 0:
                    continue
                if name in self._subs:
                    params = self._subs[name].suggest(trial_id)
                    if params in (None, Searcher.FINISHED):
                        continue
                else:
                    params = {}
                self._left[name] -= 1
                self._owner[trial_id] = name
                return {"candidate": name, "params": {**self._fixed[name], **params}}
            return None

        def save(self, checkpoint_path: str) -> None:
            # Tune checkpoints the searcher with the experiment state; the sub-searchers are
            # Ray's OptunaSearch objects, which pickle with their studies.
            with open(checkpoint_path, "wb") as fh:
                cloudpickle.dump(self.__dict__, fh)

        def restore(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "rb") as fh:
                self.__dict__.update(cloudpickle.load(fh))

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            sub = self._subs.get(self._owner.get(trial_id, ""))
            if sub is not None and ERROR_KEY not in result:
                sub.on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            sub = self._subs.get(self._owner.get(trial_id, ""))
            if sub is not None:
                failed = error or ERROR_KEY in (result or {})  # a failed trial is FAIL to Optuna
                sub.on_trial_complete(trial_id, result=None if failed else result, error=failed)

    return CandidateSearcher()


def _make_scheduler(staged: Sequence[str], *, metric: str, mode: str, stages: int) -> Any:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

    class PerCandidateASHA(FIFOScheduler):
        """One ASHA per iterative candidate: trials compete with their own family only."""

        def __init__(self) -> None:
            super().__init__()
            self._subs = {name: AsyncHyperBandScheduler(time_attr="training_iteration", metric=metric, mode=mode,
                                                        max_t=stages, grace_period=1, reduction_factor=2)
                          for name in staged}

        def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
            return True

        def _sub(self, trial: Any) -> Any:
            return self._subs.get((trial.config or {}).get("candidate", ""))

        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            if (sub := self._sub(trial)) is not None:
                sub.on_trial_add(tune_controller, trial)

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            sub = self._sub(trial)
            if sub is None or ERROR_KEY in result:  # a failed trial's last word: it ends anyway
                return TrialScheduler.CONTINUE
            return sub.on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            if (sub := self._sub(trial)) is not None:
                if ERROR_KEY in result:  # no score for its rung: it is forgotten, as an error would be
                    sub.on_trial_remove(tune_controller, trial)
                else:
                    sub.on_trial_complete(tune_controller, trial, result)

        def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
            if (sub := self._sub(trial)) is not None:
                sub.on_trial_error(tune_controller, trial)

        def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
            if (sub := self._sub(trial)) is not None:
                sub.on_trial_remove(tune_controller, trial)

    return PerCandidateASHA()


def _actor_node(actor_hex: str | None) -> str | None:
    """The node a (dead) actor ran on, from Ray's actor table: the node of a trial whose worker
    died before the trial reported (Ray keeps dead actors in its table). Private API, guarded."""
    if not actor_hex:
        return None
    with contextlib.suppress(Exception):
        import ray

        node = ray._private.state.actors(actor_hex).get("Address", {}).get("NodeID")
        return node or None
    return None


def _trial_error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    err = trial.get_error() if hasattr(trial, "get_error") else None
    return str(err) if err else "trial failed"


def _dead_worker_cause(text: str) -> dict[str, Any]:
    """The cause of a failure that did not come through ``_isolate`` (the worker itself died: its
    node was removed, it was killed from outside), from Ray's error text."""
    if "its node has died" in text:  # Ray: "The actor died because its node has died. Node Id: …"
        lines = [ln.strip() for ln in text.splitlines()]
        at = next(i for i, ln in enumerate(lines) if "its node has died" in ln)
        node = re.search(r"Node Id: ([0-9a-f]+)", lines[at])
        why = lines[at + 1] if at + 1 < len(lines) and lines[at + 1] else ""
        return {"kind": "node_died", "node": node.group(1) if node else None, "detail": why[:300]}
    if "ActorDiedError" in text or "actor died" in text.lower() or "RayActorError" in text:
        detail = next((ln.strip() for ln in text.splitlines() if "Worker exit detail" in ln or "exit type" in ln), "")
        return {"kind": "worker_died", "detail": detail[:300]}
    return {"kind": "exception"}


def _make_callback(coordinator: Any) -> Any:
    from ray.tune import Callback

    class CoordinatorCallback(Callback):
        """Forwards Tune's driver-side trial events to the :class:`Coordinator`."""

        def __init__(self, coordinator: Any) -> None:
            self.coordinator = coordinator
            self._actors: dict[str, str] = {}

        # The Tuner pickles its callbacks for Tuner.restore; the coordinator (threads, locks) is
        # driver state that must not travel, and a restored sweep gets a new one anyway.
        def __getstate__(self) -> dict[str, Any]:
            return {}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.coordinator = None

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
            with contextlib.suppress(Exception):
                self._actors[trial.trial_id] = actor._actor_id.hex()
            self.coordinator.trial_started(trial.trial_id, trial.config)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.coordinator.trial_result(trial.trial_id, trial.config, result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._actors.pop(trial.trial_id, None)
            self.coordinator.trial_completed(trial.trial_id, trial.config)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            text = _trial_error_text(trial)
            tag = parse_tag(text)
            actor = self._actors.pop(trial.trial_id, None)
            cause = tag.get("cause") or _dead_worker_cause(text)
            # the node: the trial's own word, else where Ray placed its (dead) worker
            node = tag.get("node") or _actor_node(actor)
            self.coordinator.trial_failed(trial.trial_id, trial.config, text, node=node, cause=cause)

    return CoordinatorCallback(coordinator)


def _make_pending_watch(timeout_s: float) -> tuple[Any, Any, Any]:
    """A Tune callback that times trials waiting for a node and a Stopper that ends the sweep when
    one waited too long. Tune uses both in the driver, in the same step: the callback's
    ``on_step_begin`` sees the trials, ``_stop_experiment_if_needed`` then asks ``stop_all``."""
    from ray.tune import Callback
    from ray.tune.stopper import Stopper


    class PendingCallback(Callback):
        def __init__(self, watch: PendingWatch) -> None:
            self.watch = watch

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            self.watch.observe(trials)

    class PendingStopper(Stopper):
        def __init__(self, watch: PendingWatch) -> None:
            self.watch = watch

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            # Tune then ends the search and stops every trial without a completion event, so a
            # running trial leaves no record; finished ones were recorded as they finished.
            return bool(self.watch.expired)

    watch = PendingWatch(timeout_s)
    return watch, PendingCallback(watch), PendingStopper(watch)


_AFTER_SWEEP: dict[int, Callable[[], float]] = {}


# module-level (pickled by reference): a nested class that named _AFTER_SWEEP itself would carry
# the table, and the coordinator in it, into Tune's pickled state
def _keep_estimate(key: int, estimate: Callable[[], float] | None) -> None:
    if estimate is None:
        _AFTER_SWEEP.pop(key, None)
    else:
        _AFTER_SWEEP[key] = estimate


def _after_sweep_s(key: int) -> float:
    estimate = _AFTER_SWEEP.get(key)
    return float(estimate()) if estimate is not None else 0.0


def _make_budget_watch(time_budget_s: float, first_wave: int, wanted: set[str], *, deadline: float | None = None,
                       after_sweep: Callable[[], float] | None = None) -> tuple[Any, Any, int]:
    """A Tune callback and Stopper for the sweep's time budget.

    Hand-written instead of ``TuneConfig(time_budget_s=…)`` (Ray's ``TimeoutStopper``, counted
    from the controller's first step): under load the trials' actors can take longer to start
    than a short budget, and then the sweep ends with no trial launched, nothing to compare. This
    one counts from the same moment but stops the sweep only once the first wave of trials (one
    per slot, or all of them) has left PENDING and one trial of a ``wanted`` candidate (the
    non-baselines, else any) has ended, so a sweep always has a result to compare, as FLAML
    always fits one model; past that the budget holds. Tune stops it the same way (``stop_all``: no new
    trials, every running one stopped without a completion event, see ``run_tune``).

    ``deadline`` (``time.monotonic()``; default ``time_budget_s`` from now) is when the caller's
    whole budget ends, and ``after_sweep()`` the seconds it needs after the trials (refits, the
    ensemble), re-estimated at every step: the trials stop at ``deadline - after_sweep()``."""
    import time

    from ray.tune import Callback
    from ray.tune.stopper import Stopper

    state = {"start": time.monotonic(), "launched": 0, "ended": False, "logged": False}
    end = deadline if deadline is not None else state["start"] + time_budget_s
    # Tune pickles its stoppers with the experiment's state; the estimate reads the coordinator
    # (locks, threads), so the classes below reach it through this process's table, by key
    key = id(state)
    if after_sweep is not None:
        _keep_estimate(key, after_sweep)

    class BudgetCallback(Callback):
        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            state["launched"] = sum(t.status != "PENDING" for t in trials)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            state["ended"] = state["ended"] or (trial.config or {}).get("candidate") in wanted

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.on_trial_complete(iteration, trials, trial)

    class BudgetStopper(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            now = time.monotonic()
            if state["launched"] < first_wave or not state["ended"]:
                return False
            keep = _after_sweep_s(key)
            if now < end - keep:
                return False
            if not state["logged"]:
                state["logged"] = True
                logger.info("time budget of %g s: stopping the running trials after %.1f s of trials, %.1f s "
                            "kept for the refits and the ensemble", time_budget_s, now - state["start"], keep)
            return True

    return BudgetCallback(), BudgetStopper(), key


_INTERRUPTED = threading.Event()  # a first Ctrl-C during this process's sweep


def _interrupted() -> bool:
    return _INTERRUPTED.is_set()


def _on_sigint(signum: int, frame: Any) -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt  # a second Ctrl-C: at once, wherever the driver is
    _INTERRUPTED.set()
    logger.warning("Ctrl-C: stopping the sweep; its running trials are recorded interrupted (Ctrl-C again "
                   "to stop at once)")


@contextlib.contextmanager
def _interrupt_watch() -> Any:
    """A first Ctrl-C during the sweep sets a flag that Tune's stopper reads at its next step
    (no new trials, the running ones stopped, as the time budget stops them), then ``run_tune``
    raises KeyboardInterrupt once ``Tuner.fit`` has returned. Not the default KeyboardInterrupt
    raised wherever the driver happens to be: one raised inside a ``with lock:`` of the
    coordinator, of its writer's executor or of Ray's client code can leave that lock held, and
    the interrupted run then hung recording its interrupted trials (seen once in a fresh-clone
    test run: the driver never ended after its Ctrl-C). Off the main thread Ctrl-C is left as it is."""
    from ray.tune.stopper import Stopper

    class InterruptStopper(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return _interrupted()  # by reference: Tune pickles its stoppers, an Event does not pickle

    _INTERRUPTED.clear()
    try:
        old = signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread
        old = None
    try:
        yield InterruptStopper()
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if _INTERRUPTED.is_set():
        _INTERRUPTED.clear()
        raise KeyboardInterrupt


def run_tune(
    experiments: Sequence[ModelExperiment],
    payload: dict[str, Any],
    *,
    coordinator: Any,
    metric: str,
    mode: str,
    budgets: Mapping[str, int],
    prior: Mapping[str, list[tuple[dict[str, Any], float]]],
    seed: int = 0,
    pending_timeout_s: float = 900.0,
    max_concurrent: int | None = None,
    storage_path: str | None = None,
    storage_filesystem: Any = None,
    name: str = "sweep",
    time_budget_s: float | None = None,
    deadline: float | None = None,
    after_sweep: Callable[[], float] | None = None,
) -> Any:
    """Run every remaining trial in one Tuner; the coordinator records them. Returns the payload ref.

    ``storage_path`` (+ ``storage_filesystem`` for a URI root, see ``storage.tune_storage``) keeps
    Tune's experiment state at ``<storage_path>/<name>``; without it a temporary folder is used.

    ``time_budget_s``: the wall-clock budget (``_make_budget_watch``: ``deadline`` is when the
    caller's budget ends, ``after_sweep()`` what it needs after the trials). When it ends (a
    stopper's ``stop_all``), Ray 2.60's controller asks the searcher no more and stops
    every running trial (``_stop_experiment_if_needed`` → ``_schedule_trial_stop``) without a
    completion event, so those trials have no record yet: the caller records them ``interrupted``
    (``Coordinator.record_interrupted``). Trials not yet started were never launched.
    """
    import ray
    from ray import tune
    from ray.tune.stopper import CombinedStopper

    n_nodes = len(alive_nodes())
    chunks = {e.name: chunk_workers(e, n_nodes) for e in experiments}
    for cand, workers in chunks.items():  # a local forecaster's trial fits its series in chunks
        if cand in payload["candidates"]:
            payload["candidates"][cand]["chunks"] = workers
    payload_ref = ray.put(payload)
    total = sum(budgets.values())
    if total == 0:
        return payload_ref
    staged = [n for n, c in payload["candidates"].items() if c["stages"] > 1]
    # a trial that waits longer than this for a node able to host it ends the sweep (SweepError)
    pending, on_step, stopper = _make_pending_watch(pending_timeout_s)
    # A chunked trial: an empty head bundle (its actor holds nothing: it waits on its chunks) and
    # one bundle of 1 CPU per chunk worker, PACKed: on as few nodes as have room, spilling onto
    # more only when one node lacks the CPUs (SPREAD would scatter even a trial that fits on one
    # node, paying transfers and leaving no node whole for the next trial).
    resources = {e.name: tune.PlacementGroupFactory(([{}] if chunks[e.name] else []) + bundles_of(e, n_nodes),
                                                    strategy="PACK")
                 for e in experiments}
    shapes = {(float(e.resources["cpu"]), float(e.resources["gpu"])) for e in experiments}
    if len(shapes) == 1 and not any(chunks.values()):
        # One shape for every trial: a constant request lets Tune reuse actors and their placement
        # groups across trials; a per-config callable gives each trial a placement group of its own.
        (cpu, gpu), = shapes
        per_trial: Any = {"cpu": cpu, "gpu": gpu}
    else:
        per_trial = lambda config: resources[config["candidate"]]  # noqa: E731
    trainable = tune.with_resources(tune.with_parameters(_trainable, payload_box=[payload_ref]),
                                    resources=per_trial)
    if max_concurrent is None:
        # Without a cap Tune asks the searcher for every trial up front and starts an actor (and a
        # placement group) for each pending one; capping at what the cluster can run at once keeps
        # the pending queue short and lets finished trials hand their actor to the next one.
        max_concurrent = slots(experiments)
    callbacks, stop = [_make_callback(coordinator), on_step], stopper
    if time_budget_s is not None:
        wanted = {e.name for e in experiments if e.kind != "baseline" and budgets.get(e.name, 0) > 0} or set(budgets)
        on_budget, budget_stopper, budget_key = _make_budget_watch(time_budget_s, first_wave=min(max_concurrent, total),
                                                       wanted=wanted, deadline=deadline, after_sweep=after_sweep)
        callbacks.append(on_budget)
        stop = CombinedStopper(stopper, budget_stopper)
    own_tmp = storage_path is None
    storage = storage_path or tempfile.mkdtemp(prefix="specweave-tune-")
    with _interrupt_watch() as on_ctrl_c:  # a first Ctrl-C stops the sweep at Tune's next step
        try:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    metric=metric, mode=mode, num_samples=total, reuse_actors=True,
                    search_alg=_make_searcher(experiments, metric=metric, mode=mode, seed=seed, budgets=budgets, prior=prior),
                    scheduler=_make_scheduler(staged, metric=metric, mode=mode,
                                              stages=max((c["stages"] for c in payload["candidates"].values()), default=1)),
                    max_concurrent_trials=max_concurrent,
                    # Tune's default folder name spells out every param (~150 characters); the record
                    # holds them, the folder only has to be findable from it
                    trial_dirname_creator=_trial_dirname),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage, storage_filesystem=storage_filesystem, verbose=0,
                    callbacks=callbacks, stop=CombinedStopper(stop, on_ctrl_c),
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
            )
            # Without Tune's file loggers (off for speed) its ResultGrid warns once per trial that
            # result.json is missing; our records hold every result, so those warnings are noise.
            quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                tuner.fit()
            finally:
                quiet.setLevel(level)
            pending.raise_if_expired()
        finally:
            if time_budget_s is not None:
                _keep_estimate(budget_key, None)
            if own_tmp:
                shutil.rmtree(storage, ignore_errors=True)
    return payload_ref


def _trial_dirname(trial: Any) -> str:
    return f"{trial.config.get('candidate', 'trial')}-{trial.trial_id}"


def node_id() -> str | None:
    """This process's Ray node (the driver's, for what it fits itself)."""
    import ray

    with contextlib.suppress(Exception):
        return ray.get_runtime_context().get_node_id()
    return None


def slots(experiments: Sequence[ModelExperiment]) -> int:
    import ray

    total = ray.cluster_resources()
    slots = 0
    for key, have in (("cpu", total.get("CPU", 0)), ("gpu", total.get("GPU", 0))):
        wants = [float(e.resources[key]) for e in experiments if float(e.resources[key]) > 0]
        if wants:
            slots = max(slots, int(have // min(wants)))
    return max(1, slots)


def refit_best(payload_ref: Any, chosen: Mapping[str, tuple[ModelExperiment, dict[str, Any]]]) -> dict[str, Any]:
    """Refit each candidate's best params on all training data as Ray tasks with the candidate's
    resources; the fitted models come back to the driver through the object store."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if not chosen:
        return {}
    task = ray.remote(_refit_task)
    refs, groups = {}, []
    n_nodes = len(alive_nodes())
    for name, (exp, params) in chosen.items():
        if chunk_workers(exp, n_nodes):
            # like its trials: the refit's chunks in one-CPU bundles, the refit task itself in none
            pg = placement_group(bundles_of(exp, n_nodes), strategy="PACK")
            groups.append(pg)
            opts = {"num_cpus": 0, "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=0)}
        else:
            opts = {"num_cpus": float(exp.resources["cpu"]), "num_gpus": float(exp.resources["gpu"])}
        refs[name] = task.options(max_retries=0, **opts).remote(payload_ref, name, params)
    out = {}
    try:
        for name, ref in refs.items():
            try:
                out[name] = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - a failed refit is reported, the sweep stands
                logger.warning("refit of %s failed: %s", name, err)
                out[name] = err
    finally:
        for pg in groups:
            remove_placement_group(pg)
    return out


def shutdown() -> None:
    import ray

    with contextlib.suppress(Exception):  # a failed background start leaves nothing to shut down
        wait_for_ray()
    ray.shutdown()
    _release()


ProgressFn = Callable[[Any], None]
