"""A thought cache on disk: thoughts are the expensive part of a thinking query, and they are
determined by the checkpoint's content, the template, the sampling settings, the seed and the query.

Entries live in one SQLite database (``$O1E_CACHE/thoughts/thoughts.sqlite``), keyed by a digest of
exactly those (``ThoughtCache.key``; the checkpoint by its content fingerprint, never its path), and
hold the k thoughts' token ids. SQLite's locking makes two concurrent runs safe: a write is one
transaction of ``INSERT OR IGNORE`` (no torn entry; the first writer of a key wins and no key is held
twice). Only reproducible thoughts are cached: a seed (drawn per query, ``thinking.query_seed``, so a
query's thoughts do not depend on its batch) or greedy decoding.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Sequence

from o1e_tevatron.core.fingerprint import fingerprint

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
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS thoughts (key TEXT PRIMARY KEY, ids TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=120)

    def key(self, query: str) -> str:
        return fingerprint(context=self.context, query=query)

    def get(self, queries: Sequence[str]) -> dict[str, list[list[int]]]:
        """{query: its k thoughts' ids} for the queries the cache holds."""
        keys = {self.key(q): q for q in queries}
        db = self._connect()
        try:
            found = {}
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = list(keys)[start:start + 500]
                rows = db.execute(f"SELECT key, ids FROM thoughts WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update({keys[key]: json.loads(ids) for key, ids in rows})
            return found
        finally:
            db.close()

    def put(self, thoughts: dict[str, list[list[int]]]) -> None:
        db = self._connect()
        try:
            with db:  # one transaction
                db.executemany("INSERT OR IGNORE INTO thoughts (key, ids) VALUES (?, ?)",
                               [(self.key(q), json.dumps(ids)) for q, ids in thoughts.items()])
        finally:
            db.close()

    def __len__(self) -> int:
        db = self._connect()
        try:
            return db.execute("SELECT COUNT(*) FROM thoughts").fetchone()[0]
        finally:
            db.close()
