"""python -m o1e_pyserini.encode: Pyserini's corpus encoding with o1e's encoders registered.

The command's code is :mod:`o1e_pyserini.search.encode`; importing its names from here is deprecated (one release)."""
import runpy

from o1e_tevatron.core.deprecation import moved_names

__getattr__ = moved_names(__name__, "o1e_pyserini.search.encode")

if __name__ == "__main__":
    runpy.run_module("o1e_pyserini.search.encode", run_name="__main__", alter_sys=True)
