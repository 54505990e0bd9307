"""Cell calling: which barcodes hold cells, by contrast with the ambient RNA profile (loompy's
``call_cells``, for the kallisto and STARsolo importers).

The algorithm is EmptyDrops (Lun et al., Genome Biology 2019) as cellranger 3.0 implements it, with
Sten Linnarsson's thresholds (loompy 3.0.8). This is that code, restructured and typed; every step,
and the order of its draws from ``np.random``, is kept, so a seeded run gives loompy's numbers.

Copyright 2018 10X Genomics, Inc. Permission is hereby granted, free of charge, to any person
obtaining a copy of this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to use, copy, modify,
merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to
whom the Software is furnished to do so, subject to the following conditions: The above copyright
notice and this permission notice shall be included in all copies or substantial portions of the
Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sparse
import scipy.stats as sp_stats

from .._errors import LoomValueError

logger = logging.getLogger("loomfile")

Array = np.ndarray[Any, Any]


class SimpleGoodTuringError(LoomValueError):
    """The Simple Good-Turing estimator does not apply to these frequencies."""


# --- Simple Good-Turing (Gale & Sampson 1995, "Good-Turing frequency estimation without tears") ----


def _averaging_transform(r: Array, nr: Array) -> Array:
    d = np.concatenate((np.ones(1, dtype=int), np.diff(r)))
    dr = np.concatenate((0.5 * (d[1:] + d[:-1]), np.array((d[-1],), dtype=float)))
    return nr.astype(float) / dr


def simple_good_turing(xr: Array, xnr: Array) -> tuple[Array, float]:
    """Smoothed frequencies for the non-zero frequencies ``xr`` seen ``xnr`` times each, and the
    total probability of unseen items."""
    xr, xnr = xr.astype(float), xnr.astype(float)
    total = np.sum(xr * xnr)
    slope, _, _, _, _ = sp_stats.linregress(np.log(xr), np.log(_averaging_transform(xr, xnr)))
    if slope > -1:
        msg = f"The log-log slope is > -1 ({slope:.3g}); the SGT estimator is not applicable to these data."
        raise SimpleGoodTuringError(msg)
    linear = xr * np.power(1 + 1 / xr, 1 + slope) / xr
    # Turing's estimate where the next frequency is present; switch to the linear one for good
    # once the two agree (within 1.65 standard deviations).
    adjacent = xr == np.concatenate((xr[1:] - 1, np.zeros(1)))
    turing = np.zeros(len(xr))
    next_nr = np.concatenate((xnr[1:], np.zeros(1)))
    turing[adjacent] = (xr[adjacent] + 1) / xr[adjacent] * next_nr[adjacent] / xnr[adjacent]
    deviation = np.ones(len(xr))
    for i in np.flatnonzero(adjacent):
        deviation[i] = float(i + 2) / xnr[i] * np.sqrt(xnr[i + 1] * (1 + xnr[i + 1] / xnr[i]))
    combined = np.zeros(len(xr))
    use_turing = True
    for r in range(len(xr)):
        if use_turing and np.abs(linear[r] - turing[r]) * (1 + r) / deviation[r] > 1.65:
            combined[r] = turing[r]
        else:
            use_turing = False
            combined[r] = linear[r]
    combined = combined * (1 - xnr[0] / total) / np.sum(combined * xr * xnr / total)
    return xr * combined, xnr[0] / total


def sgt_proportions(frequencies: Array) -> tuple[Array, float]:
    """Proportions of the items with ``frequencies`` (all > 0), smoothed by Simple Good-Turing,
    and the total probability of unseen items."""
    if len(frequencies) == 0:
        msg = "Input frequency vector is empty"
        raise LoomValueError(msg)
    if np.count_nonzero(frequencies) != len(frequencies):
        msg = "Frequencies must be greater than zero"
        raise LoomValueError(msg)
    freqfreqs = np.bincount(frequencies.astype(np.int64))
    use_freqs = np.flatnonzero(freqfreqs)
    if len(use_freqs) < 10:
        msg = f"Too few non-zero frequency items ({len(use_freqs)}). Aborting SGT."
        raise SimpleGoodTuringError(msg)
    rstar, p0 = simple_good_turing(use_freqs, freqfreqs[use_freqs])
    smoothed = dict(zip(use_freqs.tolist(), rstar, strict=True))
    rstar_sum = np.sum(freqfreqs[use_freqs] * rstar)
    rstar_i = np.fromiter((smoothed[f] for f in frequencies.tolist()), dtype=float, count=len(frequencies))
    return (1 - p0) * (rstar_i / rstar_sum), p0


# --- the test against the ambient profile --------------------------------------------------------------


def adjust_pvalue_bh(p: Array) -> Array:
    """Benjamini-Hochberg adjusted p-values, in the order of ``p``."""
    descending = np.argsort(p)[::-1]
    scale = float(len(p)) / np.arange(len(p), 0, -1)
    q = np.minimum(1, np.minimum.accumulate(scale * p[descending]))
    return q[np.argsort(descending)]


def eval_multinomial_loglikelihoods(matrix: Any, profile_p: Array, max_mem_gb: float = 0.1) -> Array:
    """Multinomial log-likelihood of each barcode (column of ``matrix``) under ``profile_p``, in
    column blocks of about ``max_mem_gb``."""
    gb_per_bc = float(matrix.shape[0] * matrix.dtype.itemsize) / (1024**3)
    per_block = max(1, round(max_mem_gb / gb_per_bc))
    loglk = np.zeros(matrix.shape[1])
    for start in range(0, matrix.shape[1], per_block):
        block = slice(start, start + per_block)
        counts = matrix[:, block].transpose().toarray()
        loglk[block] = sp_stats.multinomial.logpmf(counts, counts.sum(1), p=profile_p)
    return loglk


def simulate_multinomial_loglikelihoods(
    profile_p: Array,
    umis_per_bc: Array,
    num_sims: int = 1000,
    jump: int = 1000,
    n_sample_feature_block: int = 1000000,
    verbose: bool = False,
) -> tuple[Array, Array]:
    """Log-likelihoods of ``num_sims`` draws from the ambient profile for each distinct UMI count
    (Lun et al.'s approximation: counts grow one sampled UMI at a time)."""
    distinct_n = np.flatnonzero(np.bincount(umis_per_bc.astype(np.int64)))
    loglk = np.zeros((len(distinct_n), num_sims), dtype=float)
    sampled = np.random.choice(len(profile_p), size=n_sample_feature_block, p=profile_p, replace=True)
    k = 0
    log_profile_p = np.log(profile_p)
    for sim in range(num_sims):
        counts = np.ravel(sp_stats.multinomial.rvs(distinct_n[0], profile_p, size=1))
        current = sp_stats.multinomial.logpmf(counts, distinct_n[0], p=profile_p)
        loglk[0, sim] = current
        for i in range(1, len(distinct_n)):
            step = distinct_n[i] - distinct_n[i - 1]
            if step >= jump:
                counts += np.ravel(sp_stats.multinomial.rvs(step, profile_p, size=1))
                current = sp_stats.multinomial.logpmf(counts, distinct_n[i], p=profile_p)
            else:
                for n in range(distinct_n[i - 1] + 1, distinct_n[i] + 1):
                    j = sampled[k]
                    k += 1
                    if k >= n_sample_feature_block:
                        sampled = np.random.choice(
                            len(profile_p), size=n_sample_feature_block, p=profile_p, replace=True
                        )
                        k = 0
                    counts[j] += 1
                    current += log_profile_p[j] + np.log(float(n) / counts[j])
            loglk[i, sim] = current
    return distinct_n, loglk


def compute_ambient_pvalues(umis_per_bc: Array, obs_loglk: Array, sim_n: Array, sim_loglk: Array) -> Array:
    """The share of simulated ambient barcodes (of the same UMI count) less likely than each observed one."""
    if len(umis_per_bc) != len(obs_loglk) or sim_loglk.shape[0] != len(sim_n):
        msg = "compute_ambient_pvalues: one log-likelihood per barcode and one row of simulations per N"
        raise LoomValueError(msg)
    rows = sim_loglk[np.searchsorted(sim_n, umis_per_bc)]
    lower = np.sum(rows < obs_loglk[:, None], axis=1)
    return (1 + lower).astype(float) / (1 + sim_loglk.shape[1])


def estimate_profile_sgt(matrix: Any, barcode_indices: Array, nz_feat: Array) -> Array:
    """The expression profile (over features ``nz_feat``) of the barcodes ``barcode_indices``,
    smoothed by Simple Good-Turing; unseen features share the unseen probability equally."""
    profile = np.ravel(matrix[:, barcode_indices][nz_feat, :].sum(axis=1))
    seen = np.flatnonzero(profile)
    p_smoothed, p0 = sgt_proportions(profile[seen])
    if len(seen) == len(nz_feat):  # (loompy fails an assertion here)
        msg = "every feature was seen in the ambient barcodes: no feature is left for the unseen probability"
        raise SimpleGoodTuringError(msg)
    profile_p = np.repeat(p0 / (len(nz_feat) - len(seen)), len(nz_feat))
    profile_p[seen] = p_smoothed
    return profile_p


def est_background_profile_sgt(matrix: Any, use_bcs: Array) -> tuple[Array, Array]:
    """(features seen anywhere, their smoothed profile over the barcodes ``use_bcs``)."""
    use_feats = np.flatnonzero(np.asarray(matrix.sum(1)))
    return use_feats, estimate_profile_sgt(matrix, use_bcs, use_feats)


def call_cells(matrix: sparse.csr_matrix, expected_n_cells: int = 5000) -> tuple[float, Array]:
    """Which barcodes (columns of the genes x barcodes ``matrix``) hold cells.

    Returns ``(max_ambient_umis, adjusted_pvalues)``, as loompy's ``call_cells`` does (its
    docstring promises booleans): the UMI count below which barcodes count as ambient, and per
    barcode the BH-adjusted p-value of its profile being ambient (1 for barcodes not tested).
    """
    n_barcodes = matrix.shape[1]
    expected_n_cells = min(expected_n_cells, n_barcodes // 5)
    total_umis = np.array(matrix.sum(axis=0))[0]
    max_ambient_umis = np.percentile(total_umis, 100 * (n_barcodes - expected_n_cells * 2) / n_barcodes)
    top = total_umis > np.percentile(total_umis, 100 * (n_barcodes - expected_n_cells) / n_barcodes)
    min_cell_umis = int(max(500, np.median(total_umis[top]) * 0.1))
    ambient_bcs = (total_umis < max_ambient_umis) & (total_umis > 20)
    if ambient_bcs.sum() == 0:
        logger.warning("No ambient RNA beads were found; maybe sample had too few cells?")
        return max_ambient_umis, np.ones_like(total_umis)
    try:
        eval_features, ambient_profile_p = est_background_profile_sgt(matrix, ambient_bcs)
    except SimpleGoodTuringError as e:
        logger.error("%s", e)
        return max_ambient_umis, np.ones_like(total_umis)
    eval_bcs = total_umis > min_cell_umis
    obs_loglk = eval_multinomial_loglikelihoods(matrix[eval_features, :][:, eval_bcs], ambient_profile_p)
    distinct_ns, sim_loglk = simulate_multinomial_loglikelihoods(
        ambient_profile_p, total_umis[eval_bcs], num_sims=1000, verbose=True
    )
    pvalues = compute_ambient_pvalues(total_umis[eval_bcs], obs_loglk, distinct_ns, sim_loglk)
    adjusted = np.ones_like(total_umis)
    adjusted[eval_bcs] = adjust_pvalue_bh(pvalues)
    return max_ambient_umis, adjusted
