"""Training rows: both formats, errors that name file and line, deterministic sampling."""
import json
import math

import pytest

from o1e_tevatron.arguments import parse_args
from o1e_tevatron.data import DataFormatError, JsonlRows, TrainDataset, load_train_rows

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")  # deprecations that become errors

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
    ("{not json", r"t.jsonl:2: not valid JSON"),
    ({"query": "q", "negative_passages": []}, r"t.jsonl:2: row has neither"),
    ({**TEVATRON_ROW, "query": "   "}, r"t.jsonl:2: empty or missing query"),
    ({**TEVATRON_ROW, "positive_passages": []}, r"t.jsonl:2: no positive passages"),
    ({**AUTHORS_ROW, "neg_scores": [1.0]}, r"t.jsonl:2: neg_scores must list one score per passage"),
    ({**AUTHORS_ROW, "neg_scores": [0.1, float("nan")]}, r"t.jsonl:2: neg_scores\[1\] must be a finite number, got nan"),
    ({**AUTHORS_ROW, "pos_scores": [float("inf")]}, r"t.jsonl:2: pos_scores\[0\] must be a finite number, got inf"),
    ({**AUTHORS_ROW, "pos_scores": ["high"]}, r"t.jsonl:2: pos_scores\[0\] must be a finite number, got 'high'"),
    ('{"query": "q \\ud800", "pos": ["p"], "neg": ["n"]}', r"t.jsonl:2: the query has a lone surrogate"),
    ({**AUTHORS_ROW, "thought": "t \udfff"}, r"t.jsonl:2: the thought has a lone surrogate"),
    ({**AUTHORS_ROW, "neg": ["fine", "bad \ud83d"]}, r"t.jsonl:2: a passage has a lone surrogate"),
    ({**TEVATRON_ROW, "positive_passages": [{"title": 3, "text": "t"}]}, r"t.jsonl:2: a passage title must be a string"),
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
    assert 0 < plain < 20  # z ~ Bernoulli(0.1); test_plain_query_rate_is_the_one_given bounds it
    b.set_epoch(1)
    assert [a[i] for i in range(50)] != [b[i] for i in range(50)]
    assert a[0]["passages"][0] == "DNA deoxyribonucleic acid"
    assert len(set(a[0]["passages"][1:])) == 2  # without replacement when there are enough


@pytest.mark.parametrize("prob", [0.0, 0.3, 1.0])
def test_plain_query_rate_is_the_one_given(tmp_path, prob):
    """z ~ Bernoulli(p) per row: exactly never at p=0, always at p=1, within 5 sigma of n*p at p=0.3."""
    n = 1000
    ds = dataset(write(tmp_path / "t.jsonl", [TEVATRON_ROW] * n), train_n_passages=1, plain_query_prob=prob, seed=3)
    plain = sum(ds[i]["thought"] is None for i in range(n))
    bound = 5 * math.sqrt(n * prob * (1 - prob))
    assert abs(plain - n * prob) <= bound, (plain, n * prob, bound)


def test_positive_is_drawn_from_all_positives(tmp_path):
    positives = [f"positive {i}" for i in range(4)]
    row = {**AUTHORS_ROW, "pos": positives, "pos_scores": [0.9, 0.8, 0.7, 0.6]}
    path = write(tmp_path / "t.jsonl", [row] * 40)
    ds = dataset(path, train_n_passages=2, seed=5)
    drawn = [ds[i]["passages"][0] for i in range(40)]
    assert set(drawn) == set(positives)
    assert [ds[i]["teacher_scores"][0] for i in range(40)] == [row["pos_scores"][positives.index(p)] for p in drawn]
    assert drawn == [dataset(path, train_n_passages=2, seed=5)[i]["passages"][0] for i in range(40)]  # deterministic
    ds.set_epoch(1)
    assert [ds[i]["passages"][0] for i in range(40)] != drawn  # and redrawn each epoch
    fixed = dataset(path, train_n_passages=2, seed=5, positive_passage_no_shuffle=True)
    assert {fixed[i]["passages"][0] for i in range(40)} == {"positive 0"}


@pytest.mark.parametrize("flag, value, message", [
    ("--temperature", "nan", r"--temperature nan: must be a finite number > 0"),
    ("--temperature", "0", r"--temperature 0.0: must be a finite number > 0"),
    ("--temperature", "-0.02", r"--temperature -0.02: must be a finite number > 0"),
    ("--gen_loss_weight", "nan", r"--gen_loss_weight nan: must be in \[0, 1\]"),
    ("--gen_loss_weight", "1.5", r"--gen_loss_weight 1.5: must be in \[0, 1\]"),
    ("--kd_weight", "inf", r"--kd_weight inf: must be a finite number >= 0"),
    ("--kd_teacher_temperature", "0", r"--kd_teacher_temperature 0.0: must be a finite number > 0"),
    ("--plain_query_prob", "nan", r"--plain_query_prob nan: must be in \[0, 1\]"),
    ("--learning_rate", "nan", r"--learning_rate nan: must be a finite number >= 0"),
    ("--lora_dropout", "1", r"--lora_dropout 1.0: must be in \[0, 1\)"),
    ("--thought_max_len", "0", r"--thought_max_len 0: must be an integer >= 1"),
    ("--gen_loss_chunk_size", "0", r"--gen_loss_chunk_size 0: must be an integer >= 1"),
    ("--grounding_passages", "2", r"--grounding_passages 2: must be 0 unless --template_layout chat"),
    ("--grounding_max_words", "0", r"--grounding_max_words 0: must be an integer >= 1"),
])
def test_invalid_numeric_flags_fail_naming_the_flag(tmp_path, flag, value, message):
    write(tmp_path / "a.jsonl", [TEVATRON_ROW])
    argv = ["--model_name_or_path", "m", "--output_dir", str(tmp_path / "out"), "--train_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=message):
        parse_args(argv=argv + [flag, value])


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


def test_grounding_passages_travel_with_the_row_and_are_required_when_asked(tmp_path):
    grounded = dict(TEVATRON_ROW, grounding=["dna is a molecule", {"title": "Genes", "text": "made of dna"}])
    path = write(tmp_path / "t.jsonl", [grounded, TEVATRON_ROW])
    ds = dataset(path, train_n_passages=1, plain_query_prob=0.0)
    assert ds[0]["grounding"] == ["dna is a molecule", "Genes made of dna"] and ds[1]["grounding"] is None
    with pytest.raises(DataFormatError, match=r"t.jsonl:2: row 'q1' has no 'grounding' passages"):
        dataset(path, train_n_passages=1, require_grounding=True)
    bad = write(tmp_path / "bad.jsonl", [dict(TEVATRON_ROW, grounding="not a list")])
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1: 'grounding' must be a list"):
        dataset(bad, train_n_passages=1)


def test_the_students_chat_prompt_takes_the_teachers_prompts_file(tmp_path):
    write(tmp_path / "a.jsonl", [TEVATRON_ROW])
    prompt = tmp_path / "prompt.json"
    prompt.write_text(json.dumps({"task": "Write a passage that answers the claim."}))
    argv = ["--model_name_or_path", "m", "--output_dir", str(tmp_path / "out"), "--train_dir", str(tmp_path),
            "--template_layout", "chat", "--prompts_file", str(prompt), "--grounding_passages", "2"]
    model_args, data_args, _ = parse_args(argv=argv)
    template = model_args.o1e_config(data_args).template
    assert template.prompt["task"] == "Write a passage that answers the claim." and template.grounding_passages == 2
    with pytest.raises(ValueError, match="--prompts_file .*: must be given with --template_layout chat only"):
        parse_args(argv=argv[:6] + ["--prompts_file", str(prompt)])[0].o1e_config(data_args)
