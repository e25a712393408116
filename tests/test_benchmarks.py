"""The benchmark scripts still run against the code they measure (not timed: numbers are BENCHMARKS.md's)."""
import json

from benchmarks import corpus_encoding, mini_step, report


def test_corpus_encoding_minilm_gives_pyserinis_vectors_and_a_report_row(capsys):
    corpus_encoding.main(["--num-texts", "10", "--batch-size", "4", "--repeats", "1", "--max-length", "48"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = record["results"]
    assert results["texts"] == 10 and set(results["o1e_over"]) == {"pyserini_cli", "pyserini_inference_mode"}
    assert results["max_abs_vector_diff"] < 1e-5  # sorted, left-padded batches: Pyserini's vectors
    rows = report.rows(record)
    assert [row[2] for row in rows].count(">= 1.5") == 1 and all("10 " in row[3] for row in rows)


def test_mini_step_reads_the_trainers_runtime_and_loss_parts_per_dtype(capsys, tmp_path, tiny_llama_dir, demo_dir):
    """benchmarks/mini_step.py drives the real training driver; on the tiny model, one step per dtype."""
    import shutil

    shutil.copy(demo_dir / "train.jsonl", tmp_path / "train-rows.jsonl")
    mini_step.main(["--arms", "a", "--steps", "1", "--model", str(tiny_llama_dir), "--work", str(tmp_path)])
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert [(run["arm"], run["dtype"]) for run in results["runs"]] == [("a", "float32"), ("a", "bfloat16")]
    assert all(run["seconds_per_step"] > 0 and len(run["losses"]["ctr_loss"]) == 1 for run in results["runs"])
    assert results["runs"][0]["losses"]["gen_loss"] == [0.0]  # (a): contrastive only
    assert set(results["bfloat16_speedup"]) == {"a"} and results["max_loss_gap_bf16_vs_fp32"]["a"] >= 0


def test_shape_memory_cases_see_the_lengths_they_name():
    from benchmarks.shape_memory import loop

    assert loop("same", 11)["distinct_lengths"] == 1
    assert loop("distinct", 11)["distinct_lengths"] == 11  # 300, 307, ..., 370
    padded = loop("padded64", 11)
    assert padded["distinct_lengths"] == 2 and isinstance(padded["rss_growth_mb"], float)  # 320 and 384
