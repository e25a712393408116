"""Pick the BM25 hybrid's interpolation weight on training queries: nDCG@10 of each weight (and RRF)
over a dense and a BM25 run of the same split, as JSON; the best weight is then used on the test split.

    python recipes/hybrid/pick_weight.py --dense DENSE.trec --bm25 BM25.trec --dataset beir/scifact/train \
        --data-dir ../shared/data --output weights.json
"""
import argparse
import json
from pathlib import Path

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation import scoring
from o1e_pyserini.search.fusion import fuse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dense", type=Path, required=True)
    parser.add_argument("--bm25", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--metric", default="nDCG@10")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    qrels = scoring.qrels_dict(datasets.load(args.dataset, args.data_dir).qrels_iter())
    runs = [scoring.read_run(args.dense), scoring.read_run(args.bm25)]

    def score(run):
        return scoring.aggregate(scoring.per_query(run, qrels, [args.metric]), [args.metric])[args.metric]

    weights = {f"{w / 10:.1f}": score(fuse(runs, "interpolation", w / 10, k=100)) for w in range(11)}
    best = max(weights, key=weights.get)
    result = {"dataset": args.dataset, "metric": args.metric, "interpolation": weights,
              "rrf": score(fuse(runs, "rrf", k=100)), "best_weight": float(best)}
    args.output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
