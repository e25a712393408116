"""python -m o1e_pyserini.grounding: each training row's top BM25 passages, for checkpoints that think grounded.

The command's code is :mod:`o1e_pyserini.thinking.grounding`; importing its names from here is deprecated (one release)."""
import runpy

from o1e_tevatron.core.deprecation import moved_names

__getattr__ = moved_names(__name__, "o1e_pyserini.thinking.grounding")

if __name__ == "__main__":
    runpy.run_module("o1e_pyserini.thinking.grounding", run_name="__main__", alter_sys=True)
