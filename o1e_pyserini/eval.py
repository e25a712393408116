"""python -m o1e_pyserini.eval [ttest|compare|regress|import-shards|fuse|adaptive-curve]: the evaluation command.

The command's code is :mod:`o1e_pyserini.evaluation.cli` (the harness: ``.harness``; compare and regress:
``.regressions``); importing its names from here is deprecated (one release)."""
import runpy

from o1e_tevatron.core.deprecation import moved_names

_HARNESS, _REGRESSIONS = "o1e_pyserini.evaluation.harness", "o1e_pyserini.evaluation.regressions"
__getattr__ = moved_names(__name__, {
    "main": "o1e_pyserini.evaluation.cli",
    **dict.fromkeys(("EvalConfig", "evaluate", "summary_line", "DEFAULT_OUTPUT", "THOUGHT_FLAGS", "QUERY_VECTOR_FLAGS",
                     "GROUNDING_FLAGS"), _HARNESS),
    **dict.fromkeys(("compare", "regress", "check_regressions", "REGRESSIONS", "COST_COLUMNS"), _REGRESSIONS)})

if __name__ == "__main__":
    runpy.run_module("o1e_pyserini.evaluation.cli", run_name="__main__", alter_sys=True)
