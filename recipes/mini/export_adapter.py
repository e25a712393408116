"""Ship a trained o1e LoRA checkpoint small: its adapter weights (LoRA and the special-token rows) in
bfloat16, with the tokenizer and o1e_config.json, so that it loads by path (``o1e:DST``) on any machine
that has the base model. Optimizer states and trainer files stay behind.

    python recipes/mini/export_adapter.py runs/mini/model-b-chat recipes/mini/adapters/b-chat
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "adapter_model.safetensors"
SKIPPED = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin")


def export(source: Path, target: Path) -> Path:
    if not (source / WEIGHTS).exists():
        raise SystemExit(f"error: {source} has no {WEIGHTS}: not an o1e LoRA checkpoint")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))  # same filesystem: an atomic move
    for item in source.iterdir():
        if item.is_file() and item.name not in SKIPPED and item.name != WEIGHTS:
            shutil.copy2(item, staging / item.name)
    weights = {name: t.to(torch.bfloat16) if t.is_floating_point() else t for name, t in load_file(source / WEIGHTS).items()}
    save_file(weights, staging / WEIGHTS, metadata={"format": "pt", "o1e_exported_dtype": "bfloat16"})
    staging.chmod(0o755)  # mkdtemp's 0700 would travel into the repository
    for item in staging.iterdir():
        item.chmod(0o644)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    print(export(args.source, args.target))
