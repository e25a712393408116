"""What the committee's vote buys, on dev: thoughts files for the harness's ``--thoughts-file``.

For each o1e/scifact/dev query, from the voted rows (``data/thoughts.jsonl.gz``: the teacher's k candidates,
the committee's choice and the candidates its guard rejected):

    voted.jsonl    the committee's thought
    random.jsonl   one candidate drawn at random among those the guard kept (seeded): training without a vote
    all.jsonl      every kept candidate (the search averages their vectors, eq. 11)

    python recipes/mini/vote_dev.py --voted recipes/mini/data/thoughts.jsonl.gz --output-dir runs/mini/vote-dev

The vote reads each query's positive passage, so on dev this measures how much better a training target
the voted thought is, not a way to search: no vote is possible at search time.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from o1e_tevatron.core.readers import json_records
from o1e_pyserini.evaluation.datasets import scifact_dev_query_ids


def thoughts_by_kind(voted_rows: Path, query_ids: set[str], seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {"voted": [], "random": [], "all": []}
    for _, row in json_records(voted_rows):
        if row["query_id"] not in query_ids:
            continue
        rejected = {int(i) for i in row["thought_votes"]["rejected"]}
        kept = [t for i, t in enumerate(row["thought_candidates"]) if i not in rejected]
        out["voted"].append({"text": row["query"], "thoughts": [row["thought"]]})
        out["random"].append({"text": row["query"], "thoughts": [rng.choice(kept)]})
        out["all"].append({"text": row["query"], "thoughts": kept})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--voted", type=Path, required=True, help="voted rows (synthesis.vote's output, .gz or not)")
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ids = scifact_dev_query_ids()
    files = thoughts_by_kind(args.voted, ids, args.seed)
    if len(files["voted"]) != len(ids):
        raise SystemExit(f"error: {args.voted} has voted rows for {len(files['voted'])} of the {len(ids)} dev queries")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for kind, rows in files.items():
        (args.output_dir / f"{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps({"queries": len(ids), "output_dir": str(args.output_dir),
                      "kept_candidates": sum(len(r["thoughts"]) for r in files["all"])}))


if __name__ == "__main__":
    main()
