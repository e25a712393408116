"""The thought cache: reused by content (not path), missed when any key element changes, safe under
two concurrent writers."""
import json
import multiprocessing
import shutil

import numpy as np
import pytest

from o1e_pyserini.encoders.o1e import O1EQueryEncoder
from o1e_pyserini.thinking.cache import ThoughtCache

from tests.search.conftest import with_other_weights

QUERIES = ["what causes rodent genome amplification", "dna", "0-dimensional biomaterials"]
SETTINGS = dict(num_thoughts=2, temperature=1.0, max_new_tokens=6, seed=4, batch_size=2)
CONTEXT = {"model": "m", "template": {"thought_max_len": 128}, "sampling": {"temperature": 0.1, "top_p": 0.9},
           "seed": 0, "dtype": "float32", "device": "cpu"}


def test_thoughts_are_reused_across_runs_and_paths_and_equal_fresh_ones(llama_checkpoint, tmp_path):
    fresh = O1EQueryEncoder(str(llama_checkpoint), **SETTINGS)
    expected = fresh.encode_batch(QUERIES)
    first = O1EQueryEncoder(str(llama_checkpoint), thought_cache=str(tmp_path / "cache"), **SETTINGS)
    np.testing.assert_allclose(first.encode_batch(QUERIES), expected, atol=1e-6)
    assert first.cache_hits == 0 and len(first.cache) == len(QUERIES)
    moved = shutil.copytree(llama_checkpoint, tmp_path / "moved")  # same content, another path
    second = O1EQueryEncoder(str(moved), thought_cache=str(tmp_path / "cache"), **{**SETTINGS, "batch_size": 3})
    np.testing.assert_allclose(second.encode_batch(QUERIES[::-1]), expected[::-1], atol=1e-5)  # re-encoded
    assert second.cache_hits == len(QUERIES) and second.encoded.thoughts == fresh.encoded.thoughts[::-1]
    assert second.encoded.generated_tokens == [0, 0, 0]  # nothing generated
    assert len(second.cache) == len(QUERIES)


def with_other_template(checkpoint, out_dir):
    """The same weights with another query length in o1e_config.json's template."""
    copy = shutil.copytree(checkpoint, out_dir)
    config = json.loads((copy / "o1e_config.json").read_text())
    config["template"]["query_max_len"] -= 1
    (copy / "o1e_config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("change", ["weights", "template", "seed", "temperature", "top_p", "max_new_tokens",
                                    "num_thoughts", "query"])
def test_a_change_of_any_key_element_misses(llama_checkpoint, tmp_path, change):
    cache = str(tmp_path / "cache")
    O1EQueryEncoder(str(llama_checkpoint), thought_cache=cache, **SETTINGS).encode_batch(QUERIES)
    checkpoint, settings, queries = llama_checkpoint, dict(SETTINGS), list(QUERIES)
    if change == "weights":
        checkpoint = with_other_weights(llama_checkpoint, tmp_path / "retrained")
    elif change == "template":
        checkpoint = with_other_template(llama_checkpoint, tmp_path / "relaid")
    elif change == "query":
        queries = [q + "?" for q in queries]
    else:
        settings[change] = {"seed": 5, "temperature": 0.5, "top_p": 0.8, "max_new_tokens": 5, "num_thoughts": 3}[change]
    again = O1EQueryEncoder(str(checkpoint), thought_cache=cache, **settings)
    again.encode_batch(queries)
    assert again.cache_hits == 0 and len(again.cache) == 2 * len(QUERIES)


@pytest.mark.parametrize("element", ["model", "template", "sampling", "seed", "dtype", "device"])
def test_every_context_element_is_in_the_key(tmp_path, element):
    stored = ThoughtCache(tmp_path, CONTEXT)
    stored.put({"q": [[1, 2], [3]]})
    assert ThoughtCache(tmp_path, dict(CONTEXT)).get(["q", "other"]) == {"q": [[1, 2], [3]]}
    changed = {**CONTEXT, element: {"model": "m2", "template": {"thought_max_len": 64}, "sampling": {"temperature": 0.2},
                                    "seed": 1, "dtype": "bfloat16", "device": "cuda"}[element]}
    assert ThoughtCache(tmp_path, changed).get(["q"]) == {}


def _write(folder, worker):
    cache = ThoughtCache(folder, CONTEXT)
    for start in range(0, 300, 10):  # overlapping keys, many small transactions
        cache.put({f"query {i}": [[worker, i]] for i in range(start, start + 10)})


def test_two_concurrent_writers_leave_no_torn_or_duplicated_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write, args=(tmp_path, w)) for w in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    cache = ThoughtCache(tmp_path, CONTEXT)
    assert len(cache) == 300
    found = cache.get([f"query {i}" for i in range(300)])
    assert len(found) == 300 and all(ids[0][1] == i and ids[0][0] in (1, 2)
                                     for i, ids in ((int(q.split()[1]), v) for q, v in found.items()))
    assert json.dumps(found)  # every entry parses


def test_a_file_that_is_not_a_database_is_named_and_left_as_it_is(tmp_path):
    """SQLite's 'file is not a database' reached the user as a raw traceback."""
    from o1e_pyserini.encoders.base import O1EInputError
    from o1e_pyserini.thinking.cache import DATABASE_NAME
    garbage = tmp_path / DATABASE_NAME
    garbage.write_bytes(b"not a database\n" * 100)
    with pytest.raises(O1EInputError, match=f"the thought cache at {garbage} is not a readable SQLite database "
                                            r"\(file is not a database\): move it away"):
        ThoughtCache(tmp_path, CONTEXT)
    assert garbage.read_bytes() == b"not a database\n" * 100


def test_a_search_with_a_corrupt_cache_ends_in_one_line_and_runs_without_it(cli, encoded_corpus, llama_checkpoint,
                                                                           topics_tsv, tmp_path):
    from o1e_pyserini.thinking.cache import DATABASE_NAME
    (tmp_path / "cache").mkdir()
    garbage = tmp_path / "cache" / DATABASE_NAME
    garbage.write_bytes(bytes(range(256)) * 8)
    search = ["o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics_tsv,
              "--output", tmp_path / "run.txt", "--encoder", llama_checkpoint, "--hits", 5, "--device", "cpu",
              "--o1e-num-thoughts", 1, "--o1e-max-thought-tokens", 4, "--o1e-seed", 0,
              "--o1e-thought-cache", tmp_path / "cache"]
    proc = cli(*search, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: the thought cache at {garbage} is not a readable SQLite database (file is not a database): "
        "move it away, or run without the cache (--no-thought-cache; --o1e-no-thought-cache in o1e_pyserini.search.faiss)")
    assert garbage.read_bytes() == bytes(range(256)) * 8 and not (tmp_path / "run.txt").exists()
    cli(*search, "--o1e-no-thought-cache")
    assert (tmp_path / "run.txt").read_text() and garbage.read_bytes() == bytes(range(256)) * 8
