"""Per-unit costs for the MS MARCO scale plan (BENCHMARKS.md, "Scale"), measured on this machine.

Measures, in one process: the CPU's float32 GEMM rate (its compute peak in practice), a random
Qwen2-style backbone's encoding rate (forward tokens/s, and the FLOP/s that is: 2 x non-embedding
parameters per token) and its decoding rate (generated tokens/s with the KV cache), and exact search
(faiss, float32 IndexFlatIP and the float16 scalar quantizer o1e stores large corpora in, through
o1e's ShardedIndex with 4 shards) as seconds per query x vector x dimension. Then projects the
MS MARCO passage numbers (8,841,823 passages, 6,980 dev queries) for Llama-2-7B and Qwen2.5-0.5B on
8 GPUs, scaling the measured CPU efficiencies by published H100 SXM figures. Prints one JSON object;
every projected number is an estimate and labelled so.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import emit, median, timed

# Published figures (dense, no sparsity): NVIDIA H100 SXM5 80GB datasheet; A100 SXM4 80GB datasheet.
GPUS = {"H100-SXM": {"bf16_flops": 989e12, "memory_bytes_per_s": 3.35e12, "memory_gb": 80},
        "A100-SXM-80GB": {"bf16_flops": 312e12, "memory_bytes_per_s": 2.04e12, "memory_gb": 80}}
MSMARCO = {"passages": 8_841_823, "dev_queries": 6_980, "passage_tokens": 80, "query_tokens": 16}
MODELS = {  # non-embedding parameters (the FLOPs per token), hidden size (the vector dimension)
    "llama-2-7b": {"params": 6.48e9, "weights_bytes_bf16": 13.5e9, "dim": 4096},
    "qwen2.5-0.5b": {"params": 0.36e9, "weights_bytes_bf16": 0.99e9, "dim": 896},
}


def seconds(fn) -> float:
    return timed(fn)[0]


def gemm_flops(n: int = 1024, repeats: int = 5) -> float:
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / median([seconds(lambda: a @ b) for _ in range(repeats)])


def backbone_rates(args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from benchmarks.common import random_backbone_dir
    folder = random_backbone_dir("qwen2", args.vocab, hidden=args.hidden, layers=args.layers, heads=args.heads,
                                 kv_heads=args.kv_heads, intermediate=args.intermediate)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    params = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name and "lm_head" not in name)
    ids = torch.randint(0, args.vocab, (args.batch, args.tokens))
    with torch.inference_mode():
        model.model(input_ids=ids)  # warm-up
        forward = median([seconds(lambda: model.model(input_ids=ids)) for _ in range(args.repeats)])
        prompt = ids[:, :16]
        generate = lambda: model.generate(prompt, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,  # noqa: E731
                                          do_sample=False, pad_token_id=0)
        decode = median([seconds(generate) for _ in range(args.repeats)])
    tokens = args.batch * args.tokens
    return {"non_embedding_params": params, "forward_tokens_per_s": tokens / forward,
            "forward_flops_per_s": 2 * params * tokens / forward,
            "decode_tokens_per_s": args.batch * args.new_tokens / decode,
            "decode_steps_per_s": args.new_tokens / decode, "decode_batch": args.batch}


def search_rates(args) -> dict:
    from o1e_pyserini.search.sharded import ShardedIndex, shard_dirs, write_shards_file
    from o1e_tevatron.core.encoding import write_index_dir

    rng = np.random.default_rng(0)
    docs = rng.standard_normal((args.num_docs, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.num_queries, args.dim), dtype=np.float32)
    ids = [str(i) for i in range(args.num_docs)]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float16"):
            folder = Path(tmp) / dtype
            bounds = np.linspace(0, args.num_docs, 5).astype(int)
            dirs = [folder / str(i) for i in range(4)]
            for d, start, end in zip(dirs, bounds[:-1], bounds[1:]):
                write_index_dir(d, docs[start:end], ids[start:end], dtype=dtype)
            write_shards_file(folder, dirs)
            index = ShardedIndex(shard_dirs(folder), gpu=False)
            took = median([seconds(lambda: index.search(queries, 1000)) for _ in range(args.repeats)])
            work = args.num_queries * args.num_docs * args.dim
            out[dtype] = {"seconds_per_query_vector_dim": took / work, "flops_per_s": 2 * work / took,
                          "queries_per_s": args.num_queries / took}
    return out


def project(cpu: dict, gpu_name: str, num_gpus: int, efficiency: float) -> dict:
    """Estimates: encoding and search are compute-bound (GPU peak x ``efficiency``); decoding a batch of
    B sequences costs one read of the weights per step (bandwidth-bound) or its FLOPs, whichever is more."""
    gpu = GPUS[gpu_name]
    flops = gpu["bf16_flops"] * efficiency * num_gpus
    out = {}
    for name, model in MODELS.items():
        tokens = MSMARCO["passages"] * MSMARCO["passage_tokens"]
        encode_s = 2 * model["params"] * tokens / flops
        memory = {dtype: MSMARCO["passages"] * model["dim"] * size / 2**30
                  for dtype, size in (("float32", 4), ("float16", 2))}
        memory["PQ64x8"] = MSMARCO["passages"] * 64 / 2**30
        search_flops = 2 * MSMARCO["dev_queries"] * MSMARCO["passages"] * model["dim"]
        batch = 256  # sequences decoded together per GPU (vLLM keeps this many in flight)
        step_s = max(model["weights_bytes_bf16"] / (gpu["memory_bytes_per_s"] * 0.7),
                     2 * model["params"] * batch / (gpu["bf16_flops"] * efficiency))
        sequences = MSMARCO["dev_queries"] * 3  # 3 thoughts per query, 128 tokens each
        think_s = sequences / (batch * num_gpus) * 128 * step_s
        out[name] = {"encode_corpus_s": round(encode_s), "index_gib": {k: round(v, 1) for k, v in memory.items()},
                     "search_dev_s_gpu_float16": round(search_flops / flops, 2),
                     "search_dev_s_this_cpu_float32": round(search_flops / cpu["search"]["float32"]["flops_per_s"]),
                     "think_dev_s": round(think_s, 1), "decode_step_ms": round(1e3 * step_s, 2)}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--num-docs", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--num-queries", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gpu", choices=sorted(GPUS), default="H100-SXM")
    p.add_argument("--num-gpus", type=int, default=8)
    args = p.parse_args(argv)

    cpu = {"gemm_flops_per_s": gemm_flops(), "backbone": backbone_rates(args), "search": search_rates(args)}
    efficiency = cpu["backbone"]["forward_flops_per_s"] / cpu["gemm_flops_per_s"]  # measured here, assumed there
    emit("scale", {"measured_cpu": cpu, "compute_efficiency": efficiency,
                   "estimates": project(cpu, args.gpu, args.num_gpus, efficiency)},
         **vars(args), assumptions={"gpu": {args.gpu: GPUS[args.gpu]}, "msmarco": MSMARCO, "models": MODELS,
                                    "decode_bandwidth_efficiency": 0.7, "decode_batch_per_gpu": 256})


if __name__ == "__main__":
    main()
