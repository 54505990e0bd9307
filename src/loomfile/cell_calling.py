"""loompy's ``loompy.cell_calling`` module: which barcodes hold cells (EmptyDrops, as cellranger 3)."""

from __future__ import annotations

from .io._cell_calling import (
    SimpleGoodTuringError,
    adjust_pvalue_bh,
    call_cells,
    compute_ambient_pvalues,
    est_background_profile_sgt,
    estimate_profile_sgt,
    eval_multinomial_loglikelihoods,
    sgt_proportions,
    simple_good_turing,
    simulate_multinomial_loglikelihoods,
)

__all__ = [
    "SimpleGoodTuringError",
    "adjust_pvalue_bh",
    "call_cells",
    "compute_ambient_pvalues",
    "est_background_profile_sgt",
    "estimate_profile_sgt",
    "eval_multinomial_loglikelihoods",
    "sgt_proportions",
    "simple_good_turing",
    "simulate_multinomial_loglikelihoods",
]
