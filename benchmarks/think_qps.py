"""Think-mode query encoding: fused think-and-embed (vectors read from the generation's KV cache)
against generate-then-re-encode, same thoughts (same seed); fast mode (no thoughts) beside them.

Prints one JSON object: median queries/s of each path over interleaved repeats, the speed-up, the
largest vector difference between the two think paths, a check that the k thoughts of a query
share one prefill of the query prompt (the first decoder call of a generation sees B rows, not B*k),
the next-token entropy of the model, and one sampling step of Hugging Face's top-p warper against
o1e's NucleusSampler on the model's own logits.
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
    """An o1e checkpoint on a random backbone. ``--lm-head-scale`` multiplies the LM head: at random init
    the next-token distribution is nearly uniform (entropy ~ln V), unlike any trained LM's; scaling the
    head gives a trained-like peaked distribution (the entropy is measured and printed)."""
    import torch

    from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel

    backbone = backbone_from_args(args, args.dtype)
    out = tempfile.mkdtemp(prefix="o1e-bench-ckpt-")
    model = O1EModel.build(str(backbone), O1EConfig(), lora=False, dtype=args.dtype)
    with torch.no_grad():
        model.causal_lm.get_output_embeddings().weight.mul_(args.lm_head_scale)
    model.save(out)
    return out


def first_step_logits(model, texts: list[str]):
    """The logits of the first thought token of each query (B, V)."""
    import torch

    from o1e_tevatron.collator import pad
    from o1e_tevatron.core.tensors import position_ids_from_mask

    t = model.template
    ids, mask = pad([t.query_prefix(q) for q in t.tokenize_queries(texts)], t.pad_id, "left")
    with torch.inference_mode():
        return model.causal_lm(input_ids=ids, attention_mask=mask,
                               position_ids=position_ids_from_mask(mask)).logits[:, -1].float()


def entropy(logits, temperature: float) -> float:
    """Mean entropy (nats) of the next-token distributions at ``temperature``."""
    import torch

    log_p = torch.log_softmax(logits / temperature, dim=-1)
    return round(float(-(log_p.exp() * log_p).sum(-1).mean()), 3)


def sampling_ms(logits, temperature: float, top_p: float, repeats: int = 20) -> dict:
    """Median ms of one sampling step on these logits: Hugging Face's temperature + top-p warpers and
    multinomial (what ``generate(do_sample=True)`` runs) against o1e's NucleusSampler."""
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    from o1e_pyserini.thinking.backends import NucleusSampler

    temperature_warper, top_p_warper = TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)
    sampler = NucleusSampler(temperature, top_p)

    def hf():
        torch.multinomial(top_p_warper(None, temperature_warper(None, logits.clone())).softmax(-1), 1)

    def ours():
        sampler(None, logits.clone())

    timings = {}
    for name, step in (("hf_top_p_multinomial", hf), ("nucleus_sampler", ours)):
        step()
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - t0)
        timings[name] = round(1000 * median(seconds), 3)
    timings["speedup"] = round(timings["hf_top_p_multinomial"] / timings["nucleus_sampler"], 2)
    return timings


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
    p.add_argument("--temperature", type=float, default=0.1, help="thought sampling (the authors' inference: 0.1)")
    p.add_argument("--lm-head-scale", type=float, default=1.0,
                   help="multiply the random LM head (1: near-uniform next tokens; 10: trained-like, peaked)")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    import o1e_pyserini  # noqa: F401  (sets up Java before pyserini)
    from o1e_pyserini.encoders.o1e import O1EQueryEncoder

    checkpoint = build_checkpoint(args)
    texts = queries(args.num_queries)
    common = dict(num_thoughts=args.num_thoughts, max_new_tokens=args.max_new_tokens, seed=0, device=args.device,
                  dtype=args.dtype, batch_size=args.batch_size, temperature=args.temperature)
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
    logits = first_step_logits(shared, texts[:args.batch_size])
    same_thoughts = outputs["think_fused"][1] == outputs["think_reencode"][1]
    thought_tokens = [len(t) for ts in thought_ids for t in ts]
    results = {
        "queries_per_s": qps,
        "fused_over_reencode": round(qps["think_fused"] / qps["think_reencode"], 3), "target": ">= 1.3",
        "fast_over_fused": round(qps["fast"] / qps["think_fused"], 2),
        "same_thoughts_in_both_paths": same_thoughts,
        "max_abs_vector_diff_fused_vs_reencode": float(np.abs(outputs["think_fused"][0] - outputs["think_reencode"][0]).max()),
        "median_thought_tokens": median(thought_tokens),
        "next_token_entropy_nats": {"at_sampling_temperature": entropy(logits, args.temperature),
                                    "at_temperature_1": entropy(logits, 1.0)},
        "sampling_ms_per_step": sampling_ms(logits.repeat_interleave(args.num_thoughts, dim=0), args.temperature,
                                            fused.settings.top_p),
        "prefill": {"first_decoder_call_rows": prompt_rows, "first_decoder_call_width": prompt_width,
                    "queries": min(args.batch_size, len(texts)), "thought_rows": min(args.batch_size, len(texts)) * args.num_thoughts,
                    "k_thoughts_share_one_prefill": prompt_rows == min(args.batch_size, len(texts))},
        "all_seconds": seconds,
    }
    emit("think_qps", results, **{k: v for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
