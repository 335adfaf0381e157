"""The identity of a trial for the result cache: same candidate, data, estimator, params, CV, code."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["cache_key", "estimator_path"]


def estimator_path(estimator: Any) -> str:
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


def cache_key(*, candidate: str, fingerprint: str, estimator: Any, params: Mapping[str, Any], cv: str,
              version: str, metric: str) -> str:
    """The identity of a trial for the result cache: same candidate, data, estimator, params, CV, code."""
    payload = json.dumps({"candidate": candidate, "data": fingerprint, "estimator": estimator_path(estimator),
                          "params": params,
                          "cv": cv, "version": version, "metric": metric}, sort_keys=True, default=repr)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]
