"""The benchmark scripts still run against the code they measure (not timed: numbers are BENCHMARKS.md's)."""
import json

from benchmarks import corpus_encoding, report


def test_corpus_encoding_minilm_gives_pyserinis_vectors_and_a_report_row(capsys):
    corpus_encoding.main(["--num-texts", "10", "--batch-size", "4", "--repeats", "1", "--max-length", "48"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = record["results"]
    assert results["texts"] == 10 and set(results["o1e_over"]) == {"pyserini_cli", "pyserini_inference_mode"}
    assert results["max_abs_vector_diff"] < 1e-5  # sorted, left-padded batches: Pyserini's vectors
    rows = report.rows(record)
    assert [row[2] for row in rows].count(">= 1.5") == 1 and all("10 " in row[3] for row in rows)
