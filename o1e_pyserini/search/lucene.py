"""python -m o1e_pyserini.search.lucene: Pyserini's BM25 search (``pyserini.search.lucene``, every flag
unchanged) with Java prepared for Pyserini 1.6.0, for baselines and hybrid runs next to o1e's dense runs.
A local ``--topics`` file is checked by o1e's reader and, with blank lines or a byte-order mark (on which
Anserini's TopicReader fails), searched as a clean copy.

    python -m o1e_pyserini.search.lucene --index DIR --topics topics.tsv --output bm25.txt --bm25
"""
import argparse
import logging
import runpy
import sys
import tempfile

import o1e_pyserini  # noqa: F401  (prepares Java before Pyserini starts it)
from o1e_tevatron.core.errors import run_command
from o1e_tevatron.core.redact import install_log_redaction

from .topics import for_pyserini, with_flag


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    topics_flag = argparse.ArgumentParser(add_help=False)
    topics_flag.add_argument("--topics")
    given = topics_flag.parse_known_args(argv)[0].topics
    with tempfile.TemporaryDirectory(prefix="o1e-search-") as scratch:
        if given:
            argv = with_flag(argv, "--topics", for_pyserini(given, scratch))
        sys.argv = ["pyserini.search.lucene"] + argv
        runpy.run_module("pyserini.search.lucene", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    install_log_redaction()
    run_command(main)
