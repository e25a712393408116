"""The search CLI refuses bad input up front, naming the file and line (before any model loads)."""
import re

import pytest

from o1e_pyserini.encoders.o1e import O1EInputError
from o1e_pyserini.search.faiss import main


@pytest.mark.parametrize("content, message", [
    ("q1\tdna repair\tsee also rna\n", "topics.tsv:1: expected query_id<TAB>text (1 tab), found 2"),
    ("q1\tdna repair\nq2\trna\nq1\tprotein\n", "topics.tsv:3: query id 'q1' again (first on line 1)"),
    ("q1\tdna repair\nq2\t  \n", "topics.tsv:2: query 'q2': is empty or whitespace only"),
    (b"q1\tdna repair\nq2\tr\xffna\n", "topics.tsv:2: not UTF-8 text"),
    ("q1 dna repair\n", "topics.tsv:1: expected query_id<TAB>text (1 tab), found 0"),
], ids=["extra-tab", "duplicate-id", "blank-query", "not-utf8", "no-tab"])
def test_bad_topics_lines_are_named(encoded_corpus, tmp_path, content, message):
    """The old code searched 'dna repair\\tsee also rna', kept one of two q1 queries, and so on."""
    topics = tmp_path / "topics.tsv"
    topics.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(O1EInputError, match=re.escape(message)):
        main(["--index", str(encoded_corpus / "index"), "--topics", str(topics), "--output", str(tmp_path / "run")])


def test_blank_lines_are_skipped_and_pyserini_reads_a_clean_copy(tmp_path):
    """Anserini's TopicReader failed on a trailing blank line ('Unable to initialize TopicReader')."""
    from o1e_pyserini.search.topics import for_pyserini
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tdna\n\nq2\trna\n\n")
    copy = for_pyserini(str(topics), str(tmp_path / "scratch"))
    assert copy != str(topics) and open(copy).read() == "q1\tdna\nq2\trna\n"
    clean = tmp_path / "clean.tsv"
    clean.write_text("q1\tdna\n")
    assert for_pyserini(str(clean), str(tmp_path / "scratch")) == str(clean)


def test_a_topics_file_with_a_byte_order_mark_is_searched(cli, encoded_corpus, llama_checkpoint, demo_queries, tmp_path):
    """Windows editors start UTF-8 files with a byte-order mark; Anserini's topic reader ended in a Java
    traceback on it. The search reads a copy without it; the user's file is left as it is."""
    topics, run = tmp_path / "topics.tsv", tmp_path / "run.txt"
    content = "\ufeff".encode() + "".join(f"{qid}\t{text}\n" for qid, text in demo_queries.items()).encode()
    topics.write_bytes(content)
    proc = cli("o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics, "--output", run,
               "--encoder", llama_checkpoint, "--hits", 5, "--device", "cpu", "--o1e-mode", "fast")
    assert {line.split()[0] for line in run.read_text().splitlines()} == set(demo_queries)
    assert f"{topics} has a byte-order mark, blank lines or CRLF line ends: Pyserini reads a clean copy" in proc.stderr
    assert topics.read_bytes() == content
    from o1e_tevatron.core.readers import topics as read_topics
    assert list(read_topics(topics)) == list(demo_queries)  # o1e's own reader drops the mark too


def test_missing_index_or_topics_file(encoded_corpus, topics_tsv, tmp_path):
    argv = ["--index", str(encoded_corpus / "index"), "--topics", str(topics_tsv), "--output", str(tmp_path / "r")]
    with pytest.raises(O1EInputError, match="--index no/such/index: no such index directory"):
        main(argv + ["--index", "no/such/index"])
    with pytest.raises(O1EInputError, match="--topics .*missing.tsv: no such file"):
        main(argv + ["--topics", str(tmp_path / "missing.tsv")])


@pytest.mark.parametrize("flag", ["--hits", "--o1e-num-thoughts", "--o1e-max-thought-tokens", "--o1e-encode-batch-size"])
def test_counts_below_one_are_refused(encoded_corpus, topics_tsv, tmp_path, capsys, flag):
    """--hits 0 searched nothing and wrote an empty run."""
    with pytest.raises(SystemExit):
        main(["--index", str(encoded_corpus / "index"), "--topics", str(topics_tsv), "--output", str(tmp_path / "r"),
              flag, "0"])
    assert f"argument {flag}: must be at least 1, got 0" in capsys.readouterr().err


def test_a_missing_index_exits_non_zero(cli, topics_tsv, tmp_path):
    """The old command printed a traceback from Pyserini and exited 0."""
    proc = cli("o1e_pyserini.search.faiss", "--index", tmp_path / "missing", "--topics", topics_tsv,
               "--output", tmp_path / "run.txt", "--encoder", "o1e", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --index")
    assert not (tmp_path / "run.txt").exists()


@pytest.mark.parametrize("damage, message", [
    ("tokenizer", "no tokenizer (none of tokenizer.json"),
    ("weights", "adapter_model.safetensors: not a complete safetensors file"),
], ids=["missing-tokenizer", "truncated-safetensors"])
def test_a_damaged_checkpoint_is_named(llama_checkpoint, tmp_path, damage, message):
    import shutil

    from o1e_pyserini.encoders.o1e import O1EDocumentEncoder
    folder = tmp_path / "ckpt"
    shutil.copytree(llama_checkpoint, folder)
    if damage == "tokenizer":
        for path in folder.glob("tokenizer*"):
            path.unlink()
    else:
        weights = folder / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(O1EInputError, match=re.escape(message)):
        O1EDocumentEncoder(str(folder))


def test_encode_driver_input_errors_are_one_line(cli, llama_checkpoint, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "dna"}\n{"_id": "d2", "text": "rna"\n')
    proc = cli("o1e_tevatron.driver.encode", "--model_name_or_path", llama_checkpoint, "--encode_in_path", corpus,
               "--encoded_save_path", tmp_path / "c.npz", "--output_dir", tmp_path / "tr", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {corpus}:2: not valid JSON")


def test_recorded_thoughts_must_be_lists_of_strings(tmp_path):
    """A string was split into one-character thoughts."""
    from o1e_pyserini.thinking.backends import RecordedThoughts
    path = tmp_path / "thoughts.jsonl"
    path.write_text('{"text": "dna", "thoughts": ["repair"]}\n{"text": "rna", "thoughts": "splicing"}\n')
    with pytest.raises(ValueError, match=re.escape("thoughts.jsonl:2: 'thoughts' must be a list of strings")):
        RecordedThoughts(path)
