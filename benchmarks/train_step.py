"""Training-step benchmarks of O1E's joint loss: peak memory and steps/s of one optimizer step.

Variants, on the same batch and model:
  contrastive  InfoNCE only (gen_loss_weight 0, no LM head call)                       (a)
  shared       O1E: one query forward feeds both losses; thought positions only through
               the LM head, in chunks (O1EModel.forward)                               (b)
  naive        InfoNCE forward plus a second full query forward with HF ``labels=``: full-vocabulary
               logits at every position, so (b)/(c) mixes the gain of the shared encoding with
               that of the restricted LM-head loss                                     (c)
  two_pass     the fair baseline for the shared encoding alone: InfoNCE forward plus a second
               query forward through the same thought-only, chunked loss as (b)        (d)
  grad_cache   (b) in --gc-q/--gc-p chunks (o1e_tevatron.grad_cache)

Ratios are reported against both baselines, labelled: shared/naive (shared encoding + restricted LM
head, what a user of HF ``labels=`` gains) and shared/two_pass (the shared encoding alone).

Subcommands (each prints one JSON object):
  memory      each variant in a fresh subprocess; peak of one optimizer step
  speed       all variants in one process, steps interleaved round-robin, median seconds per step
  grad-cache  peak memory as the batch grows, grad cache on (and off for contrast)

Memory on CPU: resident set size from /proc/self/status, glibc told to mmap every allocation
>= 64 KiB (MALLOC_MMAP_THRESHOLD_) so freed tensors leave the RSS at once; after a warm-up step (which
creates the optimizer state) the high-water mark is reset (/proc/self/clear_refs) and the measured
step's VmHWM is read. ``peak_mib`` = that high-water mark minus the RSS after importing torch and
transformers (weights, optimizer state and the step's transient memory, like a GPU's allocated
memory); ``step_mib`` = high-water mark minus the RSS just before the step. On CUDA:
torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

from benchmarks.common import add_backbone_args, backbone_from_args, emit, median, random_ids

VARIANTS = ("contrastive", "shared", "naive", "two_pass")
BASELINES = {"naive": "vs full-vocabulary HF labels loss in a second forward",
             "two_pass": "vs the same thought-only loss in a second forward (shared encoding alone)"}


def rss_kib(field: str) -> int:
    return int(re.search(field + r":\s+(\d+)", open("/proc/self/status").read()).group(1))


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def current_mib(device) -> float:
    import torch

    return torch.cuda.memory_allocated() / 2**20 if device.type == "cuda" else rss_kib("VmRSS") / 1024


def peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return rss_kib("VmHWM") / 1024


def build_model(args):
    import torch

    from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
    from o1e_tevatron.families.o1e.template import TemplateConfig

    folder = backbone_from_args(args, args.dtype)
    template = TemplateConfig(query_max_len=args.query_len, thought_max_len=args.thought_len,
                              passage_max_len=args.passage_len)
    model = O1EModel.build(str(folder), O1EConfig(template=template), lora=not args.full, lora_r=32, lora_alpha=64,
                           lora_dropout=0.0, dtype=args.dtype, attn_implementation="sdpa",
                           gen_loss_weight=args.gen_loss_weight)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    model.to(torch.device(args.device)).train()
    return model


def make_batch(model, args, queries: int):
    """Exact lengths: query ``query_len`` + thought ``thought_len`` tokens, passages ``passage_len``."""
    import torch

    from o1e_tevatron.collator import pad
    from o1e_tevatron.families.o1e.template import IGNORE_INDEX, generation_labels

    t, g = model.template, torch.Generator().manual_seed(0)
    sequences, labels = [], []
    for _ in range(queries):
        seq, start, end = t.thought_query(random_ids(g, args.query_len), random_ids(g, args.thought_len))
        sequences.append(seq)
        labels.append(generation_labels(seq, start, end))
    q_ids, q_mask = pad(sequences, t.pad_id, "left")
    label_ids, _ = pad(labels, IGNORE_INDEX, "left")
    p_ids, p_mask = pad([t.passage(random_ids(g, args.passage_len)) for _ in range(queries * args.group)],
                        t.pad_id, "left")
    device = torch.device(args.device)
    return {"query_input_ids": q_ids.to(device), "query_attention_mask": q_mask.to(device),
            "gen_labels": label_ids.to(device), "passage_input_ids": p_ids.to(device),
            "passage_attention_mask": p_mask.to(device)}


def backward_of(variant: str, model, batch, args) -> None:
    """One forward and backward of ``variant``: gradients land in the parameters."""
    from o1e_tevatron.grad_cache import grad_cache_step
    from o1e_tevatron.core.tensors import position_ids_from_mask

    if variant == "grad_cache":
        grad_cache_step(model, batch, args.gc_q, args.gc_p)
        return
    without_labels = {k: v for k, v in batch.items() if k != "gen_labels"}
    if variant == "shared":
        loss = model(**batch).loss
    elif variant == "contrastive":
        weight, model.gen_loss_weight = model.gen_loss_weight, 0.0
        loss = model(**without_labels).loss
        model.gen_loss_weight = weight
    elif variant == "naive":  # without labels the model's loss is (1 - w) * InfoNCE; then a second forward
        out = model(**without_labels)
        mask = batch["query_attention_mask"]
        gen = model.lm(input_ids=batch["query_input_ids"], attention_mask=mask,
                       position_ids=position_ids_from_mask(mask), labels=batch["gen_labels"]).loss
        loss = model.gen_loss_weight * gen + out.loss
    elif variant == "two_pass":  # as naive, but the second forward feeds the thought-only loss of (b)
        out = model(**without_labels)
        hidden = model.hidden_states(batch["query_input_ids"], batch["query_attention_mask"])
        loss = model.gen_loss_weight * model.generation(hidden, batch["gen_labels"], model.lm_head) + out.loss
    else:
        raise ValueError(variant)
    loss.backward()


def optimizer_step(variant, model, batch, args, optimizer) -> None:
    backward_of(variant, model, batch, args)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def make_optimizer(model):
    import torch

    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def measure_memory(args) -> dict:
    """Runs in a fresh process: one warm-up step, then the measured step."""
    import torch

    device = torch.device(args.device)
    base = 0.0 if device.type == "cuda" else current_mib(device)
    model = build_model(args)
    with torch.no_grad():  # page in every weight (safetensors loads lazily): the same resident weights for all variants
        for param in model.parameters():
            param.sum()
    batch = make_batch(model, args, args.batch)
    optimizer = make_optimizer(model)
    optimizer_step(args.variant, model, batch, args, optimizer)
    rest = current_mib(device)
    reset_peak(device)
    optimizer_step(args.variant, model, batch, args, optimizer)
    peak = peak_mib(device)
    return {"variant": args.variant, "batch": args.batch, "peak_mib": round(peak - base, 1),
            "step_mib": round(peak - rest, 1), "resting_mib": round(rest - base, 1)}


def fresh_process_memory(args, variant: str, batch: int) -> dict:
    argv = [a for a in sys.argv[2:]]
    cmd = [sys.executable, "-m", "benchmarks.train_step", "_measure", *argv, "--variant", variant,
           "--batch", str(batch)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


PAIRS = [("shared", "contrastive"), ("shared", "naive"), ("shared", "two_pass")]


def ratios(values: dict, pairs=PAIRS) -> dict:
    return {f"{a}/{b}": round(values[a] / values[b], 3) for a, b in pairs if a in values and b in values}


def cmd_memory(args) -> None:
    runs = {v: fresh_process_memory(args, v, args.batch) for v in args.variants}
    results = {"runs": runs,
               "peak_ratios": ratios({v: r["peak_mib"] for v, r in runs.items()}),
               "step_ratios": ratios({v: r["step_mib"] for v, r in runs.items()}),
               "baselines": BASELINES,
               "targets": {"shared/contrastive": "<= 1.10", "shared/naive": "<= 0.70"}}
    emit("train_memory", results, **settings(args))


def cmd_speed(args) -> None:
    model = build_model(args)
    batch = make_batch(model, args, args.batch)
    optimizer = make_optimizer(model)
    seconds = {v: [] for v in args.variants}
    for round_ in range(args.warmup + args.repeats):
        order = args.variants if round_ % 2 == 0 else list(reversed(args.variants))
        for variant in order:
            start = time.perf_counter()
            optimizer_step(variant, model, batch, args, optimizer)
            if args.device == "cuda":
                import torch
                torch.cuda.synchronize()
            if round_ >= args.warmup:
                seconds[variant].append(time.perf_counter() - start)
    steps_per_s = {v: round(1 / median(s), 4) for v, s in seconds.items()}
    results = {"median_seconds_per_step": {v: round(median(s), 4) for v, s in seconds.items()},
               "steps_per_s": steps_per_s,
               "speedup": ratios(steps_per_s, [("shared", "naive"), ("shared", "two_pass"), ("shared", "contrastive")]),
               "baselines": BASELINES, "target": {"shared/naive": ">= 1.2"}, "all_seconds": seconds}
    emit("train_speed", results, **settings(args))


def cmd_grad_cache(args) -> None:
    runs = []
    for batch in args.batches:
        for variant in ("grad_cache", "shared"):
            if variant == "shared" and batch > args.max_plain_batch:
                continue
            runs.append(fresh_process_memory(args, variant, batch))
    gc = [r["peak_mib"] for r in runs if r["variant"] == "grad_cache"]
    results = {"runs": runs, "grad_cache_peak_growth": round(max(gc) / min(gc), 3),
               "target": "peak memory flat as the batch grows (growth ~1.0)"}
    emit("grad_cache_memory", results, **settings(args))


def settings(args) -> dict:
    keep = ("model", "arch_preset", "vocab", "hidden", "layers", "heads", "kv_heads", "intermediate", "batch", "group",
            "query_len", "thought_len", "passage_len", "dtype", "device", "gradient_checkpointing", "full",
            "gen_loss_weight", "gc_q", "gc_p", "repeats", "batches")
    shape = ("arch_preset", "vocab", "hidden", "layers", "heads", "kv_heads", "intermediate")
    return {k: getattr(args, k) for k in keep if hasattr(args, k) and not (args.model and k in shape)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["memory", "speed", "grad-cache", "_measure"])
    add_backbone_args(p, hidden=256, layers=4, heads=4, kv_heads=2, intermediate=704)
    p.add_argument("--batch", type=int, default=8, help="queries per step")
    p.add_argument("--group", type=int, default=4, help="passages per query")
    p.add_argument("--query-len", type=int, default=32)
    p.add_argument("--thought-len", type=int, default=128)
    p.add_argument("--passage-len", type=int, default=128)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA r=32")
    p.add_argument("--gen-loss-weight", type=float, default=0.2)
    p.add_argument("--gc-q", type=int, default=2)
    p.add_argument("--gc-p", type=int, default=8)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--variant", default="shared")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--max-plain-batch", type=int, default=16, help="largest batch also run without grad cache")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.command == "_measure":
        print(json.dumps(measure_memory(args)))
    elif args.command == "memory":
        cmd_memory(args)
    elif args.command == "speed":
        cmd_speed(args)
    else:
        cmd_grad_cache(args)


if __name__ == "__main__":
    main()
