"""A thought cache on disk: thoughts are the expensive part of a thinking query, and they are
determined by the checkpoint's content, the template, the sampling settings, the seed and the query.

Entries live in one SQLite database (``$O1E_CACHE/thoughts/thoughts.sqlite``), keyed by a digest of
exactly those (``ThoughtCache.key``; the checkpoint by its content fingerprint, never its path), and
hold the k thoughts' token ids. SQLite's locking makes two concurrent runs safe: a write is one
transaction of ``INSERT OR IGNORE`` (no torn entry; the first writer of a key wins and no key is held
twice). Only reproducible thoughts are cached: a seed (drawn per query, ``thinking.query_seed``, so a
query's thoughts do not depend on its batch) or greedy decoding. A file there that is not an SQLite
database (or a damaged one) is an input error naming it; o1e never deletes or rewrites it.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Iterator, Sequence

from o1e_tevatron.core.fingerprint import fingerprint

from ..encoders.base import O1EInputError

DATABASE_NAME = "thoughts.sqlite"
#: How o1e turns those inputs into thoughts (sampler, suppressed tokens, seeding); bumped whenever that
#: changes, so thoughts cached by an older o1e are missed rather than served.
GENERATION_SCHEME = 2  # 2: the layout's markers are suppressed in thoughts


class ThoughtCache:
    def __init__(self, folder: str | Path, context: dict):
        """``context``: everything but the query that determines a thought (model fingerprint, template,
        sampling settings, seed, dtype, device type)."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / DATABASE_NAME
        self.context = fingerprint(scheme=GENERATION_SCHEME, **context)
        with self._connect() as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS thoughts (key TEXT PRIMARY KEY, ids TEXT NOT NULL)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection, closed after use. SQLite refuses a file that is not its own before writing a byte
        (``file is not a database``, ``database disk image is malformed``): one line saying what to do."""
        db = sqlite3.connect(self.path, timeout=120)
        try:
            yield db
        except sqlite3.OperationalError:  # locked, unwritable: the message says so
            raise
        except sqlite3.DatabaseError as e:
            raise O1EInputError(f"the thought cache at {self.path} is not a readable SQLite database ({e}): move it "
                                "away, or run without the cache (--no-thought-cache; --o1e-no-thought-cache in "
                                "o1e_pyserini.search.faiss)") from None
        finally:
            db.close()

    def key(self, query: str) -> str:
        return fingerprint(context=self.context, query=query)

    def get(self, queries: Sequence[str]) -> dict[str, list[list[int]]]:
        """{query: its k thoughts' ids} for the queries the cache holds."""
        keys = {self.key(q): q for q in queries}
        found = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = list(keys)[start:start + 500]
                rows = db.execute(f"SELECT key, ids FROM thoughts WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update({keys[key]: json.loads(ids) for key, ids in rows})
        return found

    def put(self, thoughts: dict[str, list[list[int]]]) -> None:
        with self._connect() as db, db:  # one transaction
            db.executemany("INSERT OR IGNORE INTO thoughts (key, ids) VALUES (?, ?)",
                           [(self.key(q), json.dumps(ids)) for q, ids in thoughts.items()])

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM thoughts").fetchone()[0]
