"""Runs and scores: TREC run files, ir_measures metrics, the paper's paired t-test, comparisons."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Collection, Mapping
from pathlib import Path

import ir_measures
import numpy as np

from o1e_tevatron.core.textfile import numbered_lines

logger = logging.getLogger(__name__)

Run = dict[str, list[tuple[str, float]]]  # query id -> [(doc id, score)], best first
Qrels = dict[str, dict[str, int]]


def dedup_run(run: Run) -> tuple[Run, int]:
    """Keep each (query, doc) once, at its best rank; returns the run and how many hits went."""
    cleaned, removed = {}, 0
    for query_id, hits in run.items():
        seen, kept = set(), []
        for doc_id, score in hits:
            if doc_id in seen:
                removed += 1
                continue
            seen.add(doc_id)
            kept.append((doc_id, score))
        cleaned[query_id] = kept
    if removed:
        logger.warning("removed %d duplicate doc ids from the run (kept the best-ranked copy)", removed)
    return cleaned, removed


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


def read_excluded_ids(path: Path | str) -> dict[str, set[str]]:
    """BRIGHT's ``excluded_ids`` per query, from a JSON object ``{query_id: [doc_id, ...]}`` or from JSON
    lines of BRIGHT examples (``{"id": ..., "excluded_ids": [...]}``); BRIGHT's ``"N/A"`` means none."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
        pairs = whole.items() if isinstance(whole, dict) else None
    except json.JSONDecodeError:
        pairs = None
    if pairs is None:
        pairs = []
        for line_no, line in enumerate(text.split("\n"), 1):  # not splitlines: texts may hold U+2028
            if not line.strip():
                continue
            try:
                example = json.loads(line)
                pairs.append((example["id"], example["excluded_ids"]))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: expected a BRIGHT example with 'id' and 'excluded_ids'") from e
    excluded = {}
    for query_id, doc_ids in pairs:
        if not isinstance(doc_ids, list):
            raise ValueError(f"{path}: excluded ids of query {query_id} must be a list, got {type(doc_ids).__name__}")
        excluded[str(query_id)] = {str(d) for d in doc_ids if str(d) != "N/A"}
    return excluded


def write_run(run: Run, path: Path | str, tag: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for query_id, hits in run.items():
            for rank, (doc_id, score) in enumerate(hits, 1):
                f.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return path


def read_run(path: Path | str) -> Run:
    """A TREC run file; hits are ordered by score, duplicates removed with a warning. An empty file is
    an error (scoring it would report zeros)."""
    run = defaultdict(list)
    for line_no, line in numbered_lines(path):
        cols = line.split()
        if len(cols) != 6:
            raise ValueError(f"{path}:{line_no}: a TREC run line has 6 columns "
                             f"(query_id Q0 doc_id rank score tag), this one {len(cols)}")
        try:
            score = float(cols[4])
        except ValueError:
            raise ValueError(f"{path}:{line_no}: the score (5th column) {cols[4]!r} is not a number") from None
        run[cols[0]].append((cols[2], score))
    if not run:
        raise ValueError(f"{path}: the run is empty")
    return dedup_run({q: sorted(hits, key=lambda hit: -hit[1]) for q, hits in run.items()})[0]


def read_qrels(path: Path | str) -> Qrels:
    """TREC qrels (``query_id iteration doc_id relevance``, an integer relevance); a line of another
    shape (a BEIR ``query-id corpus-id score`` TSV, a run file) is an error naming the line."""
    judged = defaultdict(dict)
    for line_no, line in numbered_lines(path):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 4:
            hint = " (a BEIR qrels TSV? use --dataset with --data-dir)" if len(cols) == 3 else ""
            raise ValueError(f"{path}:{line_no}: a TREC qrels line has 4 columns (query_id 0 doc_id relevance), "
                             f"this one {len(cols)}{hint}")
        try:
            judged[cols[0]][cols[2]] = int(cols[3])
        except ValueError:
            raise ValueError(f"{path}:{line_no}: the relevance {cols[3]!r} is not an integer") from None
    if not judged:
        raise ValueError(f"{path}: no judgments")
    return dict(judged)


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
