"""What the Ray cluster can host (``sweep.py``'s helper; Ray stays behind the sweep module).

Before the sweep, :func:`check_resources` fails fast when a candidate's trials fit on no node,
unless the cluster autoscales (said by ``sweep.autoscale``, ``SPECWEAVE_ALLOW_AUTOSCALE=1``, or
seen in the autoscaler's status). While Tune runs, a :class:`PendingWatch` notices a trial that
has waited longer than ``pending_timeout_s`` for a node able to host it; Tune then stops the sweep
(its Stopper) and :meth:`PendingWatch.raise_if_expired` names the candidates in a
:class:`SweepError`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from specweave_ray.exceptions import SweepError
from specweave_ray.spec.experiment import ModelExperiment

logger = logging.getLogger(__name__)

AUTOSCALE_ENV = "SPECWEAVE_ALLOW_AUTOSCALE"
# Written by Ray's autoscaler monitor (v1) to the GCS key-value store every few seconds
# (ray._private.ray_constants.DEBUG_AUTOSCALING_STATUS); `ray status` prints it.
_AUTOSCALING_STATUS_KEY = "__autoscaling_status"
_FIX = "lower its resources, add nodes, or on an autoscaling cluster set sweep.autoscale: true (or {env}=1)"


def chunk_workers(exp: ModelExperiment, n_nodes: int) -> int:
    """How many one-CPU bundles a trial of a local forecaster (``fits_in_chunks``) holds to fit
    its series in chunks on a cluster of ``n_nodes`` alive nodes: its ``cpu`` (``resources: {cpu:
    4}`` → 4). 0 (one bundle, statsforecast's own ``n_jobs`` pool) for every other candidate, a
    GPU one, below 2 CPUs, and on one node: there the pool's forked processes do what the chunk
    tasks would, without their cold start (a fresh Ray worker and its imports, seconds)."""
    cpu, gpu = float(exp.resources["cpu"]), float(exp.resources["gpu"])
    if (n_nodes < 2 or not getattr(exp.estimator, "fits_in_chunks", False) or gpu > 0 or cpu < 2
            or cpu != int(cpu)):
        return 0
    return int(cpu)


def bundle_of(exp: ModelExperiment, n_nodes: int = 1) -> dict[str, float]:
    """The largest placement-group bundle each of the candidate's trials asks for (one node must host it)."""
    if chunk_workers(exp, n_nodes):
        return {"CPU": 1.0, "GPU": 0.0}
    return {"CPU": float(exp.resources["cpu"]), "GPU": float(exp.resources["gpu"])}


def bundles_of(exp: ModelExperiment, n_nodes: int) -> list[dict[str, float]]:
    """Every resource bundle of a trial: one, or a chunked trial's one-CPU bundles."""
    workers = chunk_workers(exp, n_nodes)
    return [{"CPU": 1.0} for _ in range(workers)] if workers else [bundle_of(exp)]


def shape(resources: Mapping[str, float], keys: Iterable[str] = ("CPU", "GPU")) -> str:
    """``1 CPU + 1 GPU``: the CPU/GPU part of a bundle or a node."""
    parts = [f"{float(resources.get(k, 0)):g} {k}" for k in keys if float(resources.get(k, 0)) > 0]
    return " + ".join(parts) or "no CPU or GPU"


def alive_nodes() -> list[dict[str, float]]:
    """Each alive node's total resources."""
    import ray

    return [{k: float(v) for k, v in n.get("Resources", {}).items()} for n in ray.nodes() if n.get("Alive")]


def fits(bundle: Mapping[str, float], nodes: Sequence[Mapping[str, float]]) -> bool:
    """Whether one node has every resource of ``bundle`` (a placement-group bundle is never split)."""
    return any(all(node.get(k, 0.0) >= v for k, v in bundle.items() if v > 0) for node in nodes)


def cluster_summary(nodes: Sequence[Mapping[str, float]]) -> str:
    total = {k: sum(n.get(k, 0.0) for n in nodes) for k in ("CPU", "GPU")}
    kinds = sorted({shape(n) for n in nodes})
    return (f"{total['CPU']:g} CPU, {total['GPU']:g} GPU on {len(nodes)} node{'s' * (len(nodes) != 1)}"
            f" ({'; '.join(kinds)})")


def autoscaler_node_types() -> list[str]:
    """The types of the current nodes when an autoscaler with a cluster config manages them, read
    from the status that autoscaler keeps in the GCS (what ``ray status`` prints).

    Ray's autoscaler (v1: the cluster launcher's, KubeRay's) also runs on a fixed cluster,
    read-only, where it names each node's type ``node_<node id>``; only a config names types
    (``ray.head.default``, ``gpu_worker``). The status lists the nodes that exist, not the types
    the config could add, nor their ``max_workers``. Autoscaler v2 writes no such status: it is
    not seen here, so say ``sweep.autoscale: true`` there. Empty when unknown (no status yet).
    """
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(_AUTOSCALING_STATUS_KEY)
        report = (json.loads(raw) if raw else {}).get("autoscaler_report") or {}
        mapping = report.get("node_type_mapping") or {}
    except Exception as err:  # noqa: BLE001 - a private status format: unknown is "not seen"
        logger.debug("autoscaler status unreadable: %s", err)
        return []
    return sorted({str(t) for node, t in mapping.items() if t and t != f"node_{node}"})


def autoscaling(setting: bool | None) -> str | None:
    """Why the cluster counts as autoscaling (for the log), or None when it does not.

    ``setting`` (``sweep.autoscale``) wins when given; then ``SPECWEAVE_ALLOW_AUTOSCALE``
    (``1``/``true`` on, ``0``/``false`` off); then the autoscaler's own status.
    """
    if setting is not None:
        return "sweep.autoscale is true" if setting else None
    env = os.environ.get(AUTOSCALE_ENV, "").strip()
    if env.lower() in ("1", "true", "yes", "on"):
        return f"{AUTOSCALE_ENV}={env}"
    if env.lower() in ("0", "false", "no", "off"):
        return None
    types = autoscaler_node_types()
    return f"a Ray autoscaler with a cluster config manages its nodes ({', '.join(types)})" if types else None


def check_resources(experiments: Sequence[ModelExperiment], *, autoscale: bool | None,
                    pending_timeout_s: float, nodes: Sequence[Mapping[str, float]] | None = None) -> dict[str, float]:
    """Fail fast when a candidate's trials fit on no node (``nodes``, default Ray's alive ones),
    unless the cluster autoscales; then log that they wait (up to ``pending_timeout_s``). Returns
    the cluster's total CPUs and GPUs."""
    nodes = alive_nodes() if nodes is None else list(nodes)
    have = {"cpu": sum(n.get("CPU", 0.0) for n in nodes), "gpu": sum(n.get("GPU", 0.0) for n in nodes)}
    short = []
    for exp in experiments:
        bundle = bundle_of(exp, len(nodes))
        asked = {"CPU": float(exp.resources["cpu"]), "GPU": float(exp.resources["gpu"])}  # all bundles together
        over = [(key, asked[key.upper()]) for key in ("cpu", "gpu") if asked[key.upper()] > have[key]]
        if over:
            key, want = over[0]
            short.append(f"candidate '{exp.name}' asks for {want:g} {key.upper()} per trial but the Ray cluster "
                         f"has {have[key]:g}")
        elif not fits(bundle, nodes):
            short.append(f"candidate '{exp.name}' asks for {shape(bundle)} per trial on one node but no node has "
                         f"that (the cluster: {cluster_summary(nodes)})")
    if not short:
        return have
    why = autoscaling(autoscale)
    if why is None:
        raise SweepError("; ".join(short) + "; " + _FIX.format(env=AUTOSCALE_ENV))
    logger.warning("%s; the cluster autoscales (%s), so these trials wait for a node, for at most %g s "
                   "each (sweep.pending_timeout_s)", "; ".join(short), why, pending_timeout_s)
    return have


class PendingWatch:
    """Times each trial that waits (PENDING) while no alive node could host it.

    A trial waiting behind other trials of the sweep is not timed: a node that fits exists. The
    clock of a trial restarts whenever such a node appears. Fed by a Tune callback's
    ``on_step_begin`` (every step of Tune's loop, about 10 per second when idle), read by a Tune
    Stopper's ``stop_all`` (called right after, in the same step); both are driver-side objects.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = float(timeout_s)
        self._poll_s = min(1.0, self.timeout_s / 4)  # ray.nodes() is a GCS call: not every step
        self._checked = float("-inf")
        self._since: dict[str, float] = {}
        self._nodes: list[dict[str, float]] = []
        self.expired: list[tuple[str, str, dict[str, float], float]] = []  # trial, candidate, bundle, waited

    def observe(self, trials: Sequence[Any]) -> None:
        now = time.monotonic()
        if self.expired or now - self._checked < self._poll_s:
            return
        self._checked = now
        pending = [t for t in trials if t.status == "PENDING"]
        ids = {t.trial_id for t in pending}
        for tid in [tid for tid in self._since if tid not in ids]:
            del self._since[tid]
        if not pending:
            return
        self._nodes = alive_nodes()
        late = []
        for trial in pending:
            bundles = trial.placement_group_factory.bundles
            if all(fits(b, self._nodes) for b in bundles):
                self._since.pop(trial.trial_id, None)
                continue
            waited = now - self._since.setdefault(trial.trial_id, now)
            if waited >= self.timeout_s:
                late.append((trial.trial_id, (trial.config or {}).get("candidate", "?"), bundles[0], waited))
        if late:
            logger.warning("trial(s) %s waited over %g s for a node; stopping the sweep",
                           ", ".join(t for t, *_ in late), self.timeout_s)
            self.expired = late

    def raise_if_expired(self) -> None:
        if not self.expired:
            return
        by_candidate: dict[str, list[tuple[str, dict[str, float], float]]] = {}
        for tid, name, bundle, waited in self.expired:
            by_candidate.setdefault(name, []).append((tid, bundle, waited))
        asks = "; ".join(
            f"candidate '{name}' asks for {shape(rows[0][1])} per trial ({len(rows)} trial"
            f"{'s' * (len(rows) != 1)} waited {max(w for *_, w in rows):.0f} s)"
            for name, rows in sorted(by_candidate.items()))
        raise SweepError(
            f"no Ray node able to host these trials appeared within the pending timeout of {self.timeout_s:g} s "
            f"(sweep.pending_timeout_s): {asks}; the cluster has {cluster_summary(self._nodes)}. The sweep stopped; "
            "its finished trials are recorded and a rerun reuses them. Add a node that fits, give the autoscaler "
            "longer (sweep.pending_timeout_s), or lower the candidate's resources")
