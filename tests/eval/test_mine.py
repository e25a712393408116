"""python -m o1e_pyserini.mine: BM25 hard negatives for a BEIR folder's split, as Tevatron rows."""
import json

import pytest

from o1e_pyserini.search.mine import main

DEPTH = 12


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def beir_train(demo_dir, tmp_path_factory):
    """The demo folder with its test qrels serving as a train split, and one query whose id is also a docid."""
    folder = tmp_path_factory.mktemp("beir")
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text((demo_dir / "corpus.jsonl").read_text())
    queries = [json.loads(line) for line in (demo_dir / "queries.jsonl").read_text().splitlines()]
    qrels = (demo_dir / "qrels" / "test.tsv").read_text().splitlines()
    first_doc = json.loads((demo_dir / "corpus.jsonl").read_text().splitlines()[0])
    judged = {line.split("\t")[0] for line in qrels[1:]}
    query = next(q for q in queries if q["_id"] in judged)
    # the query's text is that document's text, and its id is that docid: BM25's best hit, to be excluded
    queries.append({"_id": first_doc["_id"], "text": first_doc["text"][:200]})
    qrels.append(f"{first_doc['_id']}\t{json.loads((demo_dir / 'corpus.jsonl').read_text().splitlines()[1])['_id']}\t1")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")
    assert query
    return folder


def test_negatives_are_bm25_hits_without_positives_or_the_query_itself(beir_train, tmp_path):
    from pyserini.search.lucene import LuceneSearcher

    index_root = tmp_path / "indexes"
    out = tmp_path / "top.jsonl"
    report = main(["--input", str(beir_train), "--output", str(out), "--depth", str(DEPTH), "--negatives", "4",
                   "--take", "top", "--index-root", str(index_root)])
    mined = rows(out)
    assert report["rows"] == len(mined) and report["rows_short_of_negatives"] == 0
    searcher = LuceneSearcher(report["index"])
    for row in mined:
        excluded = {p["docid"] for p in row["positive_passages"]} | {row["query_id"]}
        expected = [h.docid for h in searcher.search(row["query"], k=DEPTH + 5) if h.docid not in excluded][:4]
        assert [n["docid"] for n in row["negative_passages"]] == expected
        assert all(n["text"].strip() for n in row["negative_passages"])
    planted = next(r for r in mined if r["query_id"] == json.loads((beir_train / "corpus.jsonl").open().readline())["_id"])
    assert searcher.search(planted["query"], k=1)[0].docid == planted["query_id"]  # BM25's top hit, excluded


def test_sampled_negatives_are_deterministic_and_within_depth(beir_train, tmp_path):
    index_root = tmp_path / "indexes"
    args = ["--input", str(beir_train), "--depth", str(DEPTH), "--negatives", "3", "--index-root", str(index_root)]
    main([*args, "--output", str(tmp_path / "a.jsonl")])
    main([*args, "--output", str(tmp_path / "b.jsonl")])
    top = main([*args, "--output", str(tmp_path / "top.jsonl"), "--take", "top", "--negatives", str(DEPTH)])
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    window = {r["query_id"]: {n["docid"] for n in r["negative_passages"]} for r in rows(tmp_path / "top.jsonl")}
    sampled = rows(tmp_path / "a.jsonl")
    assert all({n["docid"] for n in r["negative_passages"]} <= window[r["query_id"]] for r in sampled)
    assert any([n["docid"] for n in r["negative_passages"]] != sorted(window[r["query_id"]])[:3] for r in sampled)
    assert top["rows_short_of_negatives"] <= top["rows"]


def test_output_inside_the_input_folder_is_refused(beir_train):
    with pytest.raises(ValueError, match="inside the input folder"):
        main(["--input", str(beir_train), "--output", str(beir_train / "rows.jsonl")])
