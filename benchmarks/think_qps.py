"""Think-mode query encoding: fused think-and-embed (vectors read from the generation's KV cache)
against generate-then-re-encode, same thoughts (same seed); fast mode (no thoughts) beside them.

Prints one JSON object: median queries/s of each path over interleaved repeats, the speed-up, the
largest vector difference between the two think paths, and a check that the k thoughts of a query
share one prefill of the query prompt (the first decoder call of a generation sees B rows, not B*k).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

from benchmarks.common import SHARED_DATA, add_backbone_args, backbone_from_args, demo_texts, emit, median


def queries(n: int) -> list[str]:
    path = SHARED_DATA / "scifact" / "queries.jsonl"
    if path.exists():
        with open(path) as f:
            return [json.loads(line)["text"] for line in f][:n]
    return [t[:80] for t in demo_texts()][:n]


def build_checkpoint(args) -> str:
    from o1e_tevatron.modeling import O1EConfig, O1EModel

    backbone = backbone_from_args(args, args.dtype)
    out = tempfile.mkdtemp(prefix="o1e-bench-ckpt-")
    O1EModel.build(str(backbone), O1EConfig(), lora=False, dtype=args.dtype).save(out)
    return out


class PrefillRecorder:
    """Rows and widths of every decoder call (to show the k thoughts share the prompt's prefill)."""

    def __init__(self, decoder):
        self.calls = []
        self.handle = decoder.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.calls.append(tuple(ids.shape))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_backbone_args(p, hidden=384, layers=4, heads=6, kv_heads=2, intermediate=1024)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-queries", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-thoughts", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    import o1e_pyserini  # noqa: F401  (sets up Java before pyserini)
    from o1e_pyserini.encoder import O1EQueryEncoder

    checkpoint = build_checkpoint(args)
    texts = queries(args.num_queries)
    common = dict(num_thoughts=args.num_thoughts, max_new_tokens=args.max_new_tokens, seed=0, device=args.device,
                  dtype=args.dtype, batch_size=args.batch_size)
    fused = O1EQueryEncoder(checkpoint, mode="think", fused=True, **common)
    shared = fused.model  # one model in memory for all three paths
    reencode = O1EQueryEncoder.__new__(O1EQueryEncoder)
    reencode.__dict__.update({**fused.__dict__, "fused": False})
    fast = O1EQueryEncoder.__new__(O1EQueryEncoder)
    fast.__dict__.update({**fused.__dict__, "mode": "fast", "backend": None})
    encoders = {"think_fused": fused, "think_reencode": reencode, "fast": fast}

    def run(name):
        enc = encoders[name]
        start = len(enc.encoded.texts)
        t0 = time.perf_counter()
        vectors = enc.encode_batch(texts)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0, vectors, enc.encoded.thoughts[start:]

    run("fast")  # warm-up
    seconds = {name: [] for name in encoders}
    outputs = {}
    for r in range(args.repeats):
        for name in (list(encoders) if r % 2 == 0 else list(reversed(encoders))):
            t, vectors, thoughts = run(name)
            seconds[name].append(t)
            outputs[name] = (vectors, thoughts)

    recorder = PrefillRecorder(shared.causal_lm.get_decoder())
    thought_ids, _ = fused.backend.think_and_embed(texts[:args.batch_size])
    recorder.handle.remove()
    prompt_rows, prompt_width = recorder.calls[0]

    qps = {name: round(len(texts) / median(s), 3) for name, s in seconds.items()}
    same_thoughts = outputs["think_fused"][1] == outputs["think_reencode"][1]
    thought_tokens = [len(t) for ts in thought_ids for t in ts]
    results = {
        "queries_per_s": qps,
        "fused_over_reencode": round(qps["think_fused"] / qps["think_reencode"], 3), "target": ">= 1.3",
        "fast_over_fused": round(qps["fast"] / qps["think_fused"], 2),
        "same_thoughts_in_both_paths": same_thoughts,
        "max_abs_vector_diff_fused_vs_reencode": float(np.abs(outputs["think_fused"][0] - outputs["think_reencode"][0]).max()),
        "median_thought_tokens": median(thought_tokens),
        "prefill": {"first_decoder_call_rows": prompt_rows, "first_decoder_call_width": prompt_width,
                    "queries": min(args.batch_size, len(texts)), "thought_rows": min(args.batch_size, len(texts)) * args.num_thoughts,
                    "k_thoughts_share_one_prefill": prompt_rows == min(args.batch_size, len(texts))},
        "all_seconds": seconds,
    }
    emit("think_qps", results, **{k: v for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
