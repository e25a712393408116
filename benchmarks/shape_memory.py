"""Resident memory of a CPU training loop against the number of distinct sequence lengths it sees.

The grounded miniature arm's training process grew by ~40 MB a step (its queries carry three BM25
passages: nearly every batch has a length of its own), (a)'s did not (short queries, 128-token passages).
This loop reproduces the pattern without the model: a bfloat16 stack of SmolLM2-sized linear layers under
a float32 trainable layer, forward and backward over batches of 8, each case in a fresh process:

    same       one length (400) every step
    distinct   a new length every step (300..549), as the grounded arm's batches
    padded64   the same lengths rounded up to a multiple of 64 (the driver's --pad_to_multiple_of 64)

and, for `distinct`, with oneDNN's primitive cache off (ONEDNN_PRIMITIVE_CACHE_CAPACITY=0) and with glibc
returning freed memory eagerly (MALLOC_TRIM_THRESHOLD_=0 MALLOC_MMAP_THRESHOLD_=65536).

    python -m benchmarks.shape_memory --steps 60
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import emit

CASES = {
    "same": {},
    "distinct": {},
    "padded64": {},
    "distinct, oneDNN cache off": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"},
    "distinct, glibc trims": {"MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_THRESHOLD_": "65536"},
}


def loop(kind: str, steps: int) -> dict:
    """RSS growth (MB) from step 10 to the last, in this process."""
    import torch

    torch.manual_seed(0)
    d, hidden = 576, 1536  # SmolLM2-135M's width and MLP size
    layers = torch.nn.Sequential(*[torch.nn.Linear(d, hidden) if i % 2 == 0 else torch.nn.Linear(hidden, d)
                                   for i in range(8)]).to(torch.bfloat16)
    trainable = torch.nn.Linear(d, d)

    def rss_mb() -> float:
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    start, lengths = None, set()
    for step in range(steps):
        length = 400 if kind == "same" else 300 + (step * 7) % 250
        if kind == "padded64":
            length = -(-length // 64) * 64
        lengths.add(length)
        x = torch.randn(8, length, d, requires_grad=True)
        layers(trainable(x).to(torch.bfloat16)).float().sum().backward()
        if step == 10:
            start = rss_mb()
    return {"rss_growth_mb": round(rss_mb() - start, 1), "distinct_lengths": len(lengths)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--case", help=argparse.SUPPRESS)  # the child process's own case
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(loop(args.case.split(",")[0], args.steps)))
        return
    results = {}
    for case, env in CASES.items():
        out = subprocess.run([sys.executable, "-m", "benchmarks.shape_memory", "--steps", str(args.steps),
                              "--case", case], env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                             capture_output=True, text=True, check=True).stdout
        results[case] = {**json.loads(out.strip().splitlines()[-1]), "env": env}
    emit("shape_memory", results, steps=args.steps, threads=1)


if __name__ == "__main__":
    main()
