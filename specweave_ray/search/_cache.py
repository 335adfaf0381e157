"""The identity of a trial for the result cache: same candidate, data, estimator, params, CV, code."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from specweave_ray.workspace._lineage import source_hash

__all__ = ["cache_key", "estimator_path"]


def estimator_path(estimator: Any) -> str:
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


def cache_key(*, candidate: str, fingerprint: str, estimator: Any, params: Mapping[str, Any], cv: str,
              version: str, metric: str, stages: int = 1, code_dirty: str | None = None,
              preprocessor: Any = None) -> str:
    """The identity of a trial for the result cache: same candidate, data, estimator, params, CV, code.

    A user's estimator or preprocessor class (not an installed library's) counts by its source too:
    editing it reruns its trials instead of reusing results of the old code. So do the staged
    fitting (``stages`` > 1: ASHA's rungs) and, in a dirty work tree, the uncommitted edits
    (``code_dirty``: :func:`~specweave_ray.workspace._lineage.code_dirty_state`). Each is added
    only when it applies, so a clean tree's unstaged library trials keep the keys they had."""
    identity = {"candidate": candidate, "data": fingerprint, "estimator": estimator_path(estimator),
                "params": params, "cv": cv, "version": version, "metric": metric}
    source = source_hash(estimator)
    if source is not None:  # absent for library classes: their keys stay what they were
        identity["source"] = source
    pre = source_hash(preprocessor) if preprocessor is not None else None
    if pre is not None:
        identity["preprocessor_source"] = pre
    if stages > 1:
        identity["stages"] = int(stages)
    if code_dirty is not None:
        identity["code_dirty"] = code_dirty
    payload = json.dumps(identity, sort_keys=True, default=repr)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]
