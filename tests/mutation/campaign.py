"""The mutation campaign of o1e's core (issue 24): mutmut over the modules below, against the fast unit tests.

    bash tests/mutation/run.sh                 # every module (about an hour on 2 contended cores)
    bash tests/mutation/run.sh redact fusion   # some of them
    bash tests/mutation/run.sh --report        # the scores of the last run, without running
    bash tests/mutation/run.sh --survivors     # run again only the mutants the last run left alive

mutmut's settings (files, the fast tests it runs) are in setup.cfg's ``[mutmut]``; its copy of the tree is
``mutants/`` (ignored by git and never collected by pytest). A module here is a file, or the functions of a
file that the issue names (the family models' pooling and loss parts, not their loading code). A mutant
counts as killed when a test failed (or timed out); "no tests" and survivors count against the score.
The per-module scores go to ``mutants/campaign-scores.json`` and to stdout.
"""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MUTMUT = Path(sys.executable).with_name("mutmut")

#: module -> (file, mutant-name patterns); the patterns name mutmut's trampolines: x_<function>,
#: xǁ<Class>ǁ<method>
MODULES: dict[str, tuple[str, list[str]]] = {
    "redact": ("o1e_tevatron/core/redact.py", ["*"]),
    "fingerprint": ("o1e_tevatron/core/fingerprint.py", ["*"]),
    "fusion": ("o1e_pyserini/fusion.py", ["*"]),
    "thought_cache": ("o1e_pyserini/thought_cache.py", ["*"]),
    "objective": ("o1e_tevatron/objective.py", ["*"]),
    # the top-k merge (and the search that feeds it); not the shard-directory discovery or GPU copies
    "sharded": ("o1e_pyserini/search/sharded.py", ["xǁShardedIndexǁ_merge", "xǁShardedIndexǁsearch",
                                                   "xǁShardedIndexǁ_shard_search"]),
    # the losses; not the torch.distributed helpers (tests/test_distributed.py, not a fast test)
    "loss": ("o1e_tevatron/loss.py", ["xǁInfoNCELossǁ*", "x_contrastive_batch", "xǁMaxStepSelfDistillationLossǁ*",
                                      "xǁThoughtGenerationLossǁ*", "x__chunk_token_sum", "x__vocab_size",
                                      "x_linear_head", "xǁLinearCrossEntropySumǁ*", "x__head_logits",
                                      "x__head_grads", "x__softmax_minus_onehot", "xǁDistillationLossǁ*"]),
    "template": ("o1e_tevatron/template.py", ["*"]),
    # the family models' pooling and loss parts
    "families.base": ("o1e_tevatron/families/base.py", ["x_last_positions", "x_position_ids_from_mask",
                                                        "xǁFamilyModelǁforward", "xǁFamilyModelǁhidden_states",
                                                        "xǁFamilyModelǁencode_query", "xǁFamilyModelǁencode_passage"]),
    "families.debater": ("o1e_tevatron/families/debater.py", ["xǁDebaterModelǁ__init__", "xǁDebaterModelǁpool_query",
                                                              "xǁDebaterModelǁpool_passage",
                                                              "xǁDebaterModelǁvector_loss_parts",
                                                              "xǁDebaterTemplateǁplain_query", "xǁDebaterTemplateǁpassage",
                                                              "x_index_rows", "x_best_step_hits"]),
    "modeling": ("o1e_tevatron/modeling.py", ["x_pool_emb", "x_pool_last", "x_pool_mean", "xǁO1EModelǁ__init__",
                                              "xǁO1EModelǁpool", "xǁO1EModelǁvector_loss_parts"]),
    # the nucleus sampler, eq. 11 averaging, and the per-query seed that is part of a thought's cache key
    "nucleus": ("o1e_pyserini/thinking.py", ["xǁNucleusSamplerǁ*"]),
    "eq11": ("o1e_pyserini/thinking.py", ["x_average_thought_vectors"]),
    "query_seed": ("o1e_pyserini/thinking.py", ["x_query_seed"]),
}
KILLED = {1, 3}
TIMEOUT = {36, -24, 24, 152, 255}
STATUS = {0: "survived", 33: "no tests", 5: "no tests", None: "not run"}


def mutant_patterns(module: str) -> list[str]:
    file, patterns = MODULES[module]
    prefix = file[:-3].replace("/", ".")
    return [f"{prefix}.{p}__mutmut_*" if p != "*" else f"{prefix}.*" for p in patterns]


def scores(modules: list[str]) -> dict:
    table = {}
    for module in modules:
        file, _ = MODULES[module]
        meta = REPO / "mutants" / f"{file}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        chosen = {k: v for k, v in codes.items() if any(fnmatch.fnmatchcase(k, p) for p in mutant_patterns(module))}
        killed = sum(v in KILLED for v in chosen.values())
        timeouts = sum(v in TIMEOUT for v in chosen.values())
        left = sorted(k for k, v in chosen.items() if v not in KILLED | TIMEOUT)
        table[module] = {"file": file, "total": len(chosen), "killed": killed + timeouts, "timeouts": timeouts,
                         "percent": round(100 * (killed + timeouts) / len(chosen), 1) if chosen else None,
                         "not_killed": {k: STATUS.get(chosen[k], f"exit {chosen[k]}") for k in left},
                         "status": dict(Counter(STATUS.get(v, "killed" if v in KILLED | TIMEOUT else f"exit {v}")
                                                for v in chosen.values()))}
    return table


def report(table: dict) -> None:
    print(f"{'module':18} {'killed/total':>13} {'%':>6}  timeouts")
    for module, row in table.items():
        print(f"{module:18} {row['killed']:>6}/{row['total']:<6} {row['percent'] or 0:>6}  {row['timeouts']}")
    for module, row in table.items():
        for name, status in row["not_killed"].items():
            print(f"  {status:9} {name}")


def main(argv: list[str]) -> int:
    only_report, survivors = "--report" in argv, "--survivors" in argv
    modules = [a for a in argv if not a.startswith("--")] or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    start = time.monotonic()
    if not only_report:
        patterns = [p for m in modules for p in mutant_patterns(m)]
        if survivors:  # after adding tests: the killed stay killed (the code did not change)
            patterns = [name for row in scores(modules).values() for name in row["not_killed"]]
            if not patterns:
                report(scores(modules))
                return 0
        (REPO / "mutants").mkdir(exist_ok=True)
        with open(REPO / "mutants" / "campaign.log", "w") as log:  # mutmut's progress: its spinner, per mutant
            # the mutants write o1e's caches (a digest cache mutated into `null`): never the user's
            env = {**os.environ, "O1E_CACHE": str(REPO / "mutants" / "o1e-cache")}
            subprocess.run([str(MUTMUT), "run", "--max-children", "2", *patterns], cwd=REPO, check=False,
                           stdout=log, stderr=subprocess.STDOUT, env=env)
    table = scores(modules)
    elapsed = time.monotonic() - start
    report(table)
    if not only_report:
        print(f"took {elapsed / 60:.1f} min")
        out = REPO / "mutants" / "campaign-scores.json"
        previous = json.loads(out.read_text()) if out.exists() else {}
        out.write_text(json.dumps({**previous, **{m: {**row, "minutes": round(elapsed / 60, 1)}
                                                  for m, row in table.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
