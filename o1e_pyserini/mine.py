"""python -m o1e_pyserini.mine: hard negatives for training from BM25 hits.

The command's code is :mod:`o1e_pyserini.search.mine`; importing its names from here is deprecated (one release)."""
import runpy

from o1e_tevatron.core.deprecation import moved_names

__getattr__ = moved_names(__name__, "o1e_pyserini.search.mine")

if __name__ == "__main__":
    runpy.run_module("o1e_pyserini.search.mine", run_name="__main__", alter_sys=True)
