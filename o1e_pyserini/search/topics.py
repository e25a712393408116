"""Local topics files for Pyserini's search CLIs: checked by o1e's reader (``core.readers.topics``) and,
when they hold what Pyserini's or Anserini's readers fail on (a byte-order mark, blank lines), handed to
Pyserini as a clean copy; the user's file is left as it is."""
from __future__ import annotations

import os

from o1e_tevatron.core import readers
from o1e_tevatron.core.errors import InputError

LOCAL_TOPICS = (".tsv", ".txt")


def is_local(topics: str) -> bool:
    return topics.endswith(LOCAL_TOPICS)


def read_local(topics: str) -> dict[str, str]:
    """``{query id: text}`` of a local topics file."""
    if not os.path.isfile(topics):
        raise InputError("no such file (a local topics file has query_id<TAB>text lines)", f"--topics {topics}")
    return readers.topics(topics)


def with_flag(rest: list[str], flag: str, value: str) -> list[str]:
    """``rest`` with ``flag``'s value replaced (both ``--flag v`` and ``--flag=v`` forms)."""
    out, skip = [], False
    for arg in rest:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out + [flag, value]


def for_pyserini(topics: str, scratch: str) -> str:
    """The topics to hand Pyserini: a local file checked, and a clean copy of it under ``scratch`` when
    it needs one; a prebuilt topics name as it is."""
    if not is_local(topics):
        return topics
    read_local(topics)
    return readers.clean_copy(topics, scratch) or topics
