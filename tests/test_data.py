"""Training rows: both formats, errors that name file and line, deterministic sampling."""
import json

import pytest

from o1e_tevatron.arguments import parse_args
from o1e_tevatron.data import DataFormatError, JsonlRows, TrainDataset, load_train_rows

TEVATRON_ROW = {"query_id": "q1", "query": "what is dna", "thought": "a molecule",
                "positive_passages": [{"docid": "d1", "title": "DNA", "text": "deoxyribonucleic acid"}],
                "negative_passages": [{"docid": f"n{i}", "title": "", "text": f"neg {i}"} for i in range(5)]}
AUTHORS_ROW = {"query": "what is rna", "pos": ["ribonucleic acid"], "neg": ["n1", "n2"], "thought": "like dna",
               "pos_scores": [0.9], "neg_scores": [0.1, 0.2]}


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def dataset(path, **kw):
    return TrainDataset(JsonlRows([path]), **kw)


def test_both_formats_parse(tmp_path):
    rows = JsonlRows([write(tmp_path / "t.jsonl", [TEVATRON_ROW, AUTHORS_ROW])])
    tev, auth = rows[0], rows[1]
    assert tev.positives == ["DNA deoxyribonucleic acid"] and tev.negatives[0] == "neg 0"
    assert auth.positives == ["ribonucleic acid"] and auth.negative_scores == [0.1, 0.2]


@pytest.mark.parametrize("bad, message", [
    ("{not json", r"t.jsonl:2: malformed JSON"),
    ({"query": "q", "negative_passages": []}, r"t.jsonl:2: row has neither"),
    ({**TEVATRON_ROW, "query": "   "}, r"t.jsonl:2: empty or missing query"),
    ({**TEVATRON_ROW, "positive_passages": []}, r"t.jsonl:2: no positive passages"),
    ({**AUTHORS_ROW, "neg_scores": [1.0]}, r"t.jsonl:2: neg_scores must list one score per passage"),
])
def test_bad_rows_fail_before_training_naming_file_and_line(tmp_path, bad, message):
    path = write(tmp_path / "t.jsonl", [TEVATRON_ROW, bad])
    with pytest.raises(DataFormatError, match=message):
        dataset(path, train_n_passages=2)


def test_rows_without_thought_become_plain_queries_and_are_counted(tmp_path, caplog):
    path = write(tmp_path / "t.jsonl", [TEVATRON_ROW, {**TEVATRON_ROW, "thought": ""}, {**AUTHORS_ROW, "thought": None}])
    ds = dataset(path, train_n_passages=2, plain_query_prob=0.0)
    assert ds.stats.without_thought == 2
    assert "2 of 3 rows have no thought" in caplog.text
    assert ds[0]["thought"] == "a molecule" and ds[1]["thought"] is None and ds[2]["thought"] is None
    with pytest.raises(DataFormatError, match=r"t.jsonl:2: row 'q1' has no thought"):
        dataset(path, require_thought=True, train_n_passages=2)


def test_too_few_negatives_are_sampled_with_replacement(tmp_path, caplog):
    ds = dataset(write(tmp_path / "t.jsonl", [AUTHORS_ROW]), train_n_passages=6)
    assert ds.stats.too_few_negatives == 1 and "sampled with replacement" in caplog.text
    item = ds[0]
    assert len(item["passages"]) == 6 and set(item["passages"][1:]) <= {"n1", "n2"}
    assert item["teacher_scores"][0] == 0.9 and len(item["teacher_scores"]) == 6


def test_rows_without_negatives_fail_when_negatives_are_needed(tmp_path):
    path = write(tmp_path / "t.jsonl", [{**AUTHORS_ROW, "neg": [], "neg_scores": []}])
    with pytest.raises(DataFormatError, match="no negatives"):
        dataset(path, train_n_passages=2)
    assert dataset(path, train_n_passages=1)[0]["passages"] == ["ribonucleic acid"]


def test_sampling_is_deterministic_in_seed_and_epoch(tmp_path):
    rows = [{**TEVATRON_ROW, "query_id": str(i)} for i in range(50)]
    path = write(tmp_path / "t.jsonl", rows)
    a, b = dataset(path, train_n_passages=3, seed=1), dataset(path, train_n_passages=3, seed=1)
    assert [a[i] for i in range(50)] == [b[i] for i in range(50)]
    plain = sum(a[i]["thought"] is None for i in range(50))
    assert 0 < plain < 20  # z ~ Bernoulli(0.1)
    b.set_epoch(1)
    assert [a[i] for i in range(50)] != [b[i] for i in range(50)]
    assert a[0]["passages"][0] == "DNA deoxyribonucleic acid"
    assert len(set(a[0]["passages"][1:])) == 2  # without replacement when there are enough


def test_train_dir_accepts_folder_or_file_and_tevatron_v2_aliases(tmp_path):
    write(tmp_path / "a.jsonl", [TEVATRON_ROW])
    write(tmp_path / "b.jsonl", [AUTHORS_ROW])
    (tmp_path / "notes.txt").write_text("ignored")
    common = ["--model_name_or_path", "m", "--output_dir", str(tmp_path / "out")]
    _, data_args, _ = parse_args(argv=common + ["--train_dir", str(tmp_path), "--train_group_size", "3",
                                                "--query_max_len", "8", "--passage_max_len", "9"])
    assert len(load_train_rows(data_args)) == 2
    assert (data_args.train_n_passages, data_args.q_max_len, data_args.p_max_len) == (3, 8, 9)
    _, data_args, _ = parse_args(argv=common + ["--train_dir", str(tmp_path / "b.jsonl")])
    assert load_train_rows(data_args)[0].query == "what is rna"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .jsonl or .json files"):
        parse_args(argv=common + ["--train_dir", str(empty)])
