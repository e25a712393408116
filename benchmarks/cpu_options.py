"""CPU options for running a trained O1E checkpoint without a GPU, each against float32 with torch's
default threads and batch 32: the compute dtype (bfloat16; int8 dynamic quantization of the decoder's
Linear layers), the number of torch threads, and the batch size. For each option:

* passages/s and queries/s (fast mode) on a small sample, options interleaved over repeats (medians);
* the smallest cosine of a passage or query vector to the float32 reference's;
* nDCG@10 on SciFact test over a corpus slice (every judged passage plus the first ``--slice-docs``
  others; the full 5,183-passage corpus takes ~20 minutes per option in float32 on 2 cores), for the
  options whose vectors move (min cosine below ``--ndcg-below``); the others score as the reference
  up to ties.

    .venv/bin/python -m benchmarks.cpu_options --checkpoint runs/mini/model-b
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np

from benchmarks.common import SHARED_DATA, emit, median


def int8_copy(model):
    """The model with its decoder's Linear layers dynamically quantized to int8 (CPU)."""
    import torch

    quantized = copy.deepcopy(model)
    torch.ao.quantization.quantize_dynamic(quantized.causal_lm, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return quantized


def scifact_slice(slice_docs: int):
    """(doc ids, passage texts, query ids, query texts, qrels) of SciFact test over a corpus slice."""
    from o1e_pyserini.evaluation.datasets import load
    from o1e_tevatron.core.rows import passage_text

    dataset = load("beir/scifact/test", data_dir=SHARED_DATA)
    qrels = list(dataset.qrels_iter())
    judged = {q.doc_id for q in qrels}
    ids, texts, unjudged = [], [], 0
    for doc in dataset.docs_iter():
        if doc.doc_id in judged or unjudged < slice_docs:
            unjudged += doc.doc_id not in judged
            ids.append(doc.doc_id)
            texts.append(passage_text(getattr(doc, "title", ""), doc.text))
    queries = [q for q in dataset.queries_iter() if q.query_id in {r.query_id for r in qrels}]
    return ids, texts, [q.query_id for q in queries], [q.text for q in queries], qrels


def ndcg_at_10(query_vectors, doc_vectors, query_ids, doc_ids, qrels) -> float:
    """Scored as the eval harness scores its runs (o1e_pyserini.evaluation.scoring), 100 hits deep."""
    from o1e_pyserini.evaluation import scoring

    scores = query_vectors @ doc_vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {qid: [(doc_ids[j], float(scores[i, j])) for j in row] for i, (qid, row) in enumerate(zip(query_ids, top))}
    values = scoring.per_query(run, scoring.qrels_dict(qrels), ["nDCG@10"])
    return round(scoring.aggregate(values, ["nDCG@10"])["nDCG@10"], 4)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/mini/model-b", help="a trained O1E checkpoint")
    p.add_argument("--sample", type=int, default=32, help="passages and queries timed per option and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="the fewer-threads option")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 64])
    p.add_argument("--slice-docs", type=int, default=700, help="unjudged SciFact passages in the nDCG slice")
    p.add_argument("--ndcg-below", type=float, default=0.99999, help="score options whose min cosine is below")
    args = p.parse_args(argv)

    import torch

    import o1e_pyserini  # noqa: F401  (sets up Java before pyserini)
    from o1e_pyserini.encoders.base import load_family_model
    from o1e_tevatron.core.encoding import encode_sequences
    from o1e_tevatron.families.o1e.model import O1EModel

    model = load_family_model(O1EModel, args.checkpoint, "cpu", "float32", False, None)
    default_threads = torch.get_num_threads()
    # option -> (model, threads, batch size)
    options = {"float32": (model, default_threads, 32),
               "bfloat16": (copy.deepcopy(model).to(torch.bfloat16), default_threads, 32),
               "int8_dynamic": (int8_copy(model), default_threads, 32),
               f"threads_{args.threads}": (model, args.threads, 32),
               **{f"batch_{b}": (model, default_threads, b) for b in args.batch_sizes}}
    doc_ids, passages, query_ids, queries, qrels = scifact_slice(args.slice_docs)
    t = model.template
    passage_rows = [t.passage(x) for x in t.tokenize_batch(passages)]
    query_rows = [t.plain_query(x) for x in t.tokenize_queries(queries)]

    def encode(name, rows, query):
        option_model, threads, batch = options[name]
        torch.set_num_threads(threads)
        try:
            vectors = encode_sequences(option_model, rows, batch, query=query)
        finally:
            torch.set_num_threads(default_threads)
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)

    sample = {"passages": passage_rows[:args.sample], "queries": query_rows[:args.sample]}
    seconds = {name: {kind: [] for kind in sample} for name in options}
    names = list(options)
    for name in names:  # warm-up
        encode(name, sample["queries"][:2], True)
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            for kind, rows in sample.items():
                t0 = time.perf_counter()
                encode(name, rows, kind == "queries")
                seconds[name][kind].append(time.perf_counter() - t0)

    reference = {kind: encode("float32", rows, kind == "queries") for kind, rows in sample.items()}
    results = {}
    full_reference = None
    for name in names:
        cosine = min(float((encode(name, rows, kind == "queries") * reference[kind]).sum(1).min())
                     for kind, rows in sample.items())
        row = {f"{kind}_per_s": round(len(sample[kind]) / median(seconds[name][kind]), 2) for kind in sample}
        row["speed_over_float32"] = round(median(seconds["float32"]["passages"]) / median(seconds[name]["passages"]), 2)
        row["min_cosine_to_float32"] = round(cosine, 6)
        if name == "float32" or cosine < args.ndcg_below:
            t0 = time.perf_counter()
            doc_vectors = encode(name, passage_rows, False)
            query_vectors = encode(name, query_rows, True)
            row["ndcg@10_slice"] = ndcg_at_10(query_vectors, doc_vectors, query_ids, doc_ids, qrels)
            row["slice_seconds"] = round(time.perf_counter() - t0, 1)
            if name == "float32":
                full_reference = doc_vectors
            else:
                row["min_cosine_to_float32_slice"] = round(float((doc_vectors * full_reference).sum(1).min()), 6)
        results[name] = row
        print(name, row, file=sys.stderr, flush=True)

    emit("cpu_options", {"options": results, "slice": {"passages": len(doc_ids), "queries": len(query_ids),
                                                       "judged_passages": len({q.doc_id for q in qrels})},
                         "all_seconds": seconds}, **vars(args))


if __name__ == "__main__":
    main()
