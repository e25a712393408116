"""One evaluation command for BM25, any Pyserini dense encoder and O1E models.

    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever bm25 --data-dir ../shared/data
    python -m o1e_pyserini.eval --dataset o1e/cosqa/dev --retriever auto:sentence-transformers/all-MiniLM-L6-v2 --data-dir ../shared/data
    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever o1e:MODEL --mode think --num-thoughts 3
    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever repllama:castorini/repllama-v1-7b-lora-passage         --thought-server https://api.openai.com/v1 --thought-model gpt-4o-mini   # Table 4's separate generator
    python -m o1e_pyserini.eval ttest --dataset beir/scifact/test --data-dir ../shared/data --run-a A.trec --run-b B.trec
    python -m o1e_pyserini.eval compare --expected recipes/table2/expected.yaml --results runs/
    python -m o1e_pyserini.eval regress --data-dir ../shared/data
    python -m o1e_pyserini.eval --dataset beir/scifact/test --retriever auto:... --hybrid bm25 --fusion-weight 0.7
    python -m o1e_pyserini.eval fuse --runs dense.trec bm25.trec --fusion rrf --output hybrid.trec [--dataset D]
    python -m o1e_pyserini.eval adaptive-run --dataset D --fast-run F.trec --think-run T.trec --adaptive-signal margin \
        --think-threshold=-0.05 --output adaptive.trec      # adaptive thinking from runs already searched

Writes ``<output_dir>/<dataset>/<retriever>.trec``, ``….metrics.json`` (aggregate, per query and the
data-quality report), for thinking retrievers ``….queries/`` (``thoughts.jsonl`` + ``embedding.npz``,
reusable with ``--thoughts-file``) and prints one summary line. Indexes live under ``--index-root`` (default
``~/.cache/o1e/indexes``); each records the fingerprint of what it was built from (the model's files,
the corpus, the encoding settings) and is reused only when that fingerprint still matches.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from o1e_tevatron.core.errors import one_line_errors, run_command
from o1e_tevatron.core.redact import install_log_redaction

from ..arguments import positive_int
from ..thinking.adaptive import SIGNALS, AdaptivePolicy, uncertainties
from . import datasets, derived, retrievers, scoring
from .harness import DEFAULT_OUTPUT, GROUNDING_FLAGS, QUERY_VECTOR_FLAGS, THOUGHT_FLAGS, EvalConfig, evaluate, import_shards
from .regressions import REGRESSIONS, compare, regress


def _adaptive_curve(args) -> dict:
    """nDCG@10 (or ``--metric``) against the think-rate per signal, from a fast and a think run of one split."""
    from o1e_pyserini.thinking.adaptive import adaptive_curve, operating_points, plot_curve

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
    from o1e_pyserini.search.fusion import fuse

    fused = fuse([scoring.read_run(path) for path in args.runs], args.fusion, args.fusion_weight, args.rrf_k,
                 depth=args.depth, k=args.hits)
    if args.dataset or args.qrels:  # scored, with the first (dense) run's cost: the harness's --hybrid record
        dense = derived.record_of_run(args.runs[0])
        record = derived.write_scored(
            fused, args.output, _dataset_qrels(args), args.dataset, derived.dataset_metrics(args.dataset, args.metric),
            derived_from={"runs": [str(path) for path in args.runs]},
            fusion={"with": [str(path) for path in args.runs[1:]], "method": args.fusion, "weight": args.fusion_weight},
            cost={**((dense or {}).get("cost") or {}), "derived_from_runs": True})
        print(f"wrote {args.output}: {args.metric}={record['metrics'][args.metric]:.4f} ({record['num_queries']} queries)")
        return
    scoring.write_run(fused, args.output, tag=f"fused-{args.fusion}")
    print(f"wrote {args.output} ({len(fused)} queries, {args.fusion} of {len(args.runs)} runs)")


def _adaptive_run(args) -> None:
    """The harness's --mode adaptive, from a fast and a think run already searched."""
    policy = AdaptivePolicy(args.adaptive_signal, threshold=args.think_threshold, rate=args.think_rate)
    if args.adaptive_signal == "model-entropy" and not args.fast_queries:
        raise ValueError("--adaptive-signal model-entropy reads the fast run's thoughts.jsonl: give --fast-queries")
    entropy = _thoughts_field(args.fast_queries, "entropy") if args.adaptive_signal == "model-entropy" else None
    run, decisions = derived.adaptive_run(scoring.read_run(args.fast_run), scoring.read_run(args.think_run), policy,
                                          entropy)
    tokens = _thoughts_field(args.think_queries, "generated_tokens") if args.think_queries else None
    record = derived.write_scored(
        run, args.output, _dataset_qrels(args), args.dataset, derived.dataset_metrics(args.dataset, args.metric),
        derived_from={"fast": str(args.fast_run), "think": str(args.think_run)},
        cost=derived.adaptive_cost(derived.record_of_run(args.fast_run), derived.record_of_run(args.think_run),
                                   decisions, tokens),
        adaptive={**policy.__dict__, "decisions": decisions})
    print(f"wrote {args.output}: {args.metric}={record['metrics'][args.metric]:.4f}, "
          f"{record['cost']['queries_thought']}/{len(decisions)} queries thought")


def _add_fast_and_think_runs(parser: argparse.ArgumentParser) -> None:
    """adaptive-curve's and adaptive-run's inputs: one model's fast and think runs of the same queries."""
    parser.add_argument("--fast-run", type=Path, required=True)
    parser.add_argument("--think-run", type=Path, required=True, help="searched with the same model, thinking")
    parser.add_argument("--fast-queries", type=Path, help="the fast run's thoughts.jsonl (model-entropy signal)")
    parser.add_argument("--think-queries", type=Path, help="the think run's thoughts.jsonl (generated tokens)")


def _add_fusion_args(parser: argparse.ArgumentParser) -> None:
    from o1e_pyserini.search.fusion import FUSIONS

    parser.add_argument("--fusion", choices=FUSIONS, default="interpolation",
                        help="interpolation of per-query min-max normalised scores, or reciprocal rank fusion")
    parser.add_argument("--fusion-weight", type=float, default=0.5,
                        help="interpolation: the first (dense) run's weight; pick it on training or dev queries")


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


def _default_threads() -> int:
    """The process's OpenMP budget: faiss sets it for torch too, so a larger default would oversubscribe a job
    given OMP_NUM_THREADS (two jobs side by side, a cluster slot)."""
    budget = os.environ.get("OMP_NUM_THREADS", "")
    return int(budget) if budget.isdigit() and int(budget) > 0 else min(8, os.cpu_count() or 1)


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
    parser.add_argument("--threads", type=positive_int, default=_default_threads(),
                        help="search and Lucene indexing threads (default: $OMP_NUM_THREADS, else up to 8 cores)")
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
    hybrid = parser.add_argument_group("hybrid (o1e_pyserini.search.fusion)")
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
            from o1e_pyserini.thinking.backends import engine_options

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
        from o1e_pyserini.encoders.debater import task_instruction
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
                                              "adaptive-curve", "adaptive-run") else None
    if command == "adaptive-curve":
        parser = _judged_parser("adaptive-curve", "pick adaptive thresholds on training or dev queries, not test")
        _add_fast_and_think_runs(parser)
        parser.add_argument("--output", type=Path, required=True, help="the curve as JSON")
        parser.add_argument("--plot", type=Path, help="and as a PNG")
        parser.add_argument("--target-gain", type=float, default=0.95,
                            help="operating point per signal: the fewest thinking queries that reach this share "
                                 "of always-think's gain over fast (its threshold goes to --think-threshold)")
        return _run_reporting_errors(_adaptive_curve, _parse_judged(parser, argv[1:]))
    if command == "adaptive-run":
        parser = _judged_parser("adaptive-run", "adaptive thinking from a fast and a think run already searched "
                                                "(o1e_pyserini.evaluation.derived): no query is encoded again")
        _add_fast_and_think_runs(parser)
        parser.add_argument("--adaptive-signal", choices=SIGNALS, default="margin")
        policy = parser.add_mutually_exclusive_group(required=True)
        policy.add_argument("--think-threshold", type=float, help="think where the uncertainty is at least this")
        policy.add_argument("--think-rate", type=float, help="think for the most uncertain share of the queries")
        parser.add_argument("--output", type=Path, required=True, help="the run (its .metrics.json goes beside it)")
        return _run_reporting_errors(_adaptive_run, _parse_judged(parser, argv[1:]))
    if command == "fuse":
        parser = _judged_parser("fuse")
        parser.add_argument("--runs", type=Path, nargs="+", required=True, help="TREC run files (the dense one first)")
        _add_fusion_args(parser)
        parser.add_argument("--rrf-k", type=positive_int, default=60)
        parser.add_argument("--depth", type=positive_int, default=None, help="hits read from each run (default all)")
        parser.add_argument("--hits", type=positive_int, default=1000, help="hits kept per query")
        parser.add_argument("--output", type=Path, required=True,
                            help="the fused run; with --dataset or --qrels, scored, its .metrics.json beside it")
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
        return _run_reporting_errors(import_shards, config, args.shards, args.allow_pickle)
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
