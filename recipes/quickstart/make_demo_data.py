"""Rebuild o1e_tevatron/resources/demo from SciFact (../shared/data/scifact): run once, output is committed.

train.jsonl  Tevatron rows + ``thought``: 96 SciFact train claims, the cited abstract as positive,
             7 random negatives from the corpus slice. The demo ``thought`` is the positive's
             title: a stand-in for teacher thoughts so the quick start needs no LLM (real thoughts come
             from ``python -m o1e_tevatron.synthesis.generate``).
corpus.jsonl / queries.jsonl / qrels/test.tsv  a BEIR-format slice: 48 SciFact test claims and a
             600-abstract corpus holding their positives, for the quick start's search and scoring;
topics.tsv / qrels.txt  the same queries and judgments in Pyserini's topics and TREC qrels formats.
Abstracts are cut to their first 80 words to keep the package small. SciFact: CC BY 4.0 / ODC-By 1.0.
"""
import csv
import json
import random
import sys
from pathlib import Path

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/scifact")
out = Path(__file__).resolve().parents[2] / "o1e_tevatron" / "resources" / "demo"
rng = random.Random(13)


def read_qrels(path):
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    qrels = {}
    for r in rows:
        qrels.setdefault(r["query-id"], []).append(r["corpus-id"])
    return qrels


def short(text, words=80):
    return " ".join(text.split()[:words])


corpus = {d["_id"]: d for d in map(json.loads, open(src / "corpus.jsonl"))}
queries = {q["_id"]: q["text"] for q in map(json.loads, open(src / "queries.jsonl"))}
train_qrels = read_qrels(src / "qrels" / "train.tsv")
test_qrels = read_qrels(src / "qrels" / "test.tsv")

test_ids = sorted(test_qrels, key=int)[:48]
needed = {d for q in test_ids for d in test_qrels[q]}
train_ids = [q for q in sorted(train_qrels, key=int) if not set(train_qrels[q]) & needed][:96]
needed |= {d for q in train_ids for d in train_qrels[q]}
others = sorted(set(corpus) - needed, key=int)
rng.shuffle(others)
pool = sorted(needed | set(others[: 600 - len(needed)]), key=int)


def passage(doc_id):
    d = corpus[doc_id]
    return {"docid": doc_id, "title": d["title"], "text": short(d["text"])}


out.mkdir(parents=True, exist_ok=True)
with open(out / "train.jsonl", "w") as f:
    for qid in train_ids:
        pos = train_qrels[qid]
        negs = rng.sample([d for d in pool if d not in pos], 7)
        row = {
            "query_id": qid,
            "query": queries[qid],
            "positive_passages": [passage(d) for d in pos],
            "negative_passages": [passage(d) for d in negs],
            "thought": corpus[pos[0]]["title"],
        }
        f.write(json.dumps(row) + "\n")
with open(out / "corpus.jsonl", "w") as f:
    for d in pool:
        p = passage(d)
        f.write(json.dumps({"_id": d, "title": p["title"], "text": p["text"]}) + "\n")
with open(out / "queries.jsonl", "w") as f:
    for qid in test_ids:
        f.write(json.dumps({"_id": qid, "text": queries[qid]}) + "\n")
(out / "qrels").mkdir(exist_ok=True)
with open(out / "qrels" / "test.tsv", "w") as f:
    f.write("query-id\tcorpus-id\tscore\n")
    for qid in test_ids:
        for d in test_qrels[qid]:
            f.write(f"{qid}\t{d}\t1\n")
with open(out / "topics.tsv", "w") as f:
    f.writelines(f"{qid}\t{queries[qid]}\n" for qid in test_ids)
with open(out / "qrels.txt", "w") as f:
    f.writelines(f"{qid} 0 {d} 1\n" for qid in test_ids for d in test_qrels[qid])
print(f"{len(train_ids)} train rows, {len(pool)} docs, {len(test_ids)} test queries -> {out}")
