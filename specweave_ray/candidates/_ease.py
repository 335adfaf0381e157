"""EASE: the closed-form linear item-item recommender (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019).

``B = I − P · diag(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``, so ``B``'s diagonal is zero and a
user's scores are ``x_u B``. No library ships it; it is one matrix inverse, done here with NumPy's
LAPACK or with torch on CUDA when the trial holds a GPU.
"""

from __future__ import annotations

import logging
from numbers import Integral

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from specweave_ray.candidates._common import check_positive, num_threads
from specweave_ray.candidates.device import torch_cuda_usable
from specweave_ray.candidates.recommenders import Recommender
from specweave_ray.exceptions import CandidateError

__all__ = ["EASERecommender"]

logger = logging.getLogger(__name__)

_BLOCK = 1024


class EASERecommender(Recommender):
    """Closed-form item-item weights: ``B = I − P·diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``.

    Its ``n_items × n_items`` float32 weights take ``4·n_items²`` bytes (400 MB for 10k items),
    and the inverse is cubic in the catalogue: the family for catalogues up to some tens of
    thousands of items.

    Args:
        l2: λ, the L2 penalty (the paper's best values on MovieLens/Netflix are 200–1000).
        binary: Train on 0/1 interactions (the paper's setting) instead of the weights.
        max_items: Refuse larger catalogues (the weights would not fit in memory).
        n_jobs: BLAS threads for the inverse (``None``: the library's default).
        device: ``"cpu"`` or ``"cuda"`` (torch; set by the device switch when the trial holds
            a GPU).

    Reasons: the user's items ``j`` with the largest ``X[u, j] · B[j, i]`` terms of item ``i``'s
    score.
    """

    supports_gpu = True

    def __init__(self, *, l2: float = 200.0, binary: bool = True, max_items: int = 40_000,
                 n_jobs: int | None = None, device: str = "cpu") -> None:
        self.l2 = l2
        self.binary = binary
        self.max_items = max_items
        self.n_jobs = n_jobs
        self.device = device

    @staticmethod
    def cuda_usable() -> bool:
        """Whether torch sees a usable CUDA device."""
        return torch_cuda_usable()

    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        check_positive(self, l2=self.l2)
        if self.device not in ("cpu", "cuda"):
            raise CandidateError(f"EASERecommender: device must be 'cpu' or 'cuda', got {self.device!r}")
        n_items = matrix.shape[1]
        if isinstance(self.max_items, bool) or not isinstance(self.max_items, Integral):
            raise CandidateError(f"EASERecommender: max_items must be an integer, got {self.max_items!r}")
        if n_items > self.max_items:
            raise CandidateError(
                f"EASERecommender: {n_items} items exceed max_items={self.max_items} (its weights take "
                f"{4 * n_items**2 / 2**30:.1f} GiB); use item-kNN or ALS, or raise max_items"
            )
        x = (matrix > 0).astype(np.float32) if self.binary else matrix.astype(np.float32)
        self.X_ = sp.csr_matrix(x)
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
        gram[np.diag_indices(n_items)] += np.float32(self.l2)
        use_cuda = self.device == "cuda" and torch_cuda_usable()
        if self.device == "cuda" and not use_cuda:
            logger.warning("EASERecommender: device='cuda' but no CUDA device is usable; fitting on CPU")
        self.device_ = "cuda" if use_cuda else "cpu"
        precision = _inverse_cuda(gram) if use_cuda else _inverse_cpu(gram, self.n_jobs)
        diag = np.diag(precision).copy()
        precision /= -diag[None, :]  # B[:, j] = -P[:, j] / P[j, j]
        precision[np.diag_indices(n_items)] = 0.0
        self.B_ = precision

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.X_[rows] @ self.B_)

    def _reasons(self, row: int, item_cols: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        user = self.X_[row]
        cols = user.indices
        terms = self.B_[np.ix_(cols, np.maximum(item_cols, 0))] * user.data[:, None]
        out = []
        for i in range(len(item_cols)):
            order = np.lexsort((cols, -terms[:, i]))[:n]
            out.append([(int(cols[j]), float(terms[j, i])) for j in order if terms[j, i] > 0])
        return out


def _inverse_cpu(gram: np.ndarray, n_jobs: int | None) -> np.ndarray:
    """Inverse of the symmetric positive definite ``gram``, in place.

    Cholesky (``potrf``) then its inverse (``potri``) is half the flops of the LU inverse that
    ``np.linalg.inv`` does, and works in place on the float32 matrix (no second
    ``n_items²`` copy); LAPACK fills one triangle, mirrored here block by block.
    """
    limit = None if n_jobs is None else num_threads(n_jobs) or None
    with threadpool_limits(limit, "blas"):
        # gram is symmetric: its C-order buffer is the Fortran-order matrix, so LAPACK works in place
        fortran = gram.T
        chol, info = scipy.linalg.lapack.spotrf(fortran, lower=0, overwrite_a=1, clean=0)
        if info != 0:
            raise CandidateError(f"EASERecommender: XᵀX + λI is not positive definite (LAPACK info {info}); "
                                 f"raise l2")
        inv, info = scipy.linalg.lapack.spotri(chol, lower=0, overwrite_c=1)
        if info != 0:
            raise CandidateError(f"EASERecommender: the inverse failed (LAPACK info {info}); raise l2")
    out = inv.T  # C-order view; its lower triangle (Fortran's upper) holds the inverse
    n = out.shape[0]
    for lo in range(0, n, _BLOCK):
        hi = min(n, lo + _BLOCK)
        out[lo:hi, hi:] = out[hi:, lo:hi].T
        diag = out[lo:hi, lo:hi]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
    return out


def _inverse_cuda(gram: np.ndarray) -> np.ndarray:
    import torch  # only on a GPU trial

    g = torch.from_numpy(gram).to("cuda")
    inv = torch.cholesky_inverse(torch.linalg.cholesky(g))
    return inv.cpu().numpy()
