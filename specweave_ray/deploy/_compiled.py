"""Tree models compiled to native code (Treelite's model, TL2cgen's C, the system C compiler).

:meth:`Predictor.compile` uses it: the compiled library scores the batch sizes where it was
measured faster than the family's own call, and the model's call keeps the rest. Probe of
2026-12-05 on the 2-core machine (100 trees of depth 6, 20 features, best of 200 calls):

    rows    XGBoost inplace_predict  compiled    LightGBM predict  compiled
    1       167 us (one thread)      19 us       21 us             20 us
    64      227 us (one thread)      93 us       76 us             162 us
    256     295 us                   180 us      247 us            292 us
    1,024   663 us                   875 us      1.60 ms           1.09 ms
    64k     32 ms                    57 ms       106 ms            68 ms

So XGBoost's library scores up to :data:`XGB_MAX_ROWS` rows and LightGBM's from
:data:`LGB_MIN_ROWS` rows. A library is built once per model: it is cached under
:func:`~specweave_ray._fs.cache_dir` by the sha256 of Treelite's serialised model and the two
libraries' versions, written to a temporary name and renamed, so two processes compiling the
same model both end with one whole file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from specweave_ray._fs import cache_dir
from specweave_ray.exceptions import CandidateError

__all__ = ["XGB_MAX_ROWS", "LGB_MIN_ROWS", "compile_trees"]

logger = logging.getLogger(__name__)

XGB_MAX_ROWS = 256  # XGBoost: the compiled library up to this many rows (measured above)
LGB_MIN_ROWS = 1024  # LightGBM: the compiled library from this many rows (measured above)
ONE_THREAD_ROWS = 64  # up to this many rows on one thread, here and in the Predictor's XGBoost calls


def compile_trees(booster: Any, family: str, *, rounds: tuple[int, int] = (0, 0),
                  folder: str | os.PathLike[str] | None = None) -> tuple[Path, Callable[[np.ndarray], np.ndarray]]:
    """(library path, encoded matrix → the booster's own output) for an XGBoost or LightGBM
    booster: P(class 1) or the value as a vector, one column per class for multi-class models,
    in the booster's dtype (float32 for XGBoost, float64 for LightGBM).

    Args:
        booster: ``xgboost.Booster`` or ``lightgbm.Booster``.
        family: ``"xgboost"`` or ``"lightgbm"``.
        rounds: XGBoost's ``iteration_range`` (``(0, 0)``: every tree).
        folder: Where libraries are cached; default ``cache_dir() / "compiled"``.

    Raises:
        CandidateError: Not a tree family, or Treelite, TL2cgen or the C compiler failed (the
            message says which and why).
    """
    import tl2cgen
    import treelite

    try:
        if family == "xgboost":
            if rounds != (0, 0):
                booster = booster[rounds[0]:rounds[1]]  # the trees inplace_predict would use
            model = treelite.frontend.from_xgboost(booster)
        elif family == "lightgbm":
            model = treelite.frontend.from_lightgbm(booster)
        else:
            raise CandidateError(f"only XGBoost and LightGBM models can be compiled, not {family}")
    except CandidateError:
        raise
    except Exception as err:  # noqa: BLE001 - Treelite's own error, named
        raise CandidateError(f"Treelite cannot read the {family} model: {err}") from err
    key = hashlib.sha256(model.serialize_bytes())
    key.update(f"{treelite.__version__} {tl2cgen.__version__} {platform.machine()}".encode())
    folder = Path(folder) if folder is not None else cache_dir() / "compiled"
    lib = folder / f"{family}-{key.hexdigest()[:32]}.so"
    if not lib.exists():
        _build(model, lib, family)
    one = tl2cgen.Predictor(str(lib), nthread=1)  # small batches: no thread team to wake
    many = tl2cgen.Predictor(str(lib))  # every core, as the boosters' own default

    def predict(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        n = X.shape[0]
        out = (one if n <= ONE_THREAD_ROWS else many).predict(tl2cgen.DMatrix(X))
        out = out.reshape(n, -1)  # TL2cgen: (rows, targets, classes)
        return out[:, 0] if out.shape[1] == 1 else out

    return lib, predict


def _build(model: Any, lib: Path, family: str) -> None:
    """Compile ``model`` to ``lib`` through a temporary file in its folder and a rename."""
    import tl2cgen

    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=lib.parent, prefix=f".{lib.stem}.", suffix=".so")
    os.close(fd)
    cores = os.cpu_count() or 1
    try:
        with _native_output() as said:
            tl2cgen.export_lib(model, toolchain="gcc", libpath=tmp, params={"parallel_comp": cores}, nthread=cores)
        if said:
            logger.debug("TL2cgen said: %s", said)
        os.replace(tmp, lib)
    except Exception as err:  # noqa: BLE001 - the compiler's error, named
        raise CandidateError(f"compiling the {family} model failed (TL2cgen with gcc): {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _native_output() -> Iterator[list[str]]:
    """Hold what TL2cgen's C++ writes to file descriptor 2 (and its log callback to stdout) while
    it builds: its bundled Treelite 4.1 warns, three lines a model, that it reads a Treelite 4.8
    model (Treelite 4.1 cannot read XGBoost 3's JSON, so 4.8 builds the model). Expected, and
    the caller checks the predictions; the text goes to the debug log, not the user's terminal."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            said.append((held.read().decode(errors="replace") + out.getvalue()).strip())
    said[:] = [t for t in said if t]
