"""Fusion of two or more runs (a dense run with BM25: the hybrid every strong reasoning retriever reports).

Pyserini's own fusion does the work: ``pyserini.fusion.reciprocal_rank_fusion`` for RRF, and for
interpolation each run's scores are first min-max normalised per query (``RescoreMethod.NORMALIZE``;
dense and BM25 scores live on different scales) and then ``pyserini.fusion.interpolation`` weighs
them: ``weight * first + (1 - weight) * second``. A document missing from one run gets 0 from it (the
normalised score of that run's last hit, or below it). Ties are broken by document id, ascending
(Pyserini's merge), so the fused ranking is deterministic.

    python -m o1e_pyserini.eval fuse --runs dense.trec bm25.trec --fusion interpolation --fusion-weight 0.7 --output hybrid.trec
"""
from __future__ import annotations

import pandas as pd
from pyserini.fusion import interpolation, reciprocal_rank_fusion
from pyserini.trectools import RescoreMethod, TrecRun

from o1e_pyserini.evaluation.scoring import Run

FUSIONS = ("interpolation", "rrf")


def to_trec_run(run: Run) -> TrecRun:
    rows = [(q, "Q0", doc, rank, score, "o1e") for q, hits in run.items()
            for rank, (doc, score) in enumerate(hits, 1)]
    trec = TrecRun()
    trec.run_data = pd.DataFrame(rows, columns=["topic", "q0", "docid", "rank", "score", "tag"])
    return trec


def from_trec_run(trec: TrecRun) -> Run:
    run: Run = {}
    for topic, doc, score in trec.run_data[["topic", "docid", "score"]].itertuples(index=False):
        run.setdefault(str(topic), []).append((str(doc), float(score)))
    return run


def fuse(runs: list[Run], method: str = "interpolation", weight: float = 0.5, rrf_k: int = 60,
         depth: int | None = None, k: int | None = None) -> Run:
    """The fused run, best first per query; ``weight`` is the first run's share under interpolation
    (exactly two runs), ``rrf_k`` RRF's constant; ``depth`` hits of each run are read, ``k`` kept."""
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, not {method!r}")
    if len(runs) < 2:
        raise ValueError(f"fusion needs at least two runs, got {len(runs)}")
    trec_runs = [to_trec_run(run) for run in runs]
    if method == "rrf":
        return from_trec_run(reciprocal_rank_fusion(trec_runs, rrf_k=rrf_k, depth=depth, k=k))
    if len(runs) != 2 or not 0 <= weight <= 1:
        raise ValueError(f"interpolation weighs exactly two runs with a weight in [0, 1], got {len(runs)} runs, "
                         f"weight {weight}")
    normalised = [run.rescore(RescoreMethod.NORMALIZE) for run in trec_runs]
    return from_trec_run(interpolation(normalised, alpha=weight, depth=depth, k=k))
