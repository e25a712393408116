"""The thought cache and its key checked by value (issue 24's mutation campaign): pinned digests of the
context and the key (a change of the scheme or of what goes into a key must be deliberate), lookups past
SQLite's parameter limit, the table, the connection settings and the errors."""
import json
import sqlite3

import pytest

from o1e_pyserini.thinking import cache as tc
from o1e_pyserini.encoders.base import O1EInputError
from o1e_pyserini.thinking.backends import query_seed
from o1e_pyserini.thinking.cache import DATABASE_NAME, GENERATION_SCHEME, ThoughtCache

CONTEXT = {"model": "m", "seed": 0}


def test_the_context_and_the_key_are_pinned_digests(tmp_path):
    cache = ThoughtCache(tmp_path, CONTEXT)
    assert GENERATION_SCHEME == 2
    assert cache.context == "73bfb402760aa70d807641f42ff407edf2b0ff6d"
    assert cache.key("q") == "243de0a51eb85a581e0fcaf961cc112defa52b65"
    assert cache.key("q ") != cache.key("q") != cache.key("Q")


def test_the_per_query_seed_is_a_pinned_63_bit_hash_of_seed_and_query():
    assert query_seed(0, "q") == 6026152356989871502
    assert query_seed(7, "dna repair") == 3403575985353935000
    assert query_seed(0, "a") == 3363031415808563859  # odd: the mask keeps the lowest bit
    assert query_seed(3, "x") == 3273008421112522512  # the hash's top bit was set: the mask clears it
    assert query_seed(1, "q") != query_seed(0, "q") != query_seed(0, "q2")
    assert all(0 <= query_seed(s, "x" * s) < 2 ** 63 for s in range(64))
    assert max(query_seed(s, "q").bit_length() for s in range(64)) == 63  # the top bit of 64 is the one cleared


def test_the_database_lives_in_the_folder_which_is_made(tmp_path):
    folder = tmp_path / "a" / "b"
    cache = ThoughtCache(folder, CONTEXT)
    assert cache.folder == folder and cache.path == folder / DATABASE_NAME == folder / "thoughts.sqlite"
    assert cache.path.is_file()
    with sqlite3.connect(cache.path) as db:
        assert db.execute("SELECT sql FROM sqlite_master WHERE type = 'table'").fetchall() == [
            ("CREATE TABLE thoughts (key TEXT PRIMARY KEY, ids TEXT NOT NULL)",)]
    ThoughtCache(folder, CONTEXT)  # opening it again keeps the table


def test_entries_are_stored_as_json_under_their_key_and_the_first_writer_wins(tmp_path):
    cache = ThoughtCache(tmp_path, CONTEXT)
    cache.put({"q": [[1, 2], []], "r": [[3]]})
    cache.put({"q": [[9]]})
    with sqlite3.connect(cache.path) as db:
        rows = dict(db.execute("SELECT key, ids FROM thoughts"))
    assert rows == {cache.key("q"): json.dumps([[1, 2], []]), cache.key("r"): "[[3]]"}
    assert len(cache) == 2
    assert cache.get(["q", "r", "absent"]) == {"q": [[1, 2], []], "r": [[3]]}
    assert cache.get([]) == {}


def test_a_lookup_of_more_queries_than_sqlites_parameter_limit_finds_them_all(tmp_path):
    cache = ThoughtCache(tmp_path, CONTEXT)
    queries = [f"query {i}" for i in range(1201)]
    cache.put({q: [[i]] for i, q in enumerate(queries)})
    assert len(cache) == 1201
    assert cache.get(queries) == {q: [[i]] for i, q in enumerate(queries)}
    assert cache.get(queries[499:502]) == {q: [[i]] for i, q in enumerate(queries) if 499 <= i < 502}


def test_the_queries_go_in_chunks_of_500(tmp_path, monkeypatch):
    cache = ThoughtCache(tmp_path, CONTEXT)
    sizes = []
    connect = sqlite3.connect

    class Spy:
        def __init__(self, db):
            self.db = db

        def execute(self, sql, parameters=()):
            sizes.append(len(parameters))
            return self.db.execute(sql, parameters)

        def close(self):
            self.db.close()

    monkeypatch.setattr(tc.sqlite3, "connect", lambda *a, **k: Spy(connect(*a, **k)))
    cache.get([f"q{i}" for i in range(1001)])
    assert sizes == [500, 500, 1]


def test_a_writer_waits_two_minutes_for_the_lock(tmp_path, monkeypatch):
    calls = []
    connect = sqlite3.connect
    monkeypatch.setattr(tc.sqlite3, "connect", lambda *a, **k: calls.append((a, k)) or connect(*a, **k))
    cache = ThoughtCache(tmp_path, CONTEXT)
    assert calls == [((cache.path,), {"timeout": 120})]


def test_a_locked_or_unopenable_database_is_sqlites_own_error_not_an_input_error(tmp_path):
    (tmp_path / DATABASE_NAME).mkdir()  # a folder where the file goes: "unable to open database file"
    with pytest.raises(sqlite3.OperationalError):
        ThoughtCache(tmp_path, CONTEXT)


def test_a_damaged_database_is_named_with_what_to_do(tmp_path):
    path = tmp_path / DATABASE_NAME
    path.write_bytes(b"x" * 4096)
    with pytest.raises(O1EInputError) as error:
        ThoughtCache(tmp_path, CONTEXT)
    assert str(error.value) == (f"the thought cache at {path} is not a readable SQLite database (file is not a database): "
                                "move it away, or run without the cache (--no-thought-cache; --o1e-no-thought-cache "
                                "in o1e_pyserini.search.faiss)")
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_every_connection_is_closed(tmp_path, monkeypatch):
    opened = []
    connect = sqlite3.connect

    class Tracked:
        def __init__(self, db):
            self.db, self.closed = db, False
            opened.append(self)

        def __getattr__(self, name):
            return getattr(self.db, name)

        def __enter__(self):
            return self.db.__enter__()

        def __exit__(self, *exc):
            return self.db.__exit__(*exc)

        def close(self):
            self.closed = True
            self.db.close()

    monkeypatch.setattr(tc.sqlite3, "connect", lambda *a, **k: Tracked(connect(*a, **k)))
    cache = ThoughtCache(tmp_path, CONTEXT)
    cache.put({"q": [[1]]})
    cache.get(["q"])
    len(cache)
    assert len(opened) == 4 and all(db.closed for db in opened)
