"""The harness behind ``python -m o1e_pyserini.eval``'s default command: index a dataset's corpus with a
retriever (cached by content), search its topics (thinking where asked), score the run and write
``<output_dir>/<dataset>/<retriever>.trec`` and ``.metrics.json`` (see :mod:`o1e_pyserini.evaluation.cli`)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from o1e_tevatron.core.fingerprint import path_fingerprint
from o1e_tevatron.core.redact import redact

from ..thinking.adaptive import AdaptivePolicy, uncertainties
from . import datasets, retrievers, scoring

logger = logging.getLogger("o1e_pyserini.eval")

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
    hybrid: str | None = None  # "bm25": fuse the run with BM25's (o1e_pyserini.search.fusion)
    fusion: str = "interpolation"
    fusion_weight: float = 0.5  # the dense run's share under interpolation
    adaptive: AdaptivePolicy | None = None  # o1e --mode adaptive: which queries think


def slug(text: str) -> str:
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

    run_dir = config.output_dir / slug(config.dataset)
    run_path = scoring.write_run(run, run_dir / f"{run_name}.trec", tag=run_name)
    encoded = getattr(query_encoder, "encoded", None)
    if encoded is not None and (any(encoded.thoughts) or any(e is not None for e in encoded.entropy)):
        # thoughts (or the fast pass's entropy) + vectors, to re-score without generating
        from o1e_pyserini.encoders.o1e import ids_by_text
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
    from o1e_pyserini.search.fusion import fuse

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
    return slug("-".join(parts))


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


def import_shards(config: EvalConfig, shards: list[Path], allow_pickle: bool) -> None:
    index_dir = _index_dir(config)
    content_key = _content_key(config, datasets.load(config.dataset, config.data_dir, config.topics_dir, config.corpus))
    if retrievers.reusable_index(index_dir, content_key):
        print(f"reusing {index_dir}")
    else:
        retrievers.import_shards(config.retriever, shards, index_dir, content_key, allow_pickle)
        print(f"indexed {len(retrievers.read_docids(index_dir))} passages into {index_dir}")
