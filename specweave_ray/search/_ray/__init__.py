"""All of Ray Tune: the only place that imports ``ray.tune`` (Ray's API moves; the blast radius
stays here). Ray itself loads on first use, inside these functions."""

from specweave_ray.search._ray.tune import (
    check_resources,
    ensure_ray,
    node_id,
    planned_node,
    refit_best,
    run_tune,
    shutdown,
    slots,
    to_tune_space,
    wait_for_ray,
)

__all__ = ["check_resources", "ensure_ray", "node_id", "planned_node", "refit_best", "run_tune", "shutdown",
           "slots", "to_tune_space", "wait_for_ray"]
