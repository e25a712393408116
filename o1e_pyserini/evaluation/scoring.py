"""Runs and scores: TREC run files, ir_measures metrics, the paper's paired t-test, comparisons."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from pathlib import Path

import ir_measures
import numpy as np

from o1e_tevatron.core import readers
from o1e_tevatron.core.readers import Qrels, Run, dedup_run  # noqa: F401  (the harness's names for them)


def drop_excluded(run: Run, excluded: Mapping[str, Collection[str]]) -> tuple[Run, int]:
    """Remove each query's excluded documents from its hits; returns the run and how many hits went.

    Covers BEIR's ignore_identical_ids (ArguAna, Quora: ``{q: {q}}``) and BRIGHT's per-query
    ``excluded_ids``."""
    cleaned, removed = {}, 0
    for query_id, hits in run.items():
        banned = excluded.get(query_id, ())
        cleaned[query_id] = [(d, s) for d, s in hits if d not in banned]
        removed += len(hits) - len(cleaned[query_id])
    return cleaned, removed


def _doc_ids(value) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of document ids, got {type(value).__name__}")
    return [readers.record_id(v) for v in value]


def read_excluded_ids(path: Path | str) -> dict[str, set[str]]:
    """BRIGHT's ``excluded_ids`` per query, from a JSON object ``{query_id: [doc_id, ...]}`` or from JSON
    lines of BRIGHT examples (``{"id": ..., "excluded_ids": [...]}``); BRIGHT's ``"N/A"`` means none.
    Read through the reader layer: the file and line of a bad record are named."""
    try:
        whole = readers.parse_json(readers.whole_text(path), path)
    except readers.InputError:
        whole = None  # not one JSON document: JSON lines
    if isinstance(whole, dict) and not {"id", "excluded_ids"} <= whole.keys():
        pairs = [(query_id, readers.checked_object({"excluded_ids": ids}, {"excluded_ids": _doc_ids}, path, None)
                  ["excluded_ids"]) for query_id, ids in whole.items()]
    else:
        fields = {"id": readers.record_id, "excluded_ids": _doc_ids}
        pairs = [(row["id"], row["excluded_ids"]) for _, row in readers.json_records(path, fields)]
    return {str(query_id): {d for d in doc_ids if d != "N/A"} for query_id, doc_ids in pairs}


def write_run(run: Run, path: Path | str, tag: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for query_id, hits in run.items():
            for rank, (doc_id, score) in enumerate(hits, 1):
                f.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return path


def read_run(path: Path | str) -> Run:
    """A TREC run file (``core.readers.trec_run``): an empty file is an error (scoring it would report zeros)."""
    return readers.trec_run(path)


def read_qrels(path: Path | str) -> Qrels:
    """TREC qrels (``core.readers.trec_qrels``): an integer relevance, four columns, each judgment once."""
    return readers.trec_qrels(path)


def qrels_dict(qrels) -> Qrels:
    """ir_datasets / ir_measures qrels -> ``{query_id: {doc_id: relevance}}``."""
    judged = defaultdict(dict)
    for qrel in qrels:
        judged[qrel.query_id][qrel.doc_id] = qrel.relevance
    return dict(judged)


def _run_scores(run: Run) -> dict[str, dict[str, float]]:
    """ir_measures ranks by score: break ties by the run's own order so ranks survive."""
    return {q: {d: float(len(hits) - rank) for rank, (d, _) in enumerate(hits)} for q, hits in run.items()}


def per_query(run: Run, qrels: Qrels, metrics: list[str]) -> dict[str, dict[str, float]]:
    """``{query_id: {metric: value}}`` for every judged query; a judged query without hits scores 0."""
    measures = [ir_measures.parse_measure(m) for m in metrics]
    values = {q: {str(m): 0.0 for m in measures} for q in qrels}
    for metric in ir_measures.iter_calc(measures, qrels, _run_scores(run)):
        if metric.query_id in values:
            values[metric.query_id][str(metric.measure)] = float(metric.value)
    return values


def aggregate(per_query_values: dict[str, dict[str, float]], metrics: list[str]) -> dict[str, float]:
    return {m: float(np.mean([v[m] for v in per_query_values.values()])) if per_query_values else 0.0
            for m in metrics}


MISSING_QUERIES = ("error", "zero", "drop")


def paired_ttest(run_a: Run, run_b: Run, qrels: Qrels, metric: str, missing: str = "error") -> dict:
    """The paper's significance test: scipy's paired t-test over the judged queries, with deltas (b - a).

    ``missing`` says what a judged query absent from a run means: ``error`` (default; a run of another
    dataset or a truncated file is not evidence), ``zero`` (it scores 0, as trec_eval -c does), or
    ``drop`` (test only the queries both runs answer)."""
    from scipy import stats

    if missing not in MISSING_QUERIES:
        raise ValueError(f"missing must be one of {MISSING_QUERIES}, not {missing!r}")
    absent = {name: sorted(set(qrels) - set(run)) for name, run in (("a", run_a), ("b", run_b))}
    for name, run in (("a", run_a), ("b", run_b)):
        if not set(run) & set(qrels):
            raise ValueError(f"run {name} answers none of the {len(qrels)} judged queries: wrong run or qrels?")
        if absent[name] and missing == "error":
            raise ValueError(f"run {name} has no hits for {len(absent[name])} of {len(qrels)} judged queries "
                             f"(e.g. {', '.join(absent[name][:5])}): pass --missing zero to score them 0 or "
                             "--missing drop to test only the queries both runs answer")
    if missing == "drop":
        qrels = {q: judged for q, judged in qrels.items() if q in run_a and q in run_b}
    a = per_query(run_a, qrels, [metric])
    b = per_query(run_b, qrels, [metric])
    query_ids = sorted(qrels)
    values_a = np.array([a[q][metric] for q in query_ids])
    values_b = np.array([b[q][metric] for q in query_ids])
    result = stats.ttest_rel(values_b, values_a)
    return {
        "metric": metric, "num_queries": len(query_ids), "missing": missing,
        "missing_a": len(absent["a"]), "missing_b": len(absent["b"]),
        "mean_a": float(values_a.mean()), "mean_b": float(values_b.mean()),
        "t": float(result.statistic), "p": float(result.pvalue),
        "deltas": {q: float(vb - va) for q, va, vb in zip(query_ids, values_a, values_b)},
    }
