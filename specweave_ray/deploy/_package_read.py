"""Reading a model package back, verified: every file's sha256 is checked against the metadata
before anything is read, and pickles are unpickled from the very bytes that were hashed, so a
file swapped after the check is never run either. (Building: :mod:`specweave_ray.deploy.package`.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from specweave_ray._fs import read_json
from specweave_ray.candidates.serialization import load_native, sha256_of
from specweave_ray.deploy._signing import verify
from specweave_ray.exceptions import RecordError
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import resolve_increment

__all__ = ["latest_version", "list_packages", "load_features", "load_model", "load_package",
           "read_background", "read_verified", "resolve_version", "verify_files"]

_METADATA_RE = re.compile(r"^model-v(\d+)\.metadata\.json$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# -- reading -----------------------------------------------------------------------------------
def read_verified(folder: Path, name: str, recorded: str) -> bytes:
    """The bytes of ``folder/name`` after checking their sha256; what is returned is what was hashed.

    Raises:
        RecordError: The file is missing, escapes the folder, or its hash differs.
    """
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise RecordError(f"package file name {name!r} is not a plain file name; refusing to load")
    path = Path(folder) / name
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise RecordError(f"package file {name} is missing from {folder}") from err
    found = hashlib.sha256(data).hexdigest()
    if found != str(recorded).lower():
        raise RecordError(f"hash mismatch for {name}: recorded {recorded}, found {found}; refusing to "
                          f"load a file that changed after the package was built")
    return data


def verify_files(meta: Mapping[str, Any], folder: Path) -> None:
    """Check every file the metadata lists, before any of them is read.

    Raises:
        RecordError: Naming the first missing or changed file.
    """
    files = meta.get("files")
    if not isinstance(files, Mapping) or not files:
        raise RecordError(f"package metadata in {folder} lists no files; rebuild the package")
    for name, recorded in files.items():
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise RecordError(f"package file name {name!r} is not a plain file name; refusing to load")
        path = Path(folder) / name
        if not path.is_file():
            raise RecordError(f"package file {name} is missing from {folder}")
        found = sha256_of(path)
        if found != str(recorded).lower():
            raise RecordError(f"hash mismatch for {name}: recorded {recorded}, found {found}; refusing "
                              f"to load a file that changed after the package was built")


def load_model(meta: Mapping[str, Any], folder: Path) -> Any:
    """The packaged model; a pickled one is unpickled from the verified bytes only."""
    info = meta["model"]
    if info.get("format") == "pickle":
        (name, recorded), = info["files"].items()
        return pickle.loads(read_verified(folder, name, recorded))  # noqa: S301 - hash checked
    return load_native(folder, info)  # checks the hashes again; native formats run no code


def load_features(meta: Mapping[str, Any], folder: Path) -> Any:
    """The fitted feature pipeline (or None when the model reads the raw columns)."""
    info = meta.get("features")
    if not info:
        return None
    (name, recorded), = info["files"].items()
    return pickle.loads(read_verified(folder, name, recorded))  # noqa: S301 - hash checked


def read_background(meta: Mapping[str, Any], folder: Path) -> pd.DataFrame | None:
    name = meta.get("explainer_background")
    if not name:
        return None
    return pd.read_parquet(io.BytesIO(read_verified(folder, name, meta["files"][name])))


# -- versions ----------------------------------------------------------------------------------
def list_packages(inc: Increment | str | int | os.PathLike[str], *,
                  root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The metadata of every committed package of the increment, by version."""
    inc = resolve_increment(inc, root)
    folder = inc.models_dir
    if not folder.is_dir():
        return []
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _METADATA_RE.match(p.name)))
    out = []
    for _, path in found:
        try:
            out.append(read_json(path))
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: unreadable package metadata ({err})") from err
    return out


def latest_version(inc: Increment | str | int | os.PathLike[str], *,
                   root: str | os.PathLike[str] | None = None) -> int:
    """The newest package that has not failed its gate (status candidate or passed).

    Raises:
        RecordError: The increment has no such package.
    """
    inc = resolve_increment(inc, root)
    usable = [m["version"] for m in list_packages(inc) if m.get("status") in ("candidate", "passed")]
    if not usable:
        raise RecordError(f"{inc.id} has no model package that has not failed; build one with "
                          f"specweave_ray.deploy.package.build_package")
    return max(usable)


def resolve_version(inc: Increment, version: str | int) -> int:
    """``"latest"`` (the newest passed package, else :func:`latest_version`), ``K``, ``"vK"``."""
    if isinstance(version, str) and version.strip().lower() == "latest":
        passed = [m["version"] for m in list_packages(inc) if m.get("status") == "passed"]
        return max(passed) if passed else latest_version(inc)
    text = str(version).strip().lower().removeprefix("model-").removeprefix("v")
    if isinstance(version, bool) or not text.isdigit():
        raise RecordError(f"model version must be 'latest', K or 'vK', got {version!r}")
    return int(text)


def load_package(inc: Increment | str | int | os.PathLike[str], version: str | int = "latest", *,
                 root: str | os.PathLike[str] | None = None,
                 trust_unsigned: bool = False) -> tuple[dict[str, Any], Path]:
    """A package's metadata and metadata path, after verifying its signature (see
    :mod:`~specweave_ray.deploy._signing`; ``trust_unsigned`` loads an unsigned or mismatched
    one with a warning) and then the sha256 of every file.

    Raises:
        RecordError: Unknown version, or a missing or changed file (named in the message).
    """
    inc = resolve_increment(inc, root)
    k = resolve_version(inc, version)
    path = inc.models_dir / f"model-v{k}.metadata.json"
    meta = read_json(path)
    if meta is None:
        known = ", ".join(f"v{m['version']}" for m in list_packages(inc)) or "none"
        raise RecordError(f"{inc.id} has no model package v{k} (known: {known})")
    verify(meta, path, trust_unsigned=trust_unsigned)
    verify_files(meta, inc.models_dir)
    return meta, path
