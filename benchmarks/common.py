"""Shared helpers of the benchmark scripts: run metadata, JSON output, medians, random backbones."""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "o1e_tevatron" / "resources" / "demo" / "corpus.jsonl"
SHARED_DATA = Path(os.environ.get("O1E_SHARED_DATA", REPO.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Architectures of the paper's backbones, with random weights (no download).
QWEN25 = {
    "qwen2.5-0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab_size=151936),
    "qwen2.5-1.5b": dict(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960, vocab_size=151936),
}


def add_backbone_args(p, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int) -> None:
    """Flags for the shape of a random Qwen2-style backbone, or --arch-preset for a paper architecture."""
    p.add_argument("--arch-preset", choices=sorted(QWEN25), default=None,
                   help="a Qwen2.5 architecture with random weights (overrides the shape flags)")
    p.add_argument("--model", default=None,
                   help="a real model instead of a random backbone (a folder or a name o1e resolves offline, "
                        "e.g. HuggingFaceTB/SmolLM2-135M-Instruct); overrides the shape flags")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=hidden)
    p.add_argument("--layers", type=int, default=layers)
    p.add_argument("--heads", type=int, default=heads)
    p.add_argument("--kv-heads", type=int, default=kv_heads)
    p.add_argument("--intermediate", type=int, default=intermediate)


def backbone_from_args(args, dtype: str = "float32") -> str:
    """A random backbone folder of the shape the flags of :func:`add_backbone_args` ask for, or ``--model``'s."""
    if args.model:
        from o1e_tevatron.models import resolve_model_path
        return resolve_model_path(args.model)
    shape = dict(QWEN25[args.arch_preset]) if args.arch_preset else dict(
        hidden=args.hidden, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads,
        intermediate=args.intermediate, vocab_size=args.vocab)
    vocab = shape.pop("vocab_size")
    return random_backbone_dir("qwen2", vocab, dtype=dtype, **shape)


def machine() -> dict:
    import torch

    info = {"host": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def emit(benchmark: str, results: dict, **settings) -> dict:
    """Print one JSON object: what ran, where, when, with which command, and the numbers."""
    record = {"benchmark": benchmark, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
              "machine": machine(), "settings": settings, "results": results}
    print(json.dumps(record), flush=True)
    return record


def median(values) -> float:
    return float(statistics.median(values))


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def demo_texts() -> list[str]:
    with open(DEMO_CORPUS) as f:
        return [" ".join((d.get("title", ""), d["text"])) for d in map(json.loads, f)]


def random_backbone_dir(arch: str = "qwen2", vocab_size: int = 32000, dtype: str = "float32", seed: int = 0,
                        **config) -> Path:
    """A randomly initialised causal LM folder (tokenizer trained on the demo corpus; the model's
    vocabulary is ``vocab_size``, so the LM head costs what a real one does)."""
    import torch
    from transformers import AutoModelForCausalLM

    from o1e_tevatron.families.base import DTYPES
    from o1e_tevatron.tiny import tiny_config, train_tokenizer

    out = Path(tempfile.mkdtemp(prefix=f"o1e-bench-{arch}-"))
    tokenizer = train_tokenizer(demo_texts(), 1000)
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(tiny_config(arch, vocab_size, **config), dtype=DTYPES[dtype])
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def random_ids(generator, n: int, low: int = 10, high: int = 990) -> list[int]:
    """Ordinary (non-special) token ids of the demo tokenizer."""
    import torch

    return torch.randint(low, high, (n,), generator=generator).tolist()
