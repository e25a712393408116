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

import argparse
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
    "fusion": ("o1e_pyserini/search/fusion.py", ["*"]),
    "thought_cache": ("o1e_pyserini/thinking/cache.py", ["*"]),
    "objective": ("o1e_tevatron/objective.py", ["*"]),
    # the top-k merge (and the search that feeds it); not the shard-directory discovery or GPU copies
    "sharded": ("o1e_pyserini/search/sharded.py", ["xǁShardedIndexǁ_merge", "xǁShardedIndexǁsearch",
                                                   "xǁShardedIndexǁ_shard_search"]),
    # the losses; not the torch.distributed helpers (tests/test_distributed.py, not a fast test)
    "loss": ("o1e_tevatron/loss.py", ["xǁInfoNCELossǁ*", "x_contrastive_batch", "xǁDistillationLossǁ*"]),
    "o1e.loss": ("o1e_tevatron/families/o1e/loss.py", ["xǁThoughtGenerationLossǁ*", "x__chunk_token_sum", "x__vocab_size",
                                                       "x_linear_head", "xǁLinearCrossEntropySumǁ*", "x__head_logits",
                                                       "x__head_grads", "x__softmax_minus_onehot"]),
    "debater.loss": ("o1e_tevatron/families/debater/loss.py", ["xǁMaxStepSelfDistillationLossǁ*"]),
    "template": ("o1e_tevatron/families/o1e/template.py", ["*"]),
    # the family models' pooling and loss parts, and the text pieces every family's template shares
    "families.base": ("o1e_tevatron/families/base.py", ["xǁFamilyModelǁforward", "xǁFamilyModelǁhidden_states",
                                                        "xǁFamilyModelǁencode_query", "xǁFamilyModelǁencode_passage",
                                                        "x_add_family_tokens", "x__init_new_rows", "xǁTokenTemplateǁ*"]),
    # positions from masks (were families.base's)
    "tensors": ("o1e_tevatron/core/tensors.py", ["x_last_positions", "x_position_ids_from_mask"]),
    "families.debater": ("o1e_tevatron/families/debater/model.py", ["xǁDebaterModelǁ__init__", "xǁDebaterModelǁpool_query",
                                                              "xǁDebaterModelǁpool_passage",
                                                              "xǁDebaterModelǁvector_loss_parts",
                                                              "xǁDebaterTemplateǁplain_query", "xǁDebaterTemplateǁpassage",
                                                              "x_index_rows", "x_best_step_hits"]),
    "modeling": ("o1e_tevatron/families/o1e/model.py", ["x_pool_emb", "x_pool_last", "x_pool_mean", "xǁO1EModelǁ__init__",
                                              "xǁO1EModelǁpool", "xǁO1EModelǁvector_loss_parts"]),
    # the nucleus sampler, eq. 11 averaging, and the per-query seed that is part of a thought's cache key
    "nucleus": ("o1e_pyserini/thinking/backends.py", ["xǁNucleusSamplerǁ*"]),
    "eq11": ("o1e_pyserini/thinking/backends.py", ["x_average_thought_vectors"]),
    "query_seed": ("o1e_pyserini/thinking/backends.py", ["x_query_seed"]),
}
#: survivors judged equivalent (no input can tell them from the code), with why; the report scores each module
#: with and without them. Names follow the source: a change to a function renumbers its mutants.
_AXIS = "the default axis (-1) is axis 1 of these 2-D arrays"
_NORM = "F.normalize's dim: its default (1) and +1 are dim -1 of the 2-D (n, d) vectors it gets"
_SQL = "SQL keywords and names in another case: SQLite ignores the case"
_MASK = "dim +1 is dim -1 of the 2-D (batch, length) attention masks it gets"
_2D = "dim +1 (or the default) is dim -1 of the 2-D (rows, columns) scores it gets"
_EINSUM = "einsum reads upper-case subscripts as it reads lower-case ones (the same contraction)"
_INDEX = ("row indices made on the CPU: advanced indexing moves CPU index tensors to the indexed tensor's device "
          "(same values; judged from PyTorch's indexing rules, not run on a GPU: none lent to this task)")
_CACHE = "use_cache only adds a returned KV cache: the decoder's last_hidden_state is the same"
_ADDED = ("either flag alone registers the token special, and AddedToken(special=True) defaults to normalized=False: "
          "the tokenizer's added-token table is the same (checked, transformers 5.25)")
EQUIVALENT: dict[str, str] = {
    "o1e_tevatron.core.redact.x_json_line__mutmut_3": "ensure_ascii=None is falsy, as False",
    "o1e_tevatron.core.fingerprint.xǁ_DigestCacheǁ__init____mutmut_4":
        "the damaged cache's None is replaced by {} on the next line (not a dict)",
    "o1e_pyserini.search.fusion.x_from_trec_run__mutmut_2": "itertuples(index=None): None is falsy, as False",
    **{f"o1e_pyserini.thinking.cache.xǁThoughtCacheǁ{name}": _SQL
       for name in ("__len____mutmut_3", "__len____mutmut_4", "put__mutmut_6", "put__mutmut_7")},
    **{f"o1e_pyserini.thinking.backends.x_average_thought_vectors__mutmut_{n}": _NORM for n in (8, 9, 15, 17, 21, 33, 34)},
    "o1e_pyserini.thinking.backends.x_average_thought_vectors__mutmut_18": ".to(None) keeps the tensor where it is",
    "o1e_pyserini.thinking.backends.x_query_seed__mutmut_8": "'UTF-8' and 'utf-8' name one codec",
    **{f"o1e_pyserini.search.sharded.xǁShardedIndexǁ_merge__mutmut_{n}": _AXIS for n in (44, 53, 60, 98, 111, 118)},
    "o1e_pyserini.search.sharded.xǁShardedIndexǁ_merge__mutmut_104": "numpy reads the sort kind in any case",
    "o1e_pyserini.search.sharded.xǁShardedIndexǁ_merge__mutmut_121": "`<= k` pads zero columns when there are k",
    "o1e_pyserini.search.sharded.xǁShardedIndexǁ_merge__mutmut_39":
        "a missing row's filler docid orders only missing rows (all at -inf) among themselves",
    **{f"o1e_pyserini.search.sharded.xǁShardedIndexǁ_merge__mutmut_{n}":
       "an integer 0/1 array serves as the mask as the boolean one does" for n in (64, 66)},
    **{f"o1e_pyserini.search.sharded.xǁShardedIndexǁsearch__mutmut_{n}":
       "faiss's Python wrapper casts the queries to float32 itself (float64 and strided queries search alike)"
       for n in (3, 5)},
    # template
    **{f"o1e_tevatron.families.o1e.template.xǁTemplateǁ_render_chat_template__mutmut_{n}":
       "tokenize=None: apply_chat_template only tests its truth (`if not tokenize`), as False's" for n in (24, 55)},
    **{f"o1e_tevatron.families.o1e.template.xǁTemplateǁ_render_chat_template__mutmut_{n}":
       "the end-of-turn probe's user text is arbitrary ('q'): only a chat template that branches on that literal "
       "text could tell" for n in (64, 65)},
    "o1e_tevatron.families.o1e.template.xǁTemplateǁ__init____mutmut_19":
        "tokenizing the empty passage prefix (add_special_tokens=False) gives [], the else branch's value",
    # the family base and its members
    **{f"o1e_tevatron.families.base.x_add_family_tokens__mutmut_{n}": _ADDED for n in (4, 6, 11, 12, 13, 15)},
    **{f"o1e_tevatron.families.base.x_add_family_tokens__mutmut_{n}":
       "mean_resizing's rows are overwritten by _init_new_rows on the next line" for n in (23, 25, 26)},
    "o1e_tevatron.families.base.x_add_family_tokens__mutmut_19":
        "`<=` also resizes when the rows already match the tokenizer: a resize to the same size returns the "
        "embedding unchanged, and _init_new_rows has no new row to fill",
    **{f"o1e_tevatron.core.tensors.x_last_positions__mutmut_{n}": _MASK for n in (8, 10)},
    "o1e_tevatron.core.tensors.x_position_ids_from_mask__mutmut_4": _MASK,
    **{f"o1e_tevatron.families.base.xǁFamilyModelǁhidden_states__mutmut_{n}": _CACHE for n in (5, 9, 11)},
    **{f"o1e_tevatron.families.debater.model.xǁDebaterModelǁpool_query__mutmut_{n}": _NORM for n in (21, 22)},
    **{f"o1e_tevatron.families.debater.model.xǁDebaterModelǁpool_query__mutmut_{n}": _INDEX for n in (3, 5)},
    **{f"o1e_tevatron.families.debater.model.xǁDebaterModelǁpool_passage__mutmut_{n}": _INDEX for n in (16, 18)},
    **{f"o1e_tevatron.families.o1e.model.xǁO1EModelǁpool__mutmut_{n}": _NORM for n in (15, 16)},
    **{f"o1e_tevatron.families.o1e.model.x_pool_emb__mutmut_{n}": _INDEX for n in (5, 7)},
    **{f"o1e_tevatron.families.o1e.model.x_pool_last__mutmut_{n}": _INDEX for n in (3, 5)},
    # the nucleus sampler: scores are (batch, vocabulary)
    "o1e_pyserini.thinking.backends.xǁNucleusSamplerǁ__call____mutmut_11": "float('INF') is float('inf')",
    "o1e_pyserini.thinking.backends.xǁNucleusSamplerǁ_normalized__mutmut_8": _2D,
    **{f"o1e_pyserini.thinking.backends.xǁNucleusSamplerǁnucleus__mutmut_{n}": _2D for n in (2, 9, 10, 17, 24, 53, 55, 63, 71)},
    **{f"o1e_pyserini.thinking.backends.xǁNucleusSamplerǁsample__mutmut_{n}": _2D for n in (5, 23)},
    # the losses
    **{f"o1e_tevatron.loss.xǁDistillationLossǁ__call____mutmut_{n}": _2D for n in (11, 29, 38, 40)},
    "o1e_tevatron.loss.xǁDistillationLossǁ__call____mutmut_22": _EINSUM,
    "o1e_tevatron.families.debater.loss.xǁMaxStepSelfDistillationLossǁstep_scores__mutmut_9": _EINSUM,
    **{f"o1e_tevatron.families.debater.loss.xǁMaxStepSelfDistillationLossǁ__call____mutmut_{n}": _2D for n in (22, 34, 36)},
    **{f"o1e_tevatron.families.o1e.loss.xǁLinearCrossEntropySumǁforward__mutmut_{n}": _2D for n in (22, 28)},
    **{f"o1e_tevatron.families.o1e.loss.x__softmax_minus_onehot__mutmut_{n}": _INDEX for n in (4, 6)},
    **{f"o1e_tevatron.families.o1e.loss.xǁThoughtGenerationLossǁtoken_sum__mutmut_{n}":
       "the running total starts as a zero of the hidden states' dtype, not float32: the first chunk's float32 "
       "sum (logits are cast to float32) promotes it, and 0 + x is exact" for n in (18, 20)},
    "o1e_tevatron.families.o1e.loss.xǁThoughtGenerationLossǁtoken_sum__mutmut_48":
        "a module head's chunk checkpointed where no gradient is needed: checkpoint changes what backward "
        "recomputes, not the sum",
    "o1e_pyserini.search.sharded.xǁShardedIndexǁsearch__mutmut_55":
        "searching deeper when the second score, not the last, is below the cut: the same hits, more work",
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
        equivalent = sum(k in EQUIVALENT for k in left)
        table[module] = {"file": file, "total": len(chosen), "killed": killed + timeouts, "timeouts": timeouts,
                         "percent": round(100 * (killed + timeouts) / len(chosen), 1) if chosen else None,
                         "equivalent": equivalent,
                         "percent_of_non_equivalent": round(100 * (killed + timeouts) / (len(chosen) - equivalent), 1)
                         if len(chosen) > equivalent else None,
                         "not_killed": {k: STATUS.get(chosen[k], f"exit {chosen[k]}") for k in left},
                         "status": dict(Counter(STATUS.get(v, "killed" if v in KILLED | TIMEOUT else f"exit {v}")
                                                for v in chosen.values()))}
    return table


def report(table: dict) -> None:
    print(f"{'module':18} {'killed/total':>13} {'%':>6}  equivalent  % of the rest  timeouts")
    for module, row in table.items():
        print(f"{module:18} {row['killed']:>6}/{row['total']:<6} {row['percent'] or 0:>6}  {row['equivalent']:>10}  "
              f"{row['percent_of_non_equivalent'] or 0:>12}  {row['timeouts']}")
    for module, row in table.items():
        for name, status in row["not_killed"].items():
            print(f"  {status:9} {name}" + (f"  (equivalent: {EQUIVALENT[name]})" if name in EQUIVALENT else ""))


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Usage, and exit 2 on an unknown flag or module (``--help`` once ran the whole campaign)."""
    parser = argparse.ArgumentParser(prog="tests/mutation/run.sh", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="module", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--report", action="store_true", help="print the last run's scores; run nothing")
    parser.add_argument("--survivors", action="store_true", help="run again only the mutants left alive")
    parser.add_argument("--max-children", type=int, default=2,
                        help="mutants tested at once (default 2); 1 leaves a core to another job")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
    args.modules = args.modules or list(MODULES)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    only_report, survivors, modules = args.report, args.survivors, args.modules
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
            subprocess.run([str(MUTMUT), "run", "--max-children", str(args.max_children), *patterns], cwd=REPO, check=False,
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
