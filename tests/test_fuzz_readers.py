"""Every reader of o1e's reader layer (``o1e_tevatron.core.readers`` and the readers routed through it),
fed arbitrary bytes, mutated valid files and records of the wrong types: it returns valid records or
raises ``InputError`` naming the file (and, when it names a line, a line of the file); never another
exception, never a hang (hypothesis' deadline).

Quick by default (50 examples per test); the long run is one command, with the example counts shown:

    HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/test_fuzz_readers.py --hypothesis-show-statistics
"""
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from o1e_pyserini.thinking.backends import RecordedThoughts  # imported here: a first import inside an example passes the deadline
from o1e_tevatron.core import readers
from o1e_tevatron.core.errors import InputError
from o1e_tevatron.data import JsonlRows
from o1e_tevatron.families.o1e.prompts import TeacherPrompt
from o1e_tevatron.synthesis.rows import iter_rows
from o1e_tevatron.synthesis.vote import iter_candidate_rows


def _all_training_rows(path):
    rows = JsonlRows([path])
    return [rows[i] for i in range(len(rows))]


def _recorded_thoughts(path):
    return RecordedThoughts(path).by_text


DOC = {"_id": "d1", "title": "Cancer", "text": "colon cells mutate"}
TRAIN = {"query_id": "q1", "query": "dna repair", "positive_passages": [{"docid": "d1", "title": "t", "text": "p"}],
         "negative_passages": [{"docid": "d2", "title": "", "text": "n"}], "thought": "a thought"}
#: name -> (reader consuming the whole file, file suffix, a valid file)
READERS = {
    "corpus": (lambda p: list(readers.corpus(p)), ".jsonl", [DOC, {"id": "d2", "contents": "sunlight"}]),
    "beir_queries": (readers.beir_queries, ".jsonl", [{"_id": "q1", "text": "dna"}, {"_id": "q2", "text": "rna"}]),
    "topics": (readers.topics, ".tsv", b"q1\tdna repair\nq2\trna\n"),
    "beir_qrels": (readers.beir_qrels, ".tsv", b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0\n"),
    "trec_qrels": (readers.trec_qrels, ".txt", b"q1 0 d1 1\nq2 0 d2 2\n"),
    "trec_run": (readers.trec_run, ".trec", b"q1 Q0 d1 1 2.5 r\nq1 Q0 d2 2 1.0 r\n"),
    "yaml": (readers.yaml_file, ".yaml", b"tolerance: 0.01\nconditions:\n  - name: bm25\n"),
    "prompts": (TeacherPrompt.from_file, ".json", {"task": "Write a passage.", "system": "Be brief."}),
    "training_rows": (_all_training_rows, ".jsonl", [TRAIN, {"query": "q", "pos": ["p"], "neg": ["n"],
                                                             "pos_scores": [1.0], "neg_scores": [0.5]}]),
    "synthesis_rows": (lambda p: list(iter_rows(p)), ".jsonl", [TRAIN]),
    "candidates": (lambda p: list(iter_candidate_rows(p)), ".jsonl", [{**TRAIN, "thought_candidates": ["a", "b"]}]),
    "thoughts": (_recorded_thoughts, ".jsonl", [{"text": "dna", "thoughts": ["repair"]}]),
}
JSON_LINES = [name for name, (_, suffix, _) in READERS.items() if suffix == ".jsonl"]
WRONG = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
                  st.just(""), st.just("  "), st.just("\ud800"), st.lists(st.integers(), max_size=2),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow])


def valid_bytes(name: str) -> bytes:
    sample = READERS[name][2]
    if isinstance(sample, bytes):
        return sample
    if isinstance(sample, dict):
        return json.dumps(sample).encode()
    return "".join(json.dumps(record) + "\n" for record in sample).encode()


def read_or_refuse(name: str, content: bytes):
    """Write ``content`` as the reader's file and read it: the property every test checks."""
    read, suffix, _ = READERS[name]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(content)
        try:
            return read(path)
        except InputError as error:
            message = str(error)
            assert str(path) in message, message
            lines = content.count(b"\n") + 1
            for line in re.findall(re.escape(str(path)) + r":(\d+)", message):
                assert 1 <= int(line) <= lines, (message, lines)
            assert "\n" not in message.strip(), message
            return None


def mutated(data: st.DataObject, content: bytes) -> bytes:
    """``content`` with a few byte-level edits: cut, insert, replace, a line repeated, a blank line."""
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(content)))
        edit = data.draw(st.sampled_from(["cut", "insert", "replace", "repeat_line", "blank_line", "truncate"]))
        if edit == "cut":
            content = content[:at] + content[at + data.draw(st.integers(1, 8)):]
        elif edit == "insert":
            content = content[:at] + data.draw(st.binary(min_size=1, max_size=6)) + content[at:]
        elif edit == "replace" and at < len(content):
            content = content[:at] + data.draw(st.sampled_from([b"\xff", b"\t", b"\n", b"\x00", b"\"", b"}", b" "])) \
                + content[at + 1:]
        elif edit == "repeat_line":
            lines = content.split(b"\n")
            content = b"\n".join(lines + lines[:1])
        elif edit == "blank_line":
            content = content[:at] + b"\n  \n" + content[at:]
        elif edit == "truncate":
            content = content[:at]
    return content


@pytest.mark.parametrize("name", READERS)
@FUZZ
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes_are_read_or_refused_with_file_and_line(name, content):
    read_or_refuse(name, content)


@pytest.mark.parametrize("name", READERS)
@FUZZ
@given(data=st.data())
def test_mutated_valid_files_are_read_or_refused_with_file_and_line(name, data):
    read_or_refuse(name, mutated(data, valid_bytes(name)))


@pytest.mark.parametrize("name", JSON_LINES + ["prompts"])
@FUZZ
@given(data=st.data())
def test_fields_of_the_wrong_type_are_refused_with_file_and_line(name, data):
    sample = READERS[name][2]
    records = [dict(r) for r in ([sample] if isinstance(sample, dict) else sample)]
    record = data.draw(st.sampled_from(records))
    record[data.draw(st.sampled_from(sorted(record)))] = data.draw(WRONG)
    content = (json.dumps(records[0]) if isinstance(sample, dict) else
               "".join(json.dumps(r) + "\n" for r in records)).encode("utf-8", "surrogatepass")
    read_or_refuse(name, content)


@pytest.mark.parametrize("name", READERS)
def test_the_valid_samples_are_read(name):
    assert read_or_refuse(name, valid_bytes(name))


@pytest.mark.parametrize("name, content, message", [
    ("corpus", b'{"_id": "d1", "text": null}\n', "input.jsonl:1: 'text' must be a string, got null"),
    ("corpus", b'{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n',
     "input.jsonl:2: document id 'd1' again (first on line 1)"),
    ("corpus", b"", "input.jsonl: no records: the file is empty"),
    ("beir_queries", b'{"_id": "q1", "text": "dna"}\n\n{"_id": "q2", "text": "rna"}\n', None),
    ("beir_queries", b'{"_id": "q1", "text": "   "}\n', "input.jsonl:1: 'text' is empty or whitespace only"),
    ("beir_qrels", b"q1\td1\t0.5\n", "input.tsv:1: the relevance '0.5' is not an integer"),
    ("topics", b"q1\tdna\n\n", None),
    ("topics", b"q1\t \n", "input.tsv:1: query 'q1': is empty or whitespace only"),
    ("prompts", b'{"task": null}', "input.json: 'task' must be a string, got null"),
    ("prompts", b'{"system": 3}', "input.json: 'system' must be a string, got int 3"),
    ("training_rows", b"", "no training rows: the file is empty"),
    ("training_rows", b'{"query": "q\xff", "pos": ["p"]}\n', "input.jsonl:1: not UTF-8 text (byte 13 of the line)"),
], ids=["null-text", "repeated-docid", "empty-corpus", "blank-line-in-queries", "whitespace-query",
        "non-integer-qrels", "trailing-blank-topics", "blank-topic", "null-prompt", "number-prompt", "empty-training-file",
        "invalid-utf8-training-row"])
def test_each_fixed_class_is_decided_in_the_layer(name, content, message):
    """The issue's classes: refused naming file and line, or (blank lines) read."""
    read, suffix, _ = READERS[name]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(content)
        if message is None:
            assert read(path)
        else:
            with pytest.raises(InputError, match=re.escape(message)):
                read(path)
