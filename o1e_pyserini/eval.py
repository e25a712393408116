"""One evaluation command for BM25, any Pyserini dense encoder and O1E models.

    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever bm25 --data-dir ../shared/data
    python -m o1e_pyserini.eval --dataset o1e/cosqa/dev --retriever auto:sentence-transformers/all-MiniLM-L6-v2 --data-dir ../shared/data
    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever o1e:MODEL --mode think --num-thoughts 3
    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever repllama:castorini/repllama-v1-7b-lora-passage \
        --thought-server https://api.openai.com/v1 --thought-model gpt-4o-mini   # Table 4's separate generator
    python -m o1e_pyserini.eval ttest --dataset beir/scifact/test --data-dir ../shared/data --run-a A.trec --run-b B.trec
    python -m o1e_pyserini.eval compare --expected recipes/table2/expected.yaml --results runs/
    python -m o1e_pyserini.eval regress --data-dir ../shared/data
    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever auto:... --hybrid bm25 --fusion-weight 0.7
    python -m o1e_pyserini.eval fuse --runs dense.trec bm25.trec --fusion rrf --output hybrid.trec

Writes ``<output_dir>/<dataset>/<retriever>.trec``, ``….metrics.json`` (aggregate, per query and the
data-quality report), for thinking retrievers ``….queries/`` (``thoughts.jsonl`` + ``embedding.npz``,
reusable with ``--thoughts-file``) and prints one summary line. Indexes live under ``--index-root`` (default
``~/.cache/o1e/indexes``); each records the fingerprint of what it was built from (the model's files,
the corpus, the encoding settings) and is reused only when that fingerprint still matches.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from o1e_pyserini import datasets
from o1e_pyserini.adaptive import SIGNALS, AdaptivePolicy, uncertainties
from o1e_pyserini.arguments import positive_int
from o1e_pyserini.evaluation import retrievers, scoring
from o1e_tevatron.core.fingerprint import path_fingerprint
from o1e_tevatron.core import readers
from o1e_tevatron.core.errors import one_line_errors, run_command
from o1e_tevatron.core.redact import install_log_redaction, redact

logger = logging.getLogger("o1e_pyserini.eval")

REGRESSIONS = Path(__file__).parent / "resources" / "regressions.yaml"
DEFAULT_OUTPUT = Path("runs")
THOUGHT_FLAGS = ("num_thoughts", "max_new_tokens", "temperature", "seed")  # ThoughtSettings' / O1EQueryEncoder's names
QUERY_VECTOR_FLAGS = ("query_vector", "renormalize")  # O1EQueryEncoder's own
GROUNDING_FLAGS = ("grounding_index", "grounding_passages")  # O1EQueryEncoder's own


@dataclass
class EvalConfig:
    dataset: str
    retriever: retrievers.RetrieverSpec
    data_dir: Path | None = None
    topics_dir: Path | None = None
    corpus: Path | None = None
    excluded_ids: Path | None = None  # BRIGHT's per-query excluded_ids (scoring.read_excluded_ids)
    output_dir: Path = DEFAULT_OUTPUT
    index_root: Path = datasets.O1E_CACHE / "indexes"
    hits: int = 1000
    threads: int = 2
    metrics: list[str] = field(default_factory=list)
    hybrid: str | None = None  # "bm25": fuse the run with BM25's (o1e_pyserini.fusion)
    fusion: str = "interpolation"
    fusion_weight: float = 0.5  # the dense run's share under interpolation
    adaptive: AdaptivePolicy | None = None  # o1e --mode adaptive: which queries think


def _slug(text: str) -> str:
    return text.replace("/", "__").replace(":", "_")


def _index_dir(config: EvalConfig) -> Path:
    """Keyed by corpus, not split: DL19, DL20 and MS MARCO dev share one msmarco-passage index."""
    corpus = datasets.dataset_info(config.dataset).folder
    if config.corpus is not None:
        corpus += "-" + hashlib.sha1(str(config.corpus.resolve()).encode()).hexdigest()[:8]
    return config.index_root / corpus / config.retriever.slug()


def _content_key(config: EvalConfig, dataset) -> str:
    """The index's content key: a local corpus by its bytes; ir_datasets' own copy by its id (ir_datasets
    checks the download's digest)."""
    docs = dataset.docs_handler()
    corpus = path_fingerprint(docs.path) if isinstance(docs, datasets.JsonlDocs) else f"ir_datasets:{config.dataset}"
    return config.retriever.content_key(corpus)


def _read(dataset_id: str, what: str, items, config: EvalConfig):
    """Iterate an ir_datasets component; a failed download becomes a message saying where files go."""
    try:
        yield from items
    except OSError as e:
        if isinstance(e, datasets.DatasetUnavailableError):
            raise
        raise datasets.DatasetUnavailableError(
            f"could not read the {what} of {dataset_id} ({type(e).__name__}: {str(e)[:200]})\n"
            + datasets.where_to_put(dataset_id, config.data_dir, config.topics_dir)) from e


def evaluate(config: EvalConfig) -> dict:
    """Index (or reuse), search, score; returns the metrics record that is also written to disk."""
    started = time.time()
    info = datasets.dataset_info(config.dataset)
    metrics = config.metrics or list(info.metrics)
    dataset = datasets.load(config.dataset, config.data_dir, config.topics_dir, config.corpus)

    qrels = scoring.qrels_dict(_read(config.dataset, "qrels", dataset.qrels_iter(), config))
    queries = {q.query_id: q.default_text() for q in _read(config.dataset, "queries", dataset.queries_iter(), config)}
    if config.dataset.endswith("/judged"):
        queries = {q: text for q, text in queries.items() if q in qrels}
    report = {"unjudged_queries": sorted(set(queries) - set(qrels)),
              "judged_queries_without_topic": sorted(set(qrels) - set(queries))}
    qrels = {q: judged for q, judged in qrels.items() if q in queries}

    retriever = config.retriever.validate()
    index_dir = _index_dir(config)
    retrievers.build_index(retriever, _read(config.dataset, "corpus", dataset.docs_iter(), config), index_dir,
                           _content_key(config, dataset), num_docs=dataset.docs_count(), threads=config.threads)
    indexed = set(retrievers.read_docids(index_dir))
    missing = sorted((q, d) for q, judged in qrels.items() for d in judged if d not in indexed)
    report["qrels_docs_missing_from_corpus"] = {"count": len(missing), "examples": missing[:10]}
    indexed_at = time.time()

    excluded = scoring.read_excluded_ids(config.excluded_ids) if config.excluded_ids else {}
    report["excluded_ids_for_unknown_queries"] = sorted(set(excluded) - set(queries))
    if info.ignore_identical_ids:
        excluded = {q: excluded.get(q, set()) | {q} for q in queries}
    depth = config.hits + max(map(len, excluded.values()), default=0)  # still `hits` deep after exclusion
    if retriever.query_options.get("grounding_index") == "auto":  # this dataset's corpus (a copy: specs are reused)
        retriever = replace(retriever, query_options={**retriever.query_options,
                                                      "grounding_index": str(_bm25_index(config, dataset))})
    query_encoder = None if retriever.is_lucene else _timed(retriever.query_encoder())
    run = retrievers.search(retriever, index_dir, queries, k=depth, threads=config.threads,
                            query_encoder=query_encoder)
    decisions = None
    if config.adaptive:
        decisions = _think_where_uncertain(config, retriever, index_dir, queries, run, excluded, depth, query_encoder)
    run, report["duplicate_hits_removed"] = scoring.dedup_run(run)
    run, report["excluded_hits_removed"] = scoring.drop_excluded(run, excluded)
    run = {q: hits[:config.hits] for q, hits in run.items()}
    run_name = _run_name(retriever)
    if config.adaptive:
        policy = config.adaptive
        run_name += f"-{policy.signal}-" + (f"rate{policy.rate:g}" if policy.rate is not None
                                            else f"threshold{policy.threshold:g}")
    if config.hybrid:
        run = _hybrid(config, dataset, queries, run, excluded, depth)
        run_name += f"-hybrid-{config.hybrid}-{config.fusion}" + (
            f"-{config.fusion_weight:g}" if config.fusion == "interpolation" else "")
    searched_at = time.time()

    run_dir = config.output_dir / _slug(config.dataset)
    run_path = scoring.write_run(run, run_dir / f"{run_name}.trec", tag=run_name)
    encoded = getattr(query_encoder, "encoded", None)
    if encoded is not None and (any(encoded.thoughts) or any(e is not None for e in encoded.entropy)):
        # thoughts (or the fast pass's entropy) + vectors, to re-score without generating
        from o1e_pyserini.encoder import ids_by_text
        saved = encoded.save(run_dir / f"{run_name}.queries", ids_by_text(queries), decisions)
        report["thoughts"] = str(saved / "thoughts.jsonl")
    values = scoring.per_query(run, qrels, metrics)
    record = {
        "dataset": config.dataset, "retriever": retrievers.describe(retriever),
        "metrics": scoring.aggregate(values, metrics), "num_queries": len(values),
        **report, "run": str(run_path), "index": str(index_dir),
        "fusion": {"with": config.hybrid, "method": config.fusion, "weight": config.fusion_weight} if config.hybrid else None,
        "seconds": {"index": round(indexed_at - started, 1), "search": round(searched_at - indexed_at, 1)},
        "cost": _cost(query_encoder, queries, decisions, searched_at - indexed_at),
        "adaptive": {**config.adaptive.__dict__, "decisions": decisions} if config.adaptive else None,
        "per_query": values,
    }
    record = redact(record)  # a thought server's URL may carry credentials
    (run_dir / f"{run_name}.metrics.json").write_text(json.dumps(record, indent=1))
    _warn_about(report, config.dataset)
    print(summary_line(record))
    return record


def _think_where_uncertain(config: EvalConfig, retriever, index_dir: Path, queries: dict[str, str],
                           run: scoring.Run, excluded, depth: int, query_encoder) -> dict[str, dict]:
    """Adaptive thinking: ``run`` is the fast run (searched in full); the queries the policy sends to
    thinking are searched again thinking, and their hits replace the fast ones in ``run``."""
    fast = scoring.drop_excluded(scoring.dedup_run(run)[0], excluded)[0]
    encoded = query_encoder.encoded
    entropy = dict(zip(encoded.texts, encoded.entropy))
    decisions = config.adaptive.decide(uncertainties(config.adaptive.signal, fast,
                                                     {q: entropy[text] for q, text in queries.items()}))
    thinking = {q: text for q, text in queries.items() if decisions[q]["think"]}
    query_encoder.think_now = True
    if thinking:
        run.update(retrievers.search(retriever, index_dir, thinking, k=depth, threads=config.threads,
                                     query_encoder=query_encoder))
    logger.info("adaptive (%s): %d of %d queries thought", config.adaptive.signal, len(thinking), len(queries))
    return decisions


def _cost(query_encoder, queries: dict[str, str], decisions: dict | None, search_seconds: float) -> dict:
    """What the run cost: queries that thought, generated tokens and thinking seconds per query, query
    encoding and search throughput (queries per second; search excludes encoding), and the hardware."""
    n = max(len(queries), 1)
    encoded = getattr(query_encoder, "encoded", None)
    seconds = getattr(query_encoder, "seconds", {})
    encoding = sum(seconds.values())
    grounder = getattr(query_encoder, "grounder", None)
    thought = (sum(d["think"] for d in decisions.values()) if decisions is not None
               else sum(bool(t) for t in encoded.thoughts) if encoded else 0)
    return {"queries_thought": thought, "queries_from_thought_cache": getattr(query_encoder, "cache_hits", 0),
            "generated_tokens_per_query": round(sum(encoded.generated_tokens) / n, 2) if encoded else 0.0,
            "thinking_seconds_per_query": round(seconds.get("think", 0.0) / n, 4),
            "prompt_tokens_per_query": round(getattr(query_encoder, "prompt_tokens", 0) / n, 1) or None,
            "grounding_seconds_per_query": round(grounder.seconds / n, 4) if grounder else None,
            "query_encoding_qps": round((len(encoded.texts) if encoded else n) / encoding, 2) if encoding else None,
            "search_qps": round(n / max(search_seconds - encoding, 1e-9), 2),
            "hardware": _hardware()}


def _timed(query_encoder):
    """The encoder, keeping the seconds it spends encoding in ``seconds`` as o1e's encoders do themselves
    (Pyserini's encode inside its search otherwise, so search throughput would include it)."""
    if hasattr(query_encoder, "seconds"):
        return query_encoder
    query_encoder.seconds = {"fast": 0.0}
    depth = [0]  # encode_batch may call encode: count the outer call only

    def clocked(method):
        def call(*args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    query_encoder.seconds["fast"] += time.perf_counter() - started
        return call

    for name in ("encode", "encode_batch"):
        if hasattr(query_encoder, name):
            setattr(query_encoder, name, clocked(getattr(query_encoder, name)))
    return query_encoder


def _hardware() -> str:
    import platform

    import torch
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.get_num_threads()} threads{gpu}"


def _hybrid(config: EvalConfig, dataset, queries: dict[str, str], run: scoring.Run, excluded, depth: int) -> scoring.Run:
    """``run`` fused with BM25's over the same queries (both `hits` deep after exclusion)."""
    from o1e_pyserini.fusion import fuse

    bm25 = replace(config, retriever=retrievers.RetrieverSpec(config.hybrid))
    index_dir = _bm25_index(config, dataset)
    sparse = retrievers.search(bm25.retriever, index_dir, queries, k=depth, threads=config.threads)
    sparse = scoring.drop_excluded(scoring.dedup_run(sparse)[0], excluded)[0]
    sparse = {q: hits[:config.hits] for q, hits in sparse.items()}
    return fuse([run, sparse], config.fusion, config.fusion_weight, k=config.hits)


def _bm25_index(config: EvalConfig, dataset) -> Path:
    """The dataset corpus's BM25 (Lucene) index, built once and keyed by content: for hybrid runs and
    for grounding thoughts in retrieved passages (``--grounding-index auto``)."""
    bm25 = replace(config, retriever=retrievers.RetrieverSpec("bm25"))
    index_dir = _index_dir(bm25)
    retrievers.build_index(bm25.retriever, _read(config.dataset, "corpus", dataset.docs_iter(), config), index_dir,
                           _content_key(bm25, dataset), num_docs=dataset.docs_count(), threads=config.threads)
    return index_dir


def _adaptive_curve(args) -> dict:
    """nDCG@10 (or ``--metric``) against the think-rate per signal, from a fast and a think run of one split."""
    from o1e_pyserini.adaptive import adaptive_curve, operating_points, plot_curve

    qrels = _dataset_qrels(args)
    fast_run, think_run = scoring.read_run(args.fast_run), scoring.read_run(args.think_run)
    fast = {q: v[args.metric] for q, v in scoring.per_query(fast_run, qrels, [args.metric]).items()}
    think = {q: v[args.metric] for q, v in scoring.per_query(think_run, qrels, [args.metric]).items()}
    signals = {name: uncertainties(name, {q: fast_run.get(q, []) for q in fast}) for name in ("margin", "score-entropy")}
    if args.fast_queries:
        entropy = _thoughts_field(args.fast_queries, "entropy")
        signals["model-entropy"] = {q: entropy[q] for q in fast}
    tokens = _thoughts_field(args.think_queries, "generated_tokens") if args.think_queries else None
    curve = {"metric": args.metric, "fast_run": str(args.fast_run), "think_run": str(args.think_run),
             **adaptive_curve(fast, think, signals, tokens)}
    curve["target_gain"] = args.target_gain
    curve["operating_points"] = operating_points(curve, args.target_gain)
    args.output.write_text(json.dumps(curve, indent=1))
    if args.plot:
        plot_curve(curve, args.metric, args.plot)
    print(f"{args.metric}: never {curve['never_think']:.4f}, always {curve['always_think']:.4f} "
          f"({curve['num_queries']} queries)")
    for signal, points in curve["curves"].items():
        marks = [points[round(r * curve["num_queries"])] for r in (0.25, 0.5, 0.75)]
        print(f"  {signal:14} " + "  ".join(f"rate {p['think_rate']:.2f}: {p['score']:.4f} (threshold "
                                           f"{p['threshold']:.4g})" for p in marks))
        point = curve["operating_points"][signal]
        print(f"  {'':14} {args.target_gain:.0%} of the gain: " + (
            f"rate {point['think_rate']:.2f}, threshold {point['threshold']}" if point
            else "none (always-think does not beat never-think)"))
    return curve


def _thoughts_field(path: Path, name: str) -> dict[str, float]:
    """{query_id: row[name]} of a thoughts.jsonl, naming the line that lacks it."""
    values = {}
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        if line.strip():
            row = json.loads(line)
            if row.get(name) is None or row.get("query_id") is None:
                raise ValueError(f"{path}:{line_no}: no {name!r} (a thoughts.jsonl of o1e with query ids)")
            values[row["query_id"]] = row[name]
    return values


def _fuse_files(args) -> None:
    from o1e_pyserini.fusion import fuse

    fused = fuse([scoring.read_run(path) for path in args.runs], args.fusion, args.fusion_weight, args.rrf_k,
                 depth=args.depth, k=args.hits)
    scoring.write_run(fused, args.output, tag=f"fused-{args.fusion}")
    print(f"wrote {args.output} ({len(fused)} queries, {args.fusion} of {len(args.runs)} runs)")


def _add_fusion_args(parser: argparse.ArgumentParser) -> None:
    from o1e_pyserini.fusion import FUSIONS

    parser.add_argument("--fusion", choices=FUSIONS, default="interpolation",
                        help="interpolation of per-query min-max normalised scores, or reciprocal rank fusion")
    parser.add_argument("--fusion-weight", type=float, default=0.5,
                        help="interpolation: the first (dense) run's weight; pick it on training or dev queries")


def _run_name(retriever: retrievers.RetrieverSpec) -> str:
    """The spec plus the query options that change the run (a thoughts file by its folder and a short hash)."""
    parts = [retriever.spec] + ([retriever.debater_scoring] if retriever.debater_scoring != "last" else [])
    for name, value in retriever.query_options.items():
        if name == "thoughts_file":
            path = Path(value).resolve()
            parts.append(f"thoughts-{path.parent.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:6]}")
        elif name == "thought_model":
            parts.append(f"thoughts-{Path(value).name}")
        elif name == "instruction":
            parts.append(f"instruction-{hashlib.sha1(value.encode()).hexdigest()[:6]}")
        elif name == "renormalize":
            parts.append("renormalized")
        elif name == "grounding_index":
            parts.append("grounded")
        elif name == "thoughts" and value == "vllm":
            parts.append("vllm")
        elif name not in ("thoughts", "thought_server", "thought_cache", "vllm_options"):
            parts.append(str(value))
    return _slug("-".join(parts))


def _warn_about(report: dict, dataset_id: str) -> None:
    if report["unjudged_queries"]:
        logger.warning("%s: %d queries have no judgments (searched, not scored): %s", dataset_id,
                       len(report["unjudged_queries"]), report["unjudged_queries"][:10])
    if report["judged_queries_without_topic"]:
        logger.warning("%s: %d judged queries are not among the topics (not scored): %s", dataset_id,
                       len(report["judged_queries_without_topic"]), report["judged_queries_without_topic"][:10])
    if report["excluded_ids_for_unknown_queries"]:
        logger.warning("%s: the excluded-ids file names %d queries that are not among the topics (wrong file?): %s",
                       dataset_id, len(report["excluded_ids_for_unknown_queries"]),
                       report["excluded_ids_for_unknown_queries"][:10])
    missing = report["qrels_docs_missing_from_corpus"]
    if missing["count"]:
        logger.warning("%s: %d judgments name documents absent from the corpus, e.g. %s", dataset_id,
                       missing["count"], missing["examples"][:3])


def summary_line(record: dict) -> str:
    scores = "  ".join(f"{m}={v:.4f}" for m, v in record["metrics"].items())
    cost = record.get("cost") or {}
    costs = (f"  thought {cost['queries_thought']}/{record['num_queries']}, {cost['generated_tokens_per_query']} "
             f"tokens/q, {cost['thinking_seconds_per_query']} s/q thinking, encode {cost['query_encoding_qps']} q/s, "
             f"search {cost['search_qps']} q/s on {cost['hardware']}") if cost else ""
    return f"{record['dataset']}  {record['retriever']['spec']}  {scores}  ({record['num_queries']} queries){costs}"


# --- compare / regress / ttest ---------------------------------------------------------------
def compare(expected_path: Path, results_dir: Path) -> list[dict]:
    """Ours vs the paper per dataset, from ``<results>/<condition>/<dataset>/*.metrics.json``.

    ``expected.yaml``: ``{table, metric_scale, conditions: [{name, datasets: [{dataset, scores:
    {metric: value}}]}]}``; a dataset ``average`` with ``over: [ids]`` is the mean of ours over those
    ids. The paper prints percentages, hence ``metric_scale`` (100). Cost columns beside the scores:
    the share of queries that thought, generated tokens and thinking seconds per query (means over
    ``over``), blank for results written before o1e recorded cost."""
    expected = readers.yaml_file(expected_path)
    scale = expected.get("metric_scale", 1)
    if not Path(results_dir).is_dir():
        raise FileNotFoundError(f"--results {results_dir}: no such folder (it holds <condition>/<dataset>/*.metrics.json)")
    rows = []
    for condition in expected["conditions"]:
        ours_by_dataset = {}
        for entry in condition["datasets"]:
            for dataset_id in entry.get("over", [entry["dataset"]]):
                if dataset_id not in ours_by_dataset:
                    ours_by_dataset[dataset_id] = _record_of(Path(results_dir) / condition["name"], dataset_id)
            records = [ours_by_dataset[d] for d in entry.get("over", [entry["dataset"]])]
            cost = {name: _mean([_cost_value(r, name) for r in records]) for name in COST_COLUMNS}
            for metric, paper in entry["scores"].items():
                ours = _mean([r.get("metrics", {}).get(metric) for r in records])
                rows.append({"condition": condition["name"], "dataset": entry["dataset"], "metric": metric,
                             "paper": paper, "ours": None if ours is None else scale * ours, **cost})
    print(f"{'condition':16} {'dataset':38} {'metric':8} {'paper':>8} {'ours':>8} {'delta':>8} "
          f"{'thought':>8} {'tok/q':>8} {'think s/q':>10}")
    for row in rows:
        ours = "missing" if row["ours"] is None else f"{row['ours']:.2f}"
        delta = "" if row["ours"] is None else f"{row['ours'] - row['paper']:+.2f}"
        costs = [("" if row[name] is None else f"{row[name]:{spec}}") for name, spec in
                 zip(COST_COLUMNS, (".0%", ".1f", ".3f"))]
        print(f"{row['condition']:16} {row['dataset']:38} {row['metric']:8} {row['paper']:8.2f} {ours:>8} {delta:>8} "
              f"{costs[0]:>8} {costs[1]:>8} {costs[2]:>10}")
    if all(row["ours"] is None for row in rows):
        raise ValueError(f"--results {results_dir}: none of the {len(rows)} results of {expected_path} is there "
                         "(expected <results>/<condition>/<dataset>/*.metrics.json): wrong folder?")
    return rows


COST_COLUMNS = ("think_rate", "generated_tokens_per_query", "thinking_seconds_per_query")


def _record_of(condition_dir: Path, dataset_id: str) -> dict:
    found = sorted((condition_dir / _slug(dataset_id)).glob("*.metrics.json"))
    if len(found) > 1:
        raise ValueError(f"{condition_dir / _slug(dataset_id)}: several metrics files {found}; keep one per condition")
    return json.loads(found[0].read_text()) if found else {}


def _cost_value(record: dict, name: str) -> float | None:
    cost = record.get("cost")
    if not cost:
        return None
    if name == "think_rate":
        return cost["queries_thought"] / max(record.get("num_queries", 0), 1)
    return cost[name]


def _mean(values: list) -> float | None:
    return None if not values or None in values else sum(values) / len(values)


def regress(regressions: Path, base: EvalConfig) -> list[str]:
    """Run every condition of a 2CR-style YAML and return the scores that moved beyond its tolerance."""
    spec = readers.yaml_file(regressions)
    tolerance = check_regressions(spec, regressions)
    failures = []
    for condition in spec["conditions"]:
        retriever = retrievers.RetrieverSpec(condition["retriever"], **condition.get("options", {}))
        for entry in condition["datasets"]:
            record = evaluate(EvalConfig(**{**base.__dict__, "dataset": entry["dataset"], "retriever": retriever,
                                            "hits": spec.get("hits", base.hits), "metrics": list(entry["scores"])}))
            for metric, pinned in entry["scores"].items():
                got = record["metrics"][metric]
                if abs(got - pinned) > tolerance:
                    failures.append(f"{condition['name']} {entry['dataset']} {metric}: pinned {pinned:.4f}, "
                                    f"got {got:.4f} (tolerance {tolerance})")
    return failures


def _import_shards(config: EvalConfig, shards: list[Path], allow_pickle: bool) -> None:
    index_dir = _index_dir(config)
    content_key = _content_key(config, datasets.load(config.dataset, config.data_dir, config.topics_dir, config.corpus))
    if retrievers.reusable_index(index_dir, content_key):
        print(f"reusing {index_dir}")
    else:
        retrievers.import_shards(config.retriever, shards, index_dir, content_key, allow_pickle)
        print(f"indexed {len(retrievers.read_docids(index_dir))} passages into {index_dir}")


def _ttest(args) -> None:
    result = scoring.paired_ttest(scoring.read_run(args.run_a), scoring.read_run(args.run_b),
                                  _dataset_qrels(args), args.metric, args.missing)
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))
    missing = "".join(f", {result[f'missing_{n}']} missing from {n} ({args.missing})" for n in "ab"
                      if result[f"missing_{n}"])
    print(f"{args.metric}: a={result['mean_a']:.4f} b={result['mean_b']:.4f} "
          f"t={result['t']:.3f} p={result['p']:.4g} ({result['num_queries']} queries{missing})"
          f"{'  significant at 0.05' if result['p'] < 0.05 else ''}")


def check_regressions(spec: dict, path) -> float:
    """The tolerance of a regressions YAML whose every entry pins at least one number: an entry that
    pins nothing would pass without checking anything."""
    try:
        tolerance = float(spec["tolerance"])
        conditions = spec["conditions"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: needs a numeric 'tolerance' and a list of 'conditions'") from None
    if not conditions or not 0 <= tolerance < 1:
        raise ValueError(f"{path}: needs at least one condition and a tolerance in [0, 1), got {tolerance}")
    for condition in conditions:
        name = condition.get("name", "?")
        if not condition.get("retriever") or not condition.get("datasets"):
            raise ValueError(f"{path}: condition {name!r} needs a retriever and at least one dataset")
        for entry in condition["datasets"]:
            scores = entry.get("scores")
            if not entry.get("dataset") or not isinstance(scores, dict) or not scores or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
                raise ValueError(f"{path}: condition {name!r}, dataset {entry.get('dataset')!r}: 'scores' must pin "
                                 "at least one metric to a number (an entry without one checks nothing)")
    return tolerance


def _dataset_qrels(args) -> scoring.Qrels:
    if args.qrels:
        return scoring.read_qrels(args.qrels)
    dataset = datasets.load(args.dataset, args.data_dir, args.topics_dir)
    return scoring.qrels_dict(dataset.qrels_iter())


# --- command line ----------------------------------------------------------------------------
def _add_data_args(parser: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    parser.add_argument("--dataset", required=dataset_required,
                        help="ir_datasets id (beir/scifact/test, msmarco-passage/dev/small, bright/biology) or o1e/cosqa/dev")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder of BEIR-format copies (<data-dir>/scifact, <data-dir>/cosqa); default $O1E_DATA_DIR")
    parser.add_argument("--topics-dir", type=Path, default=None,
                        help="Pyserini topics-and-qrels folder (default ~/.cache/pyserini/topics-and-qrels)")


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m o1e_pyserini.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(parser)
    parser.add_argument("--retriever", required=True,
                        help="bm25 | ENCODER:MODEL (auto:, contriever:, ...) | o1e:MODEL | debater:MODEL | repllama:MODEL")
    parser.add_argument("--corpus", type=Path, default=None, help="local corpus JSON lines (BRIGHT, or to override)")
    parser.add_argument("--excluded-ids", type=Path, default=None,
                        help="documents never counted for a query (BRIGHT's excluded_ids): a JSON object "
                             "{query_id: [doc_id, ...]} or JSON lines of BRIGHT examples with id and excluded_ids")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--index-root", type=Path, default=datasets.O1E_CACHE / "indexes")
    parser.add_argument("--hits", type=positive_int, default=1000)
    parser.add_argument("--threads", type=positive_int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--metrics", nargs="*", default=None, help="ir_measures names; default: the paper's")
    encoding = parser.add_argument_group("dense encoders")
    encoding.add_argument("--device", default="cpu")
    encoding.add_argument("--batch-size", type=positive_int, default=32)
    encoding.add_argument("--max-passage-length", type=positive_int, default=256)
    encoding.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    encoding.add_argument("--l2-norm", action=argparse.BooleanOptionalAction, default=True)
    encoding.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                          help="o1e's own encoders (o1e, debater, repllama) compute in it: bfloat16 is ~3x faster "
                               "than float32 on CPUs with AMX; part of the index's cache key")
    encoding.add_argument("--vector-dtype", choices=["auto", "float16", "float32"], default="auto",
                          help="index storage: float16 halves the memory (auto: float16 from 1M passages on)")
    encoding.add_argument("--trust-remote-code", action="store_true",
                          help="o1e's own encoders run the Python code the model folder ships (MiniCPM, the base "
                               "of DEBATER's release, needs it); only for models you trust")
    o1e = parser.add_argument_group("thoughts (o1e retrievers; any dense retriever given a thought source)")
    o1e.add_argument("--mode", choices=["think", "fast", "adaptive"], default=None,
                     help="o1e only; adaptive: fast first, then think where --adaptive-signal says uncertain")
    o1e.add_argument("--adaptive-signal", choices=SIGNALS, default="margin",
                     help="margin: top-1 minus top-2 fast score; score-entropy: of the top fast scores; "
                          "model-entropy: the model's next-token entropy at <thought>")
    o1e.add_argument("--think-threshold", type=float, default=None,
                     help="adaptive: think when the signal's uncertainty is at least this (margin: minus the gap)")
    o1e.add_argument("--think-rate", type=float, default=None,
                     help="adaptive: the fraction of queries that think (the most uncertain ones)")
    o1e.add_argument("--num-thoughts", type=positive_int, default=None)
    o1e.add_argument("--max-thought-tokens", type=positive_int, default=None, dest="max_new_tokens")
    o1e.add_argument("--temperature", type=float, default=None, help="thought sampling temperature")
    o1e.add_argument("--seed", type=int, default=None, help="thought sampling seed")
    o1e.add_argument("--query-vector", choices=["thoughts", "thoughts+query"], default=None,
                     help="o1e think mode: the mean of the thought vectors (eq. 11, default) or with the plain query in it")
    o1e.add_argument("--renormalize", action="store_true", default=None,
                     help="o1e think mode: scale the mean query vector to unit length")
    o1e.add_argument("--thought-cache", type=Path, default=datasets.O1E_CACHE / "thoughts",
                     help="o1e: keep and reuse seeded (or greedy) thoughts here, keyed by the checkpoint's content, "
                          "template, sampling settings, seed and query (default $O1E_CACHE/thoughts)")
    o1e.add_argument("--no-thought-cache", action="store_true", help="o1e: generate every thought afresh")
    o1e.add_argument("--thoughts-file", type=Path, default=None,
                     help="thoughts.jsonl of an earlier run ({text, thoughts} lines), e.g. <run>.queries/thoughts.jsonl")
    o1e.add_argument("--thought-backend", choices=["hf", "vllm"], default=None,
                     help="o1e think mode: the checkpoint's own thoughts from Hugging Face generate (default) or vLLM "
                          "(an adapter is merged once for it; on a CPU: recipes/vllm/install.sh)")
    o1e.add_argument("--vllm-arg", action="append", default=[], metavar="NAME=VALUE",
                     help="--thought-backend vllm: a vllm.LLM option (e.g. tensor_parallel_size=2); repeatable")
    o1e.add_argument("--thought-server", default=None,
                     help="OpenAI-compatible base URL of a separate thought generator (key from $OPENAI_API_KEY)")
    o1e.add_argument("--thought-model", default=None, help="the separate generator's model name, e.g. gpt-4o-mini")
    o1e.add_argument("--grounding-index", default=None,
                     help="think from the query's top BM25 passages: a Lucene index folder, a Pyserini prebuilt name, "
                          "or 'auto' (BM25 over the dataset's corpus, built once); needed by checkpoints trained "
                          "with --grounding_passages, optional for --thought-server")
    o1e.add_argument("--grounding-passages", type=positive_int, default=None,
                     help="--thought-server: passages put in its prompt (default 3; a checkpoint uses its own)")
    hybrid = parser.add_argument_group("hybrid (o1e_pyserini.fusion)")
    hybrid.add_argument("--hybrid", choices=["bm25"], default=None, help="fuse the dense run with BM25's")
    _add_fusion_args(hybrid)
    debater = parser.add_argument_group("DEBATER retrievers (debater:MODEL)")
    debater.add_argument("--debater-scoring", choices=["last", "max-steps"], default="last",
                         help="index the last step's vector, or all M steps and keep each passage's best")
    debater.add_argument("--instruction", default=None,
                         help="query instruction (default: DEBATER's for the dataset's task, else the checkpoint's)")
    return parser


def _config(args) -> EvalConfig:
    options = {"mode": args.mode} if args.mode else {}
    if args.thoughts_file and args.thought_server:
        raise SystemExit("error: give --thoughts-file or --thought-server, not both")
    if args.mode == "fast" and (args.thoughts_file or args.thought_server or args.thought_backend):
        raise SystemExit("error: --mode fast embeds the plain query, so --thoughts-file, --thought-server and "
                         "--thought-backend would be ignored: use --mode think to embed the query with thoughts")
    if args.thought_backend and (args.thoughts_file or args.thought_server):
        raise SystemExit("error: --thought-backend is where the checkpoint's own thoughts come from: not with "
                         "--thoughts-file or --thought-server")
    if args.vllm_arg and args.thought_backend != "vllm":
        raise SystemExit("error: --vllm-arg applies to --thought-backend vllm")
    if args.thought_backend:
        options.update(thoughts=args.thought_backend)
        if args.vllm_arg:
            from o1e_pyserini.thinking import engine_options

            try:
                options["vllm_options"] = engine_options(args.vllm_arg)
            except ValueError as e:
                raise SystemExit(f"error: --vllm-arg: {e}") from None
    elif args.thoughts_file:
        options.update(thoughts="file", thoughts_file=str(args.thoughts_file))
    elif args.thought_server or args.thought_model:
        if not (args.thought_server and args.thought_model):
            raise SystemExit("error: --thought-server and --thought-model go together")
        options.update(thoughts="openai", thought_server=args.thought_server, thought_model=args.thought_model)
    options.update({name: getattr(args, name) for name in THOUGHT_FLAGS + QUERY_VECTOR_FLAGS + GROUNDING_FLAGS
                    if getattr(args, name) is not None})
    if args.retriever.startswith("o1e:") and args.mode != "fast" and not args.no_thought_cache:
        options["thought_cache"] = str(args.thought_cache)
    if args.retriever.startswith("debater:"):
        from o1e_pyserini.debater import task_instruction
        instruction = args.instruction if args.instruction is not None else task_instruction(args.dataset)
        options.update({"instruction": instruction} if instruction is not None else {})
    elif args.instruction is not None:
        raise SystemExit("error: --instruction applies to debater: retrievers")
    retriever = retrievers.RetrieverSpec(args.retriever, device=args.device, batch_size=args.batch_size,
                                         max_passage_length=args.max_passage_length, pooling=args.pooling,
                                         l2_norm=args.l2_norm, debater_scoring=args.debater_scoring, vector_dtype=args.vector_dtype,
                                         dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                                         query_options=options)
    try:
        retriever.validate()
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    adaptive = None
    if args.mode == "adaptive":
        try:
            adaptive = AdaptivePolicy(args.adaptive_signal, args.think_threshold, args.think_rate)
        except ValueError as e:
            raise SystemExit(f"error: {e} (--think-threshold or --think-rate)") from None
    elif args.think_threshold is not None or args.think_rate is not None:
        raise SystemExit("error: --think-threshold and --think-rate apply to --mode adaptive")
    if args.hybrid and retriever.is_lucene:
        raise SystemExit("error: --hybrid fuses a dense retriever's run with BM25's; the retriever is already bm25")
    if not 0 <= args.fusion_weight <= 1:
        raise SystemExit(f"error: --fusion-weight must be in [0, 1], got {args.fusion_weight}")
    return EvalConfig(args.dataset, retriever, args.data_dir, args.topics_dir, args.corpus, args.excluded_ids,
                      args.output_dir, args.index_root, args.hits, args.threads, args.metrics or [],
                      args.hybrid, args.fusion, args.fusion_weight, adaptive)


def _judged_parser(command: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand that scores runs: its judgments from --dataset (and the data flags) or --qrels, by --metric."""
    parser = argparse.ArgumentParser(prog=f"python -m o1e_pyserini.eval {command}", description=description)
    _add_data_args(parser, dataset_required=False)
    parser.add_argument("--qrels", type=Path, help="TREC qrels file (instead of --dataset)")
    parser.add_argument("--metric", default="nDCG@10")
    return parser


def _parse_judged(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if not (args.qrels or args.dataset):
        parser.error("give --dataset or --qrels")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    command = argv[0] if argv and argv[0] in ("ttest", "compare", "regress", "import-shards", "fuse",
                                              "adaptive-curve") else None
    if command == "adaptive-curve":
        parser = _judged_parser("adaptive-curve", "pick adaptive thresholds on training or dev queries, not test")
        parser.add_argument("--fast-run", type=Path, required=True)
        parser.add_argument("--think-run", type=Path, required=True)
        parser.add_argument("--fast-queries", type=Path, help="the fast run's thoughts.jsonl (model-entropy signal)")
        parser.add_argument("--think-queries", type=Path, help="the think run's thoughts.jsonl (generated tokens)")
        parser.add_argument("--output", type=Path, required=True, help="the curve as JSON")
        parser.add_argument("--plot", type=Path, help="and as a PNG")
        parser.add_argument("--target-gain", type=float, default=0.95,
                            help="operating point per signal: the fewest thinking queries that reach this share "
                                 "of always-think's gain over fast (its threshold goes to --think-threshold)")
        return _run_reporting_errors(_adaptive_curve, _parse_judged(parser, argv[1:]))
    if command == "fuse":
        parser = argparse.ArgumentParser(prog="python -m o1e_pyserini.eval fuse")
        parser.add_argument("--runs", type=Path, nargs="+", required=True, help="TREC run files (the dense one first)")
        _add_fusion_args(parser)
        parser.add_argument("--rrf-k", type=positive_int, default=60)
        parser.add_argument("--depth", type=positive_int, default=None, help="hits read from each run (default all)")
        parser.add_argument("--hits", type=positive_int, default=1000, help="hits kept per query")
        parser.add_argument("--output", type=Path, required=True)
        return _run_reporting_errors(_fuse_files, parser.parse_args(argv[1:]))
    if command == "compare":
        parser = argparse.ArgumentParser(prog="python -m o1e_pyserini.eval compare")
        parser.add_argument("--expected", type=Path, required=True)
        parser.add_argument("--results", type=Path, default=DEFAULT_OUTPUT)
        args = parser.parse_args(argv[1:])
        return _run_reporting_errors(compare, args.expected, args.results)
    if command == "ttest":
        parser = _judged_parser("ttest")
        parser.add_argument("--run-a", type=Path, required=True, help="baseline run")
        parser.add_argument("--run-b", type=Path, required=True)
        parser.add_argument("--output", type=Path, help="write the result (with per-query deltas) as JSON")
        parser.add_argument("--missing", choices=scoring.MISSING_QUERIES, default="error",
                            help="a judged query a run does not answer: error (default), zero (scores 0, as "
                                 "trec_eval -c) or drop (test the queries both runs answer)")
        return _run_reporting_errors(_ttest, _parse_judged(parser, argv[1:]))
    if command == "import-shards":
        parser = _eval_parser()
        parser.prog = "python -m o1e_pyserini.eval import-shards"
        parser.add_argument("--shards", type=Path, nargs="+", required=True,
                            help=".npz shards of o1e_tevatron.driver.encode (Tevatron .pkl with --allow-pickle)")
        parser.add_argument("--allow-pickle", action="store_true",
                            help="read Tevatron's pickled shards: loading a pickle runs any code it carries, so "
                                 "only for shards you made yourself")
        args = parser.parse_args(argv[1:])
        config = _config(args)
        return _run_reporting_errors(_import_shards, config, args.shards, args.allow_pickle)
    if command == "regress":
        parser = argparse.ArgumentParser(prog="python -m o1e_pyserini.eval regress")
        parser.add_argument("--regressions", type=Path, default=REGRESSIONS)
        parser.add_argument("--data-dir", type=Path, default=None)
        parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
        parser.add_argument("--index-root", type=Path, default=datasets.O1E_CACHE / "indexes")
        args = parser.parse_args(argv[1:])
        base = EvalConfig("", retrievers.RetrieverSpec("bm25"), data_dir=args.data_dir,
                          output_dir=args.output_dir, index_root=args.index_root)
        failures = []
        code = _run_reporting_errors(lambda: failures.extend(regress(args.regressions, base)))
        if code:
            return code
        for failure in failures:
            print(f"REGRESSION {failure}", file=sys.stderr)
        return 1 if failures else 0
    return _run_reporting_errors(evaluate, _config(_eval_parser().parse_args(argv)))


def _run_reporting_errors(function, *args) -> int:
    """``function(*args)`` inside the error boundary (``core.errors``): a known error (a missing dataset, a
    wrong file, an index of another model, a thought server's refusal) ends in one line and its exit
    code, returned here so that a caller of :func:`main` gets it too."""
    try:
        with one_line_errors():
            function(*args)
    except SystemExit as e:
        return e.code
    return 0


if __name__ == "__main__":
    run_command(main)
