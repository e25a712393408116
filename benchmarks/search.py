"""Search throughput: exact inner product (faiss IndexFlatIP) and HNSW (IndexHNSWFlat, inner product)
on one corpus of unit vectors, with HNSW's recall@10 against the exact top 10.

Corpus: ``--vectors`` (a .npy of document vectors, e.g. from an encoded corpus) or a synthetic
clustered set of unit vectors (``--num-docs`` x ``--dim``); queries are noisy copies of documents.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit, median


def synthetic_unit_vectors(n: int, dim: int, clusters: int, rng) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vectors", default=None, help=".npy of document vectors (default: synthetic)")
    p.add_argument("--num-docs", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--num-queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef-search", type=int, nargs="+", default=[64, 128])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import faiss

    rng = np.random.default_rng(0)
    docs = np.load(args.vectors).astype(np.float32) if args.vectors else \
        synthetic_unit_vectors(args.num_docs, args.dim, 1000, rng)
    queries = docs[rng.integers(0, len(docs), args.num_queries)] + 0.05 * rng.standard_normal(
        (args.num_queries, docs.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    flat = faiss.IndexFlatIP(docs.shape[1])
    flat.add(docs)
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(docs.shape[1], args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = args.ef_construction
    hnsw.add(docs)
    build_s = time.perf_counter() - start

    def timed_search(index):
        times, ids = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            _, ids = index.search(queries, args.k)
            times.append(time.perf_counter() - t0)
        return round(len(queries) / median(times), 1), ids

    exact_qps, exact_ids = timed_search(flat)
    hnsw_rows = {}
    for ef in args.ef_search:
        hnsw.hnsw.efSearch = ef
        qps, ids = timed_search(hnsw)
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact_ids)])
        hnsw_rows[f"efSearch={ef}"] = {"queries_per_s": qps, "recall@10_vs_exact": round(float(recall), 4),
                                       "speedup_over_exact": round(qps / exact_qps, 2)}
    results = {"docs": len(docs), "dim": int(docs.shape[1]), "exact_flat_ip_queries_per_s": exact_qps,
               "hnsw": hnsw_rows, "hnsw_build_s": round(build_s, 1), "faiss_threads": faiss.omp_get_max_threads()}
    emit("search", results, corpus=args.vectors or "synthetic clustered unit vectors", **vars(args))


if __name__ == "__main__":
    main()
