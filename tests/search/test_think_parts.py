"""Thoughts split across processes: a part killed midway resumes, and the parts merge into one thoughts.jsonl."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from o1e_pyserini.thinking.parts import main, part_path
from o1e_pyserini.thinking.backends import RecordedThoughts


@pytest.fixture
def topics(demo_dir, tmp_path):
    rows = [json.loads(line) for line in (demo_dir / "queries.jsonl").read_text().splitlines()]
    path = tmp_path / "topics.tsv"
    path.write_text("".join(f"{row['_id']}\t{row['text']}\n" for row in rows))
    return path, [row["_id"] for row in rows]


def think_flags(checkpoint, topics_path, out, *extra):
    return ["--model", str(checkpoint), "--topics", str(topics_path), "--output-dir", str(out), "--num-shards", "2",
            "--num-thoughts", "2", "--max-thought-tokens", "4", "--batch-size", "1", "--seed", "0", *extra]


def test_a_killed_part_resumes_and_the_parts_merge(llama_checkpoint, topics, tmp_path):
    topics_path, ids = topics
    out = tmp_path / "thoughts"
    first = part_path(out, 0, 2)
    proc = subprocess.Popen([sys.executable, "-m", "o1e_pyserini.think", "run",
                             *think_flags(llama_checkpoint, topics_path, out, "--shard-index", "0")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if first.exists() and first.read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = first.read_text().splitlines(keepends=True)
    assert 2 <= len(kept) < len(ids) // 2, "the part was not killed midway"
    with open(first, "a") as f:
        f.write('{"query_id": "' + ids[len(kept)] + '", "text": "cut by the ki')  # a line torn by the kill

    with pytest.raises(FileNotFoundError, match="part 1 of 2 was never run"):
        main(["merge", "--topics", str(topics_path), "--output-dir", str(out), "--num-shards", "2"])
    part_path(out, 1, 2).write_text("")
    with pytest.raises(ValueError, match="queries have no thoughts yet"):  # part 0 is unfinished
        main(["merge", "--topics", str(topics_path), "--output-dir", str(out), "--num-shards", "2"])
    main(["run", *think_flags(llama_checkpoint, topics_path, out, "--shard-index", "0")])
    assert first.read_text().splitlines(keepends=True)[:len(kept)] == kept  # finished queries were not redone
    os.environ["RANK"], os.environ["WORLD_SIZE"] = "1", "2"  # the second part as torchrun's rank 1
    try:
        main(["run", *think_flags(llama_checkpoint, topics_path, out)])
    finally:
        del os.environ["RANK"], os.environ["WORLD_SIZE"]
    merged = main(["merge", "--topics", str(topics_path), "--output-dir", str(out), "--num-shards", "2"])

    rows = [json.loads(line) for line in merged.read_text().splitlines()]
    assert [row["query_id"] for row in rows] == ids  # each query once, in topic order
    assert all(len(row["thoughts"]) == 2 for row in rows)
    recorded = RecordedThoughts(merged)  # what later runs read (--thoughts-file)
    assert recorded.texts([rows[5]["text"]]) == [rows[5]["thoughts"]]

    # other sampling settings: the finished part is not taken for theirs, it starts over
    flags = think_flags(llama_checkpoint, topics_path, out, "--shard-index", "1")
    main(["run", *flags[:flags.index("--num-thoughts") + 1], "1", *flags[flags.index("--num-thoughts") + 2:]])
    assert all(len(json.loads(line)["thoughts"]) == 1 for line in part_path(out, 1, 2).read_text().splitlines())


def test_merge_refuses_a_query_in_two_parts(topics, tmp_path):
    topics_path, ids = topics
    out = tmp_path / "thoughts"
    out.mkdir()
    line = json.dumps({"query_id": ids[0], "text": "x", "thoughts": ["t"]}) + "\n"
    part_path(out, 0, 2).write_text(line)
    part_path(out, 1, 2).write_text(line)
    with pytest.raises(ValueError, match=f"query {ids[0]} is also in another part"):
        main(["merge", "--topics", str(topics_path), "--output-dir", str(out), "--num-shards", "2"])
