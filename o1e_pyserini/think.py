"""python -m o1e_pyserini.think run|merge: thoughts for many queries, split across processes and merged.

The command's code is :mod:`o1e_pyserini.thinking.parts`; importing its names from here is deprecated (one release)."""
import runpy

from o1e_tevatron.core.deprecation import moved_names

__getattr__ = moved_names(__name__, "o1e_pyserini.thinking.parts")

if __name__ == "__main__":
    runpy.run_module("o1e_pyserini.thinking.parts", run_name="__main__", alter_sys=True)
