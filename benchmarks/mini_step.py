"""The miniature's real training step (recipes/mini/run.sh's train stage), by training dtype and arm.

Runs ``python -m o1e_tevatron.driver.train`` for a few steps on the recipe's own rows, once per
(arm, dtype), one after the other in one run, and reads the Trainer's runtime and the loss parts it
logs. Where a step's time goes is read from the arms side by side: (a) runs short queries, the
grounded (b) arm runs the query with three BM25 passages and a 64-token thought in one forward.

    python -m benchmarks.mini_step --arms a b-chat-grounded --dtypes float32 bfloat16 --steps 4

bfloat16 = the driver's --bf16: the frozen base in bfloat16, LoRA and the token rows in float32 (PEFT
keeps adapters in float32), as recipes/mini/run.sh trains on a CPU with bfloat16 units.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import REPO, emit

# the recipe's train() flags (recipes/mini/run.sh) and each arm's own
COMMON = ["--per_device_train_batch_size", "8", "--train_n_passages", "2", "--q_max_len", "32", "--p_max_len", "128",
          "--thought_max_len", "64", "--lora", "--lora_r", "16", "--lora_alpha", "32", "--learning_rate", "2e-4",
          "--warmup_ratio", "0", "--temperature", "0.02", "--seed", "42", "--data_seed", "42", "--logging_steps", "1",
          "--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no", "--use_cpu"]
ARMS = {
    "a": (["--gen_loss_weight", "0", "--plain_query_prob", "1.0"], "train-rows.jsonl"),
    "b-chat": (["--gen_loss_weight", "0.2", "--plain_query_prob", "0.1", "--template_layout", "chat"], "train-rows.jsonl"),
    "b-chat-grounded": (["--gen_loss_weight", "0.2", "--plain_query_prob", "0.1", "--template_layout", "chat",
                         "--grounding_passages", "3", "--grounding_max_words", "48"], "train-rows-grounded.jsonl"),
}


def run_arm(arm: str, dtype: str, args) -> dict:
    flags, rows = ARMS[arm]
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "o1e_tevatron.driver.train", "--model_name_or_path", args.model,
               "--train_dir", str(Path(args.work) / rows), "--output_dir", out, "--max_steps", str(args.steps),
               *COMMON, *flags, *(["--bf16"] if dtype == "bfloat16" else [])]
        log = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if log.returncode:
        raise SystemExit(f"error: {arm} {dtype} failed:\n{log.stderr[-2000:]}")
    records = [ast.literal_eval(line[line.index("{"):]) for line in log.stdout.splitlines() + log.stderr.splitlines()
               if line.lstrip().startswith("{'")]
    steps = [r for r in records if "loss" in r and "train_runtime" not in r]
    runtime = next(float(r["train_runtime"]) for r in records if "train_runtime" in r)
    parts = {k: [float(r[k]) for r in steps] for k in ("loss", "ctr_loss", "gen_loss") if steps and k in steps[0]}
    return {"arm": arm, "dtype": dtype, "seconds_per_step": round(runtime / args.steps, 2), "losses": parts}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["a", "b-chat-grounded"])
    p.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16"], default=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--work", default="runs/mini", help="the recipe's $WORK (its training rows)")
    args = p.parse_args(argv)
    runs = [run_arm(arm, dtype, args) for arm in args.arms for dtype in args.dtypes]
    by = {(r["arm"], r["dtype"]): r for r in runs}
    both = [arm for arm in args.arms if (arm, "float32") in by and (arm, "bfloat16") in by]
    speedups = {arm: round(by[arm, "float32"]["seconds_per_step"] / by[arm, "bfloat16"]["seconds_per_step"], 2)
                for arm in both}
    max_loss_gap = {arm: round(max(abs(x - y) for x, y in zip(by[arm, "float32"]["losses"]["loss"],
                                                               by[arm, "bfloat16"]["losses"]["loss"])), 3)
                    for arm in both}
    emit("mini_step", {"runs": runs, "bfloat16_speedup": speedups, "max_loss_gap_bf16_vs_fp32": max_loss_gap},
         arms=args.arms, dtypes=args.dtypes, steps=args.steps, model=args.model)


if __name__ == "__main__":
    main()
