"""Runs derived from runs already searched, with no query encoded again: adaptive thinking (each query
keeps its fast hits or takes its think hits, as the policy decides from the fast run) and fusion (a
dense run with BM25's). Scored and recorded as the harness records a run, with the cost the harness
would have spent, read from the source runs' records.

    python -m o1e_pyserini.eval adaptive-run --dataset beir/scifact/test --fast-run F.trec --think-run T.trec \\
        --adaptive-signal score-entropy --think-threshold 1.77 --output runs/adaptive.trec
    python -m o1e_pyserini.eval fuse --runs T.trec bm25.trec --fusion-weight 0.5 --output runs/hybrid.trec \\
        --dataset beir/scifact/test

Equal to the harness's ``--mode adaptive`` and ``--hybrid bm25`` on the same runs (tests/eval/
test_derived.py), except that a run file keeps six decimals of each score: a query whose signal lies
within that rounding of the threshold may go the other way.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..thinking.adaptive import AdaptivePolicy, uncertainties
from . import datasets, scoring

RUN_SUFFIXES = (".trec.gz", ".trec")


def stem(run_path: Path) -> Path:
    """``folder/name`` of ``folder/name.trec[.gz]``: where the harness put the run's other files."""
    name = run_path.name
    for suffix in RUN_SUFFIXES:
        if name.endswith(suffix):
            return run_path.with_name(name[: -len(suffix)])
    return run_path.with_suffix("")


def record_of_run(run_path: Path) -> dict | None:
    """The harness's metrics record written beside a run, if there is one."""
    path = metrics_path(stem(Path(run_path)))
    return json.loads(path.read_text()) if path.exists() else None


def metrics_path(run_stem: Path) -> Path:
    return run_stem.with_name(run_stem.name + ".metrics.json")


def adaptive_run(fast: scoring.Run, think: scoring.Run, policy: AdaptivePolicy,
                 model_entropy: dict[str, float] | None = None) -> tuple[scoring.Run, dict[str, dict]]:
    """The harness's adaptive run: the policy's decisions on the fast run's uncertainty, and per query the
    think run's hits where it thinks (a query the think run lacks is an error, not a silent fast answer)."""
    decisions = policy.decide(uncertainties(policy.signal, fast, model_entropy))
    missing = sorted(q for q, d in decisions.items() if d["think"] and q not in think)
    if missing:
        raise ValueError(f"the think run has no hits for {len(missing)} queries that think, e.g. {missing[:3]}")
    return {q: think[q] if decisions[q]["think"] else hits for q, hits in fast.items()}, decisions


def adaptive_cost(fast: dict | None, think: dict | None, decisions: dict[str, dict],
                  generated_tokens: dict[str, float] | None) -> dict:
    """What the adaptive run would have cost online: every query's fast pass, and the think pass of those
    that think (their generated tokens; encoding seconds pro rata of the think run's)."""
    n = max(len(decisions), 1)
    thinking = [q for q, d in decisions.items() if d["think"]]
    cost = {"queries_thought": len(thinking), "queries_from_thought_cache": 0, "derived_from_runs": True,
            "generated_tokens_per_query": round(sum((generated_tokens or {}).get(q, 0) for q in thinking) / n, 2)}
    fast_cost, think_cost = (fast or {}).get("cost") or {}, (think or {}).get("cost") or {}
    if fast_cost.get("query_encoding_qps") and think_cost.get("query_encoding_qps"):
        seconds = 1 / fast_cost["query_encoding_qps"] + len(thinking) / n / think_cost["query_encoding_qps"]
        cost["query_encoding_qps"] = round(1 / seconds, 2)
    if think_cost.get("thinking_seconds_per_query") is not None:
        cost["thinking_seconds_per_query"] = round(think_cost["thinking_seconds_per_query"] * len(thinking) / n, 4)
    for key in ("search_qps", "hardware"):
        cost[key] = fast_cost.get(key)
    return cost


def write_scored(run: scoring.Run, output: Path, qrels: scoring.Qrels, dataset: str | None, metrics: list[str],
                 **fields) -> dict:
    """``output`` (a TREC run) and its metrics record beside it (``<name>.metrics.json``), as the harness
    writes them; ``fields`` (what it was derived from, its cost, decisions) go into the record."""
    output = Path(output)
    name = stem(output)
    scoring.write_run(run, output, tag=name.name)
    values = scoring.per_query(run, qrels, metrics)
    record = {"dataset": dataset, "retriever": {"spec": f"derived:{name.name}"},
              "metrics": scoring.aggregate(values, metrics), "num_queries": len(values), "run": str(output),
              **fields, "per_query": values}
    metrics_path(name).write_text(json.dumps(record, indent=1))
    return record


def dataset_metrics(dataset: str | None, metric: str) -> list[str]:
    """The harness's metrics for a dataset (its ``metric`` first), or only ``metric`` for bare qrels."""
    listed = list(datasets.dataset_info(dataset).metrics) if dataset else []
    return [metric] + [m for m in listed if m != metric]
