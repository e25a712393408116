"""The settings the miniature's test table runs with, picked on o1e/scifact/dev only (never on a test query):

- the BM25 hybrid: which of the (b) arm's dev runs to fuse with BM25's and the dense run's weight
  (interpolation of min-max normalised scores, weight 0.0 to 1.0 in steps of 0.1, best dev nDCG@10;
  ties to the larger dense weight);
- adaptive thinking: from ``adaptive-curve``'s output on dev, the signal whose operating point (the fewest
  thinking queries reaching ``--target-gain`` of always-think's gain) thinks on the fewest queries, with its
  threshold (``--think-threshold`` on test: a threshold carries over to other queries, a rate does not).

Writes ``--output`` (JSON) and prints it.

    .venv/bin/python recipes/mini/pick_on_dev.py --runs fast=F.trec.gz think=T.trec.gz --bm25 B.trec.gz \\
        --adaptive-curve dev/adaptive-curve.json --output dev/picks.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation import scoring
from o1e_pyserini.search.fusion import fuse

DEV = "o1e/scifact/dev"
METRIC = "nDCG@10"
WEIGHTS = [round(0.1 * i, 1) for i in range(11)]


def score(run, qrels) -> float:
    return scoring.aggregate(scoring.per_query(run, qrels, [METRIC]), [METRIC])[METRIC]


def pick_hybrid(runs: dict[str, Path], bm25: Path, qrels) -> dict:
    """Every (mode, weight) scored on dev, and the best: weight 1.0 is the dense run alone, 0.0 BM25 alone."""
    sparse = scoring.read_run(bm25)
    table = {mode: {str(w): score(fuse([scoring.read_run(path), sparse], weight=w), qrels) for w in WEIGHTS}
             for mode, path in runs.items()}
    mode, weight = max(((m, float(w)) for m in table for w in table[m]), key=lambda mw: (table[mw[0]][str(mw[1])], mw[1]))
    return {"mode": mode, "weight": weight, "dev": table[mode][str(weight)], "sweep": table}


def pick_adaptive(curve_path: Path) -> dict | None:
    curve = json.loads(curve_path.read_text())
    points = {signal: point for signal, point in curve["operating_points"].items() if point}
    if not points:  # thinking gains nothing on dev: no operating point
        return None
    signal = min(points, key=lambda s: (points[s]["queries_thought"], s))
    return {"signal": signal, "threshold": points[signal]["threshold"], "dev_think_rate": points[signal]["think_rate"],
            "dev": points[signal]["score"], "target_gain": curve["target_gain"],
            "never_think": curve["never_think"], "always_think": curve["always_think"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="MODE=RUN: the (b) arm's dev runs")
    parser.add_argument("--bm25", type=Path, required=True, help="BM25's dev run")
    parser.add_argument("--adaptive-curve", type=Path, required=True, help="adaptive-curve's JSON on dev")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.runs)
    qrels = scoring.qrels_dict(datasets.load(DEV, args.data_dir).qrels_iter())
    picks = {"dataset": DEV, "metric": METRIC, "hybrid": pick_hybrid({m: Path(p) for m, p in runs.items()}, args.bm25, qrels),
             "adaptive": pick_adaptive(args.adaptive_curve)}
    args.output.write_text(json.dumps(picks, indent=1) + "\n")
    print(json.dumps({k: {f: v[f] for f in v if f != "sweep"} if isinstance(v, dict) else v for k, v in picks.items()}))


if __name__ == "__main__":
    main()
