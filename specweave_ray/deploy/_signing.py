"""Package authentication: the metadata (which holds every file's sha256) is signed with an
HMAC-SHA256 key, and checked before anything else of the package is read.

The hashes alone protect nothing: whoever can replace ``model-vK.pkl`` can write its new sha256
into the metadata too, and the pickle then runs on load. A keyed MAC over the metadata closes
that, as a model store that signs its manifests does. The key is ``$SPECWEAVE_SIGNING_KEY``
(any string of 32+ characters; set it on every machine that builds or loads packages, such as a
cluster's serving nodes), else the key file ``$SPECWEAVE_SIGNING_KEY_FILE`` or
``~/.config/specweave-ray/signing.key``, created (mode 0600, 256 random bits) by the first
package built without either. A package that is unsigned, or signed with another key, or whose
metadata changed after signing is refused unless the caller trusts it explicitly
(``--trust-unsigned``, ``SPECWEAVE_TRUST_UNSIGNED=1``), which logs a warning.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from specweave_ray._fs import to_jsonable
from specweave_ray.exceptions import ConfigError, RecordError

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "TRUST_ENV", "key_path", "sign", "trusted_by_env", "verify"]

KEY_ENV = "SPECWEAVE_SIGNING_KEY"
KEY_FILE_ENV = "SPECWEAVE_SIGNING_KEY_FILE"
TRUST_ENV = "SPECWEAVE_TRUST_UNSIGNED"
_ALG = "hmac-sha256"
_MIN_KEY = 32
logger = logging.getLogger(__name__)


def key_path() -> Path:
    return Path(os.environ.get(KEY_FILE_ENV) or Path.home() / ".config" / "specweave-ray" / "signing.key").expanduser()


def _key(*, create: bool) -> bytes | None:
    if raw := os.environ.get(KEY_ENV):
        if len(raw) < _MIN_KEY:
            raise ConfigError(f"${KEY_ENV} is {len(raw)} characters; a signing key needs at least {_MIN_KEY}")
        return raw.encode("utf-8")
    path = key_path()
    if path.is_file():
        return path.read_bytes().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # O_EXCL: two builds at once agree on the first key written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    logger.warning("created the package signing key %s; set $%s (or copy the file) on every machine that "
                   "loads these packages", path, KEY_ENV)
    return path.read_bytes().strip()


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"specweave-ray key id:" + key).hexdigest()[:16]


def _payload(meta: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in meta.items() if k != "signature"}
    return json.dumps(to_jsonable(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with its ``signature`` (made anew: sign after every change)."""
    key = _key(create=True)
    mac = hmac.new(key, _payload(meta), hashlib.sha256).hexdigest()
    return {**{k: v for k, v in meta.items() if k != "signature"},
            "signature": {"alg": _ALG, "key_id": _key_id(key), "mac": mac}}


def trusted_by_env() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def verify(meta: Mapping[str, Any], where: str | os.PathLike[str], *, trust_unsigned: bool = False) -> None:
    """Check the metadata's signature; call before reading any file it names.

    Raises:
        RecordError: Unsigned, signed with another key, or changed since it was signed — unless
            ``trust_unsigned`` (or ``$SPECWEAVE_TRUST_UNSIGNED``), which logs the reason instead.
    """
    problem = _problem(meta, where)
    if problem is None:
        return
    if trust_unsigned or trusted_by_env():
        logger.warning("%s; loading it anyway (trusted explicitly)", problem)
        return
    raise RecordError(f"{problem}; refusing to load it (pass --trust-unsigned, or set {TRUST_ENV}=1, "
                      f"only for a package you trust)")


def _problem(meta: Mapping[str, Any], where: str | os.PathLike[str]) -> str | None:
    sig = meta.get("signature")
    if not isinstance(sig, Mapping) or sig.get("alg") != _ALG or not isinstance(sig.get("mac"), str):
        return f"{where} is not signed (a package built before signing, or its signature was removed)"
    key = _key(create=False)
    if key is None:
        return (f"{where} is signed, but this machine has no signing key (${KEY_ENV} or {key_path()}) "
                f"to check it with")
    if sig.get("key_id") != _key_id(key):
        return (f"{where} is signed with another key (key id {sig.get('key_id')}, this machine's is "
                f"{_key_id(key)}); set ${KEY_ENV} to the key that built it")
    if not hmac.compare_digest(sig["mac"], hmac.new(key, _payload(meta), hashlib.sha256).hexdigest()):
        return f"{where}: signature mismatch, the metadata changed after the package was built"
    return None
