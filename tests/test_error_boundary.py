"""The error boundary of every ``python -m`` command (``o1e_tevatron.core.errors``): the real command run on
a hostile file ends in one line on stderr and the documented exit code, and the registered secret
($OPENAI_API_KEY) appears nowhere: not in the output, not in any file the command left."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from o1e_tevatron.core import errors

SECRET = "sk-o1e-boundary-0123456789abcdefghij"
DEMO = Path(__file__).resolve().parents[1] / "o1e_tevatron" / "resources" / "demo"


def run_cli(module: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "O1E_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def assert_one_line(proc: subprocess.CompletedProcess, code: int, *words: str, folder: Path) -> str:
    """One error line (log lines before it are allowed, a traceback is not), the exit code, the words,
    and the secret nowhere in the output or under ``folder``."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors_printed = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors_printed) == 1 and proc.stderr.rstrip().splitlines()[-1] == errors_printed[0], proc.stderr[-3000:]
    for word in words:
        assert word in errors_printed[0], errors_printed[0]
    assert SECRET not in proc.stdout + proc.stderr
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    return errors_printed[0]


def test_exit_codes_are_distinct_and_documented():
    codes = [errors.EXIT_UNEXPECTED, errors.EXIT_INPUT, errors.EXIT_PARTIAL, errors.EXIT_CHECKPOINT,
             errors.EXIT_DISK_FULL, errors.EXIT_SERVER]
    assert len(set(codes)) == len(codes) == len(errors.EXIT_CODES)
    documented = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    assert all(f"| {code} |" in documented for code in codes)


@pytest.mark.parametrize("error, code", [
    (errors.InputError("bad", "f.jsonl", 3), errors.EXIT_INPUT),
    (errors.CheckpointError("no such model folder", "ckpt"), errors.EXIT_CHECKPOINT),
    (OSError(28, "No space left on device"), errors.EXIT_DISK_FULL),
    (RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: file write failed"), None),
    (RuntimeError("boom"), None),
])
def test_errors_are_sorted_into_exit_codes(error, code):
    assert errors.exit_code_of(error) == code


def test_a_full_disk_under_a_library_error_is_said_as_such():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as cause:
            raise RuntimeError("[enforce fail at inline_container.cc:664] file write failed") from cause
    except RuntimeError as error:
        assert errors.exit_code_of(error) == errors.EXIT_DISK_FULL
        assert "no space left on device" in errors.one_line(error).lower()


def test_an_unknown_error_keeps_its_traceback_redacted(tmp_path, capsys):
    from o1e_tevatron.core.redact import register_secret
    register_secret(SECRET)

    def buggy():
        raise RuntimeError(f"bug near {SECRET}")

    with pytest.raises(SystemExit) as exit_info:
        errors.run_command(buggy)
    err = capsys.readouterr().err
    assert exit_info.value.code == errors.EXIT_UNEXPECTED and "Traceback" in err and "RuntimeError" in err
    assert SECRET not in err


def test_eval_with_a_thought_server_echoing_the_key_in_a_400(tiny_llama_dir, tmp_path):
    """The harness ended in a raw openai.BadRequestError traceback with the full key on stderr."""
    from o1e_tevatron.synthesis.loopback_server import LoopbackServerArguments, serve_in_thread

    shutil.copytree(DEMO, tmp_path / "data" / "scifact")
    with serve_in_thread(LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir), faults="echo400")) as url:
        proc = run_cli("o1e_pyserini.eval", "--dataset", "beir/scifact/test", "--data-dir", tmp_path / "data",
                       "--retriever", f"repllama:{tiny_llama_dir}", "--index-root", tmp_path / "indexes",
                       "--output-dir", tmp_path / "runs", "--thought-server", url, "--thought-model", "loopback",
                       "--threads", "1", "--hits", "5", cwd=tmp_path)
    line = assert_one_line(proc, errors.EXIT_SERVER, "BadRequestError", folder=tmp_path)
    assert "authorization" in line.lower()  # the echo is shown, its key blanked


def test_eval_with_a_corpus_passage_without_text(tmp_path):
    """A passage with "text": null was embedded as the literal "None"; a repeated id indexed twice."""
    data = tmp_path / "data" / "scifact"
    shutil.copytree(DEMO, data)
    with open(data / "corpus.jsonl", "a") as corpus:
        corpus.write('{"_id": "null-text", "title": "t", "text": null}\n')
    proc = run_cli("o1e_pyserini.eval", "--dataset", "beir/scifact/test", "--data-dir", tmp_path / "data",
                   "--retriever", "bm25", "--index-root", tmp_path / "indexes", "--output-dir", tmp_path / "runs",
                   cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "corpus.jsonl:", "'text' must be a string, got null", folder=tmp_path)


def test_ttest_with_a_non_integer_qrels_score(tmp_path):
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq2 0 d2 0.5\n")
    (tmp_path / "run.trec").write_text("q1 Q0 d1 1 2.0 r\nq2 Q0 d2 1 1.0 r\n")
    proc = run_cli("o1e_pyserini.eval", "ttest", "--qrels", "qrels.txt", "--run-a", "run.trec", "--run-b", "run.trec",
                   cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "qrels.txt:2: the relevance '0.5' is not an integer", folder=tmp_path)


def test_think_with_a_whitespace_only_query(tmp_path):
    """A whitespace-only query was scored 0 in the mean without a word."""
    (tmp_path / "topics.tsv").write_text("q1\tdna repair\nq2\t   \n\n")
    proc = run_cli("o1e_pyserini.think", "run", "--topics", "topics.tsv", "--output-dir", "out", "--model", "no-model",
                   cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "topics.tsv:2: query 'q2': is empty or whitespace only", folder=tmp_path)


@pytest.mark.parametrize("folder", [Path("no") / "such" / "model", Path("runs") / "model"], ids=["path", "like-a-hub-id"])
def test_train_with_a_model_folder_that_does_not_exist(tmp_path, folder):
    """It ended in huggingface_hub's 'Repo id must be in the form ...', or, for a relative path that reads as
    owner/name, in its offline 'couldn't connect to the hub'."""
    (tmp_path / "train.jsonl").write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    proc = run_cli("o1e_tevatron.driver.train", "--model_name_or_path", folder,
                   "--train_dir", "train.jsonl", "--output_dir", "out", cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_CHECKPOINT, "no such model folder", str(folder), folder=tmp_path)


@pytest.mark.parametrize("content, words", [
    (b"", "no training rows: the file is empty"),
    (b'{"query": "q\xff", "pos": ["p"], "neg": ["n"]}\n', "train.jsonl:1: not UTF-8 text"),
], ids=["empty-file", "invalid-utf8"])
def test_train_on_a_hostile_training_file(tiny_llama_dir, tmp_path, content, words):
    """An empty file ended in 'num_samples=0'; invalid UTF-8 in a raw UnicodeDecodeError without file or line."""
    (tmp_path / "train.jsonl").write_bytes(content)
    proc = run_cli("o1e_tevatron.driver.train", "--model_name_or_path", tiny_llama_dir, "--train_dir", "train.jsonl",
                   "--output_dir", "out", "--train_n_passages", "2", "--max_steps", "1", "--report_to", "none",
                   cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, words, folder=tmp_path)


def test_generate_with_a_prompts_file_holding_null(tmp_path):
    """A prompts file with null where text belongs was accepted."""
    (tmp_path / "rows.jsonl").write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    (tmp_path / "prompts.json").write_text('{"task": null}')
    proc = run_cli("o1e_tevatron.synthesis.generate", "--input_path", "rows.jsonl", "--output_path", "out.jsonl",
                   "--base_url", "http://127.0.0.1:9/v1", "--model", "m", "--prompts_file", "prompts.json", cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "prompts.json: 'task' must be a string, got null", folder=tmp_path)


def test_vote_on_an_empty_candidates_file(tmp_path):
    (tmp_path / "candidates.jsonl").write_text("\n\n")
    proc = run_cli("o1e_tevatron.synthesis.vote", "--input_path", "candidates.jsonl", "--output_path", "voted.jsonl",
                   cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "candidates.jsonl: no records", folder=tmp_path)


def test_mine_with_a_qrels_line_of_four_columns(tmp_path):
    beir = tmp_path / "beir"
    shutil.copytree(DEMO, beir)
    lines = (beir / "qrels" / "test.tsv").read_text().splitlines()
    (beir / "qrels" / "test.tsv").write_text("\n".join(lines[:5] + ["q-bad\t0\td1\t1"] + lines[5:]) + "\n")
    proc = run_cli("o1e_pyserini.mine", "--input", beir, "--split", "test", "--output", "mined.jsonl",
                   "--index-root", tmp_path / "indexes", cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "test.tsv:6: expected query-id<TAB>corpus-id<TAB>score", folder=tmp_path)


def test_grounding_with_a_row_without_query(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"query": "dna repair"}\n{"text": "no query"}\n')
    proc = run_cli("o1e_pyserini.grounding", "--input", "rows.jsonl", "--output", "grounded.jsonl",
                   "--corpus", DEMO / "corpus.jsonl", cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "rows.jsonl:2: 'query' is missing (the object has: 'text')",
                    folder=tmp_path)
    assert not (tmp_path / "grounded.jsonl").exists()


def test_lucene_search_with_a_whitespace_only_topic(tmp_path):
    (tmp_path / "topics.tsv").write_text("q1\tdna repair\nq2\t  \n")
    proc = run_cli("o1e_pyserini.search.lucene", "--index", tmp_path / "no-index", "--topics", "topics.tsv",
                   "--output", "run.txt", "--bm25", cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, "topics.tsv:2: query 'q2': is empty or whitespace only", folder=tmp_path)


@pytest.mark.parametrize("corpus, words", [
    ('{"id": "d1", "contents": "fine"}\n{"id": "d2", "contents": \n', "corpus.jsonl:2: not valid JSON"),
    (None, "corpus.jsonl: no such corpus file or folder"),
], ids=["torn-line", "missing"])
def test_encode_with_a_torn_corpus_line(tmp_path, corpus, words):
    """Pyserini's reader ended in 'Expecting value: line 2 column 1 (char 26)': no file, and the line within the line."""
    if corpus is not None:
        (tmp_path / "corpus.jsonl").write_text(corpus)
    proc = run_cli("o1e_pyserini.encode", "input", "--corpus", "corpus.jsonl", "output", "--embeddings", "emb",
                   "encoder", "--encoder", tmp_path / "no-model", "--encoder-class", "o1e", "--device", "cpu",
                   cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_INPUT, words, folder=tmp_path)


def test_a_usage_error_is_one_redacted_line_with_exit_code_2(tmp_path):
    """argparse printed 'argument --temperature: invalid float value: <the key>' itself, unredacted."""
    proc = run_cli("o1e_tevatron.synthesis.generate", "--input_path", "rows.jsonl", "--output_path", "out.jsonl",
                   "--base_url", "http://127.0.0.1:9/v1", "--model", "m", "--temperature", SECRET, cwd=tmp_path)
    line = assert_one_line(proc, errors.EXIT_INPUT, "argument --temperature: invalid float value: '***'",
                           folder=tmp_path)
    assert proc.stderr.startswith("usage: ") and line.startswith("error: ")


def test_resume_from_true_without_a_checkpoint(tiny_llama_dir, tmp_path):
    """It read 'true' as a folder: 'Can't find a checkpoint index ... in true'."""
    (tmp_path / "train.jsonl").write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    proc = run_cli("o1e_tevatron.driver.train", "--model_name_or_path", tiny_llama_dir, "--train_dir", "train.jsonl",
                   "--output_dir", "out", "--resume_from_checkpoint", "true", cwd=tmp_path)
    assert_one_line(proc, errors.EXIT_CHECKPOINT, "out: --resume_from_checkpoint true: no checkpoint-N folder",
                    folder=tmp_path)


@pytest.mark.parametrize("damage, words", [
    ("lora_r", "its adapter does not fit this model"),
    ("truncated", "adapter_model.safetensors: not a readable safetensors file"),
])
def test_resume_from_a_checkpoint_of_another_shape_or_a_damaged_one(tiny_llama_dir, tmp_path, damage, words):
    """A --lora_r mismatch ended in torch's 'size mismatch' traceback; a truncated adapter in safetensors' error."""
    shutil.copy(DEMO / "train.jsonl", tmp_path / "train.jsonl")
    train = ["--model_name_or_path", tiny_llama_dir, "--train_dir", "train.jsonl", "--output_dir", "out", "--lora",
             "--train_n_passages", "2", "--per_device_train_batch_size", "2", "--report_to", "none", "--use_cpu"]
    first = run_cli("o1e_tevatron.driver.train", *train, "--lora_r", "4", "--max_steps", "1", "--save_steps", "1",
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = tmp_path / "out" / "checkpoint-1"
    if damage == "truncated":
        weights = checkpoint / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    again = run_cli("o1e_tevatron.driver.train", *train, "--lora_r", "8" if damage == "lora_r" else "4",
                    "--max_steps", "2", "--resume_from_checkpoint", "true", cwd=tmp_path)
    assert_one_line(again, errors.EXIT_CHECKPOINT, words, folder=tmp_path)
