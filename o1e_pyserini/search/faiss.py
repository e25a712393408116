"""python -m o1e_pyserini.search.faiss: Pyserini's own ``pyserini.search.faiss`` with o1e's query encoders.

Every Pyserini flag works as documented by Pyserini (--index, --topics with a name or a local TSV,
--output, --batch-size, --threads, --hits, --device, --encoded-queries, ...). The ``--o1e-*`` flags
below are taken out of the command line before Pyserini parses it. A family's encoder is used when
``--encoder`` is its checkpoint (a folder whose o1e_config.json names the family: O1E or DEBATER, or
a release in its authors' layout: DEBATER's llm2vec adapter, the O1 Embedder authors'; MiniCPM bases
need ``--o1e-trust-remote-code``), when its path contains the family's name, or with ``--encoder-class
o1e`` / ``--encoder-class debater``.
For DEBATER, Pyserini's ``--query-prefix`` is the query instruction, and ``--debater-scoring
max-steps`` searches an index of M step vectors per passage (``o1e_tevatron.driver.encode
--debater_scoring max-steps``) keeping each passage's best step.

    python -m o1e_pyserini.search.faiss --index corpus-index --topics queries.tsv --output run.txt \\
        --encoder ckpt --batch-size 16 --o1e-mode think --o1e-num-thoughts 3 --o1e-save-queries q-enc

Before the search, the index directory is checked (it exists, vector count = docid count, and the
index dimension = the encoder's), ``--hits`` is at least 1, and a local topics file is checked line by
line (UTF-8, ``id<TAB>text`` with one tab, no blank line before the last query, no empty query, no
repeated id), naming the file and line. A topics file that starts with a UTF-8 byte-order mark is
searched from a copy without it (Anserini's topic readers fail on it); the file itself is left alone.

``--o1e-mode adaptive`` searches every query fast, then searches again thinking only the queries whose
fast result looks uncertain (``--o1e-adaptive-signal`` with ``--o1e-think-threshold`` or
``--o1e-think-rate``; o1e_pyserini.thinking.adaptive), one model for both passes; their hits replace the fast ones
in ``--output``, and ``--o1e-save-queries`` records each query's decision.

``--o1e-hybrid-index`` fuses the dense run (any mode) with Pyserini's BM25 over that Lucene index (a
directory or a prebuilt index name) for the same topics: ``--o1e-fusion interpolation`` of per-query
min-max normalised scores with ``--o1e-fusion-weight`` the dense share, or ``rrf``
(o1e_pyserini.search.fusion). ``--output`` gets the fused run; the dense and BM25 runs stay beside it as
``OUTPUT.dense`` and ``OUTPUT.bm25``.

``--index`` may also be a sharded index (``o1e_pyserini.search.sharded``): the directory holding the
shard directories that ``o1e_tevatron.driver.encode --encode_num_shard n --faiss_index_dir DIR/i``
wrote (all n must be there) or the eval harness's imported shards. It is searched shard by shard
and merged exactly, without building one merged index; on GPUs (``--faiss-device cuda``) with
faiss's own multi-GPU sharding.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import runpy
import sys
import tempfile

import o1e_pyserini  # noqa: F401  (prepares Java before Pyserini starts it)
from o1e_tevatron.core.fingerprint import O1E_CACHE
from o1e_tevatron.core.errors import run_command
from o1e_tevatron.core.redact import install_log_redaction
from o1e_tevatron.families.debater.model import SCORINGS, DebaterConfig
from o1e_tevatron.core.encoding import check_index_dir

from ..arguments import positive_int
from ..encoders.debater import DebaterQueryEncoder
from ..thinking.adaptive import SIGNALS, AdaptivePolicy, uncertainties
from .fusion import FUSIONS
from ..encoders.o1e import (MODES, QUERY_VECTORS, THOUGHT_BACKENDS, O1EInputError, O1EQueryEncoder, check_queries, ids_by_text,
                       load_encoded_queries)
from ..encoders.registry import register, registry_keys
from ..thinking.backends import engine_options
from . import topics
from .topics import with_flag
from .sharded import ShardedIndex, is_sharded, shard_dirs, sharded_searcher_class

logger = logging.getLogger(__name__)


def o1e_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--o1e-mode", choices=MODES, default="think",
                   help="think (k thoughts, eq. 11), fast (plain query) or adaptive (fast, then think where uncertain)")
    p.add_argument("--o1e-adaptive-signal", choices=SIGNALS, default="margin",
                   help="adaptive: margin (top-1 minus top-2 fast score), score-entropy, or model-entropy at <thought>")
    p.add_argument("--o1e-think-threshold", type=float, default=None,
                   help="adaptive: think when the signal's uncertainty is at least this")
    p.add_argument("--o1e-think-rate", type=float, default=None,
                   help="adaptive: the fraction of queries that think (the most uncertain ones)")
    p.add_argument("--o1e-num-thoughts", type=positive_int, default=3)
    p.add_argument("--o1e-temperature", type=float, default=0.1)
    p.add_argument("--o1e-top-p", type=float, default=0.9)
    p.add_argument("--o1e-max-thought-tokens", type=positive_int, default=128)
    p.add_argument("--o1e-seed", type=int, default=None)
    p.add_argument("--o1e-reencode", action="store_true", help="re-encode q + t instead of reading the <emb> "
                   "state from the generation's KV cache")
    p.add_argument("--o1e-query-vector", choices=QUERY_VECTORS, default="thoughts",
                   help="think mode: the mean of the thought vectors (eq. 11) or with the plain query in it (HyDE)")
    p.add_argument("--o1e-renormalize", action="store_true", help="think mode: scale the mean to unit length")
    p.add_argument("--o1e-thought-cache", default=str(O1E_CACHE / "thoughts"),
                   help="keep and reuse seeded (or greedy) thoughts here, keyed by content (default $O1E_CACHE/thoughts)")
    p.add_argument("--o1e-no-thought-cache", action="store_true", help="generate every thought afresh")
    p.add_argument("--o1e-thoughts", choices=THOUGHT_BACKENDS, default="hf")
    p.add_argument("--o1e-vllm-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="--o1e-thoughts vllm: a vllm.LLM option (e.g. tensor_parallel_size=2); repeatable")
    p.add_argument("--o1e-thought-server", help="base URL of an OpenAI-compatible server (--o1e-thoughts openai)")
    p.add_argument("--o1e-thought-model", help="model name on that server")
    p.add_argument("--o1e-thoughts-file", help="thoughts.jsonl of an earlier run (--o1e-thoughts file)")
    p.add_argument("--o1e-grounding-index", help="think from the query's top BM25 passages (Pyserini's LuceneSearcher) "
                   "over this Lucene index of the corpus (a folder or a prebuilt name): needed by checkpoints trained "
                   "with --grounding_passages, optional with --o1e-thoughts openai")
    p.add_argument("--o1e-grounding-passages", type=positive_int, default=3,
                   help="--o1e-thoughts openai: passages in its prompt (a checkpoint uses its own count)")
    p.add_argument("--o1e-dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--o1e-encode-batch-size", type=positive_int, default=16, help="queries per forward on the device")
    p.add_argument("--o1e-base-model", help="where the base model of an adapter checkpoint lives now")
    p.add_argument("--o1e-trust-remote-code", action="store_true", help="run the Python code the model folder ships "
                   "(MiniCPM, the base of DEBATER's release, needs it); only for models you trust")
    p.add_argument("--o1e-save-queries", help="write embedding.npz (for --encoded-queries) and thoughts.jsonl here")
    p.add_argument("--o1e-allow-pickle", action="store_true", help="let --encoded-queries read Pyserini's "
                   "embedding.pkl: loading a pickle runs any code it carries, so only for files you made yourself")
    p.add_argument("--o1e-hybrid-index", help="fuse the dense run with Pyserini BM25 over this Lucene index "
                   "(a directory or a prebuilt index name)")
    p.add_argument("--o1e-fusion", choices=FUSIONS, default="interpolation",
                   help="hybrid: interpolation of per-query min-max normalised scores, or reciprocal rank fusion")
    p.add_argument("--o1e-fusion-weight", type=float, default=0.5, help="hybrid interpolation: the dense run's share")
    p.add_argument("--o1e-rrf-k", type=positive_int, default=60, help="hybrid rrf: the rank constant")
    p.add_argument("--o1e-bm25-k1", type=float, default=None, help="hybrid: BM25 k1 (Pyserini's default 0.9)")
    p.add_argument("--o1e-bm25-b", type=float, default=None, help="hybrid: BM25 b (Pyserini's default 0.4)")
    p.add_argument("--debater-scoring", choices=SCORINGS, default="last",
                   help="DEBATER: last (one vector per passage) or max-steps (an index with M vectors per passage, "
                        "each passage's id repeated; the run keeps each passage's best step, --hits deep)")
    return p


def pyserini_inputs_parser() -> argparse.ArgumentParser:
    """The few Pyserini flags o1e looks at (Pyserini itself parses them all again)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--index")
    p.add_argument("--topics")
    p.add_argument("--topics-format", default="default")
    p.add_argument("--output")
    p.add_argument("--encoded-queries")
    p.add_argument("--encoder")
    p.add_argument("--hits", type=positive_int, default=1000)
    p.add_argument("--threads", default=None)
    p.add_argument("--batch-size", default=None)
    return p


def read_topics(topics_name: str, topics_format: str) -> tuple[list[str], list[str]]:
    """(ids, texts) of the topics. Local TSV files are read by o1e's reader: Pyserini's Java reader rejects
    a whole file with an empty query without saying which, and searches a line with a second tab as other text."""
    if topics.is_local(topics_name):
        local = topics.read_local(topics_name)
        return list(local), list(local.values())
    from pyserini.query_iterator import TopicsFormat, get_query_iterator

    read = get_query_iterator(topics_name, TopicsFormat(topics_format)).topics
    return [str(i) for i in read], [t["title"] if isinstance(t, dict) else t for t in read.values()]


def checked_index_path(index: str) -> str | None:
    """The index directory, or None for a Pyserini prebuilt index name; a path that does not exist is an error."""
    if os.path.isdir(index):
        return index
    if os.path.exists(index) or os.sep in index or index.startswith(("~", ".")):
        raise O1EInputError(f"--index {index}: no such index directory (a faiss index directory holds "
                            "'index' and 'docid'; o1e_tevatron.driver.encode --faiss_index_dir writes one)")
    return None


def query_ids_by_text(topics_name: str, topics_format: str) -> dict[str, list[str]]:
    """Checks the topics for empty queries and maps each query text to its ids."""
    ids, texts = read_topics(topics_name, topics_format)
    check_queries(texts, ids)
    return ids_by_text(dict(zip(ids, texts)))


def checked_index_dir(index_dir: str, dimension: int | None = None) -> None:
    try:
        if not is_sharded(index_dir):
            check_index_dir(index_dir, dimension)
            return
        index = ShardedIndex(shard_dirs(index_dir), gpu=False)  # each shard's count checked against its docid
        if dimension is not None and index.d != dimension:
            raise ValueError(f"{index_dir}: the shards hold {index.d}-d vectors but the encoder makes {dimension}-d "
                             "vectors: search with the model the corpus was encoded with")
    except (ValueError, RuntimeError) as e:
        raise O1EInputError(str(e)) from e


def read_encoded_queries_safely(allow_pickle: bool) -> None:
    """Pyserini's --encoded-queries unpickles ``embedding.pkl``; here it reads o1e's ``embedding.npz``, and a
    pickle only with --o1e-allow-pickle."""
    from pyserini.encode import QueryEncoder

    QueryEncoder._load_embeddings = staticmethod(functools.partial(load_encoded_queries, allow_pickle=allow_pickle))


def build_query_encoder(opts: argparse.Namespace, index_dir: str | None, built: list, **pyserini_kwargs):
    encoder = O1EQueryEncoder(
        mode=opts.o1e_mode, num_thoughts=opts.o1e_num_thoughts, temperature=opts.o1e_temperature,
        top_p=opts.o1e_top_p, max_new_tokens=opts.o1e_max_thought_tokens, seed=opts.o1e_seed,
        fused=not opts.o1e_reencode, thoughts=opts.o1e_thoughts, thought_server=opts.o1e_thought_server,
        thought_model=opts.o1e_thought_model, thoughts_file=opts.o1e_thoughts_file, dtype=opts.o1e_dtype,
        batch_size=opts.o1e_encode_batch_size, base_model_name_or_path=opts.o1e_base_model,
        query_vector=opts.o1e_query_vector, renormalize=opts.o1e_renormalize,
        thought_cache=None if opts.o1e_no_thought_cache else opts.o1e_thought_cache,
        trust_remote_code=opts.o1e_trust_remote_code, grounding_index=opts.o1e_grounding_index,
        grounding_passages=opts.o1e_grounding_passages, vllm_options=engine_options(opts.o1e_vllm_arg),
        **pyserini_kwargs)
    return checked_encoder(encoder, index_dir, built)


def build_debater_query_encoder(opts: argparse.Namespace, index_dir: str | None, built: list, **pyserini_kwargs):
    """Pyserini's --query-prefix is the query instruction (default: the checkpoint's)."""
    encoder = DebaterQueryEncoder(dtype=opts.o1e_dtype, batch_size=opts.o1e_encode_batch_size,
                                  base_model_name_or_path=opts.o1e_base_model,
                                  trust_remote_code=opts.o1e_trust_remote_code, **pyserini_kwargs)
    return checked_encoder(encoder, index_dir, built)


def checked_encoder(encoder, index_dir: str | None, built: list):
    if index_dir is not None:
        checked_index_dir(index_dir, encoder.dimension)
    built.append(encoder)
    return encoder


def max_steps_args(rest: list[str], encoder: str | None, hits: int) -> list[str]:
    """Pyserini's own max-passage output for a max-steps index: ``hits * M`` rows searched (which hold at
    least ``hits`` passages), each passage kept once at its best step, ``hits`` passages written."""
    if not encoder:
        raise O1EInputError("--debater-scoring max-steps needs --encoder (a DEBATER checkpoint: it gives M)")
    steps = DebaterConfig.load(encoder).num_steps
    rest = [arg for arg in rest if not arg.startswith("--hits=")]
    if "--hits" in rest:
        at = rest.index("--hits")
        del rest[at:at + 2]
    return rest + ["--hits", str(hits * steps), "--max-passage", "--max-passage-delimiter=",
                   "--max-passage-hits", str(hits)]


def adaptive_policy(opts: argparse.Namespace, inputs: argparse.Namespace) -> AdaptivePolicy | None:
    if opts.o1e_mode != "adaptive":
        if opts.o1e_think_threshold is not None or opts.o1e_think_rate is not None:
            raise O1EInputError("--o1e-think-threshold and --o1e-think-rate apply to --o1e-mode adaptive")
        return None
    if not (inputs.topics and inputs.output) or inputs.encoded_queries:
        raise O1EInputError("--o1e-mode adaptive searches twice: it needs --topics and --output, "
                            "and encodes the queries itself (no --encoded-queries)")
    try:
        return AdaptivePolicy(opts.o1e_adaptive_signal, opts.o1e_think_threshold, opts.o1e_think_rate)
    except ValueError as e:
        raise O1EInputError(f"{e} (--o1e-think-threshold or --o1e-think-rate)") from None


def run_pyserini(rest: list[str], module: str = "pyserini.search.faiss") -> None:
    sys.argv = [module] + rest
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def checked_hybrid(opts: argparse.Namespace, inputs: argparse.Namespace) -> None:
    if not opts.o1e_hybrid_index:
        return
    if not (inputs.topics and inputs.output):
        raise O1EInputError("--o1e-hybrid-index searches BM25 for the same queries: it needs --topics and --output")
    if not 0 <= opts.o1e_fusion_weight <= 1:
        raise O1EInputError(f"--o1e-fusion-weight must be in [0, 1], got {opts.o1e_fusion_weight}")
    index = opts.o1e_hybrid_index
    if not os.path.isdir(index) and (os.path.exists(index) or os.sep in index or index.startswith(("~", "."))):
        raise O1EInputError(f"--o1e-hybrid-index {index}: no such Lucene index directory "
                            "(python -m pyserini.index.lucene builds one; or name a Pyserini prebuilt index)")


def fuse_with_bm25(opts: argparse.Namespace, inputs: argparse.Namespace) -> None:
    """The hybrid: Pyserini's BM25 for the same topics, fused with the dense run now in ``--output``."""
    from ..evaluation.scoring import read_run, write_run
    from .fusion import fuse

    dense, bm25 = inputs.output + ".dense", inputs.output + ".bm25"
    os.replace(inputs.output, dense)
    lucene = ["--index", opts.o1e_hybrid_index, "--topics", inputs.topics, "--topics-format", inputs.topics_format,
              "--output", bm25, "--hits", str(inputs.hits), "--bm25"]
    for flag, value in (("--k1", opts.o1e_bm25_k1), ("--b", opts.o1e_bm25_b), ("--threads", inputs.threads),
                        ("--batch-size", inputs.batch_size)):
        lucene += [flag, str(value)] if value is not None else []
    run_pyserini(lucene, "pyserini.search.lucene")
    fused = fuse([read_run(dense), read_run(bm25)], opts.o1e_fusion, opts.o1e_fusion_weight, opts.o1e_rrf_k,
                 k=inputs.hits)
    write_run(fused, inputs.output, tag=f"o1e-hybrid-{opts.o1e_fusion}")
    logger.info("hybrid: %s of %s and BM25 (%s) written to %s", opts.o1e_fusion, dense, bm25, inputs.output)


def think_where_uncertain(policy: AdaptivePolicy, rest: list[str], output: str, ids_by_text: dict,
                          encoder: O1EQueryEncoder) -> dict[str, dict]:
    """The second pass of adaptive mode: the fast run in ``output`` decides which queries think; those are
    searched again thinking (same encoder) and their hits replace the fast ones in ``output``."""
    import tempfile

    from ..evaluation.scoring import read_run, write_run

    fast = read_run(output)
    text_of = {query_id: text for text, query_ids in ids_by_text.items() for query_id in query_ids}
    entropy = dict(zip(encoder.encoded.texts, encoder.encoded.entropy))
    decisions = policy.decide(uncertainties(policy.signal, {q: fast.get(q, []) for q in text_of},
                                            {q: entropy.get(text) for q, text in text_of.items()}))
    thinking = [q for q in text_of if decisions[q]["think"]]
    logger.info("adaptive (%s): %d of %d queries think", policy.signal, len(thinking), len(text_of))
    if thinking:
        encoder.think_now = True
        with tempfile.TemporaryDirectory(prefix="o1e-adaptive-") as tmp:
            thinking_topics, thought_run = os.path.join(tmp, "topics.tsv"), os.path.join(tmp, "run.trec")
            with open(thinking_topics, "w", encoding="utf-8") as f:
                f.writelines(f"{q}\t{text_of[q]}\n" for q in thinking)
            run_pyserini(with_flag(with_flag(rest, "--topics", thinking_topics), "--output", thought_run))
            fast.update(read_run(thought_run))
        write_run(fast, output, tag="o1e-adaptive")
    return decisions


def main(argv: list[str] | None = None) -> list:
    """Runs Pyserini's search; returns the o1e encoders it built (empty when Pyserini used another)."""
    with tempfile.TemporaryDirectory(prefix="o1e-search-") as scratch:
        return search(argv, scratch)


def search(argv: list[str] | None, scratch: str) -> list:
    """:func:`main`, with ``scratch`` for the files it passes on to Pyserini in place of the user's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):  # o1e's own flags first, then Pyserini's help
        parser = o1e_parser()
        parser.prog, parser.usage = "python -m o1e_pyserini.search.faiss", "%(prog)s [Pyserini's flags] [o1e's flags]"
        parser.print_help()
        print("\nPyserini's flags (pyserini.search.faiss):")
    opts, rest = o1e_parser().parse_known_args(argv)
    rest, keys = registry_keys(rest)
    inputs, _ = pyserini_inputs_parser().parse_known_args(rest)
    policy = adaptive_policy(opts, inputs)
    checked_hybrid(opts, inputs)
    index_dir = checked_index_path(inputs.index) if inputs.index else None
    if index_dir is not None:
        checked_index_dir(index_dir)
    ids_by_text = query_ids_by_text(inputs.topics, inputs.topics_format) if inputs.topics else {}
    if inputs.topics:
        inputs.topics = topics.for_pyserini(inputs.topics, scratch)
        rest = with_flag(rest, "--topics", inputs.topics)

    if opts.debater_scoring == "max-steps":
        rest = max_steps_args(rest, inputs.encoder, inputs.hits)
    built: list = []

    def o1e_encoder(**kwargs):  # adaptive mode's second pass reuses the first pass's model
        return built[0] if built else build_query_encoder(opts, index_dir, built, **kwargs)

    register(keys, query_encoders={
        "o1e": o1e_encoder,
        "debater": functools.partial(build_debater_query_encoder, opts, index_dir, built)})

    read_encoded_queries_safely(opts.o1e_allow_pickle)
    import pyserini.search.faiss._searcher as pyserini_searcher
    pyserini_searcher.FaissSearcher = sharded_searcher_class()  # also opens sharded index directories
    run_pyserini(rest)
    decisions = None
    if policy is not None:
        if not (built and isinstance(built[0], O1EQueryEncoder)):
            raise O1EInputError("--o1e-mode adaptive needs an o1e encoder (--encoder an O1E checkpoint)")
        decisions = think_where_uncertain(policy, rest, inputs.output, ids_by_text, built[0])
    if opts.o1e_hybrid_index:
        fuse_with_bm25(opts, inputs)

    for encoder in built:
        if not isinstance(encoder, O1EQueryEncoder):
            continue
        if encoder.empty_thoughts:
            logger.warning("%d thoughts were empty", encoder.empty_thoughts)
        if encoder.cache is not None:
            logger.info("thought cache %s: thoughts of %d queries reused, %d generated", encoder.cache.path,
                        encoder.cache_hits, sum(bool(t) for t in encoder.encoded.thoughts) - encoder.cache_hits)
        if opts.o1e_save_queries:
            encoder.encoded.save(opts.o1e_save_queries, ids_by_text, decisions)
    return built

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    install_log_redaction()
    run_command(main)
