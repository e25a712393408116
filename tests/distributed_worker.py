"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo, CPU).

Each rank computes the O1E loss (InfoNCE, generation and distillation from teacher scores) on its half
of a global batch with cross-device negatives and averages gradients as DDP does; rank 0 then computes the single-process loss and gradients on the
whole global batch and writes both to the JSON file named by argv[2].

The reference is computed before the process group exists, so no rank idles inside a gloo collective
while the other computes, and the ranks leave through ``finish``: a rare gloo abort ("terminate called
without an active exception") was seen in CI with one rank waiting in a barrier or tearing down.
"""
import faulthandler
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from o1e_tevatron.collator import O1ECollator
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel

ITEMS = [
    {"query": "what causes colorectal cancer", "thought": "mutations accumulate in colon cells",
     "passages": ["colon cancer genes", "bone density"], "teacher_scores": [3.0, -1.0]},
    {"query": "vitamin d", "thought": None, "passages": ["sunlight and vitamin d", "heart rate"],
     "teacher_scores": [0.5, 0.2]},
    {"query": "aspirin and heart attacks", "thought": "aspirin stops platelets from clotting",
     "passages": ["aspirin trials", "sleep quality"], "teacher_scores": [1.0, 2.5]},
    {"query": "does smoking cause cancer", "thought": "tobacco smoke has carcinogens; lungs are hit hardest",
     "passages": ["smoking and lung cancer", "diet and teeth"], "teacher_scores": [4.0, 0.0]},
]
KD_WEIGHT = 0.7  # not 1: a KD term scaled by the world size shows in the gradients


def torchrun(*args, timeout=300) -> None:
    """``torchrun --standalone --nproc_per_node 2 *args`` on CPU; a failure shows the ranks' stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]


def two_ranks_against_one_process(*args) -> dict:
    """torchrun a worker whose last argument is the JSON it writes, and check what every such comparison
    shares: gradients of the same parameters, some of them, equal to the single process's. Returns the
    JSON for the test's own loss checks."""
    torchrun(*args)
    result = json.loads(Path(args[-1]).read_text())
    assert result["n_grads"] > 0 and result["same_names"]
    assert result["max_grad_diff"] <= 1e-5 * max(result["max_grad"], 1.0)
    return result


def build(model_dir, x_device):
    torch.manual_seed(0)
    model = O1EModel.build(model_dir, O1EConfig(), lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                           negatives_x_device=x_device, gen_loss_weight=0.3, kd_weight=KD_WEIGHT)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return model


def loss_and_grads(model, items):
    batch = O1ECollator(model.template)(items)
    out = model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def average_like_ddp(grads: dict, *losses):
    """Average gradients over ranks as DDP does; return the rank mean of each loss."""
    world = dist.get_world_size()
    for g in grads.values():
        dist.all_reduce(g)
        g /= world
    means = []
    for loss in losses:
        total = loss.clone()
        dist.all_reduce(total)
        means.append(total / world)
    return means[0] if len(means) == 1 else means


def gradient_report(grads: dict, ref_grads: dict) -> dict:
    return {"max_grad_diff": max((grads[n] - ref_grads[n]).abs().max().item() for n in ref_grads),
            "max_grad": max(g.abs().max().item() for g in ref_grads.values()),
            "n_grads": len(ref_grads), "same_names": sorted(grads) == sorted(ref_grads)}


def finish(result_path, result: dict | None) -> None:
    """Rank 0 writes the result; the ranks tear gloo down together (a rank that leaves early can abort
    the other's connection) and exit without interpreter finalization, where gloo's worker threads
    can still hold tensors whose release needs the GIL (pytorch/pytorch#179291)."""
    if result is not None:
        with open(result_path, "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(model_dir, result_path):
    faulthandler.enable(all_threads=True)  # a C++ abort still prints every thread's Python stack
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    reference = loss_and_grads(build(model_dir, False), ITEMS) if rank == 0 else None
    dist.init_process_group("gloo")
    per_rank = len(ITEMS) // world
    out, grads = loss_and_grads(build(model_dir, True), ITEMS[rank * per_rank:(rank + 1) * per_rank])
    gen, kd = average_like_ddp(grads, out.gen_loss, out.kd_loss)
    result = None
    if reference is not None:
        ref, ref_grads = reference
        result = {"ctr": out.ctr_loss.item(), "ref_ctr": ref.ctr_loss.item(), "gen": gen.item(),
                  "ref_gen": ref.gen_loss.item(), "kd": kd.item(), "ref_kd": ref.kd_loss.item(),
                  **gradient_report(grads, ref_grads)}
    finish(result_path, result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
