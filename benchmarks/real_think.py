"""Think mode on a real trained O1E checkpoint (SmolLM2-135M-Instruct, the miniature's arm b), side by
side with the authors' inference pipeline, in one process with interleaved repeats:

1. ``authors``: what their inference runs: Hugging Face ``generate`` with ``num_return_sequences=k``
   (temperature 0.1, top-p 0.9, 128 new tokens), decode to text, re-tokenize, and a second full forward
   over each ``query + thought + <emb>`` to embed, averaging the k vectors;
2. ``o1e_think``: ``O1EQueryEncoder`` think mode (one prefill per query shared by its k thoughts,
   NucleusSampler, the ``<emb>`` state read from the generation's KV cache);
3. ``o1e_fast``: the plain query, one forward.

Same queries, k and sampling settings for 1 and 2; both the time split (generate vs. embed) and the
generated tokens are reported, since a sampler that stops earlier would look faster for free; then one
more o1e think pass is timed by part (prefill, decode, sampling, embed). CPU options
(compute dtype, threads, batch size) are in ``benchmarks.cpu_options``.

    .venv/bin/python -m benchmarks.real_think --checkpoint runs/mini/model-b
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import emit, median
from benchmarks.think_qps import queries


def authors_pipeline(model, texts: list[str], k: int, temperature: float, top_p: float, max_new_tokens: int,
                     batch_size: int, seconds: dict) -> tuple:
    """The authors' way: sample with HF generate, decode, re-tokenize, re-encode; (vectors (B, d), tokens)."""
    import numpy as np
    import torch

    from o1e_tevatron.collator import pad
    from o1e_tevatron.core.encoding import encode_sequences

    t = model.template
    tokenizer = t.tokenizer
    out, generated = [], 0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        query_ids = t.tokenize_queries(chunk)
        ids, mask = pad([t.query_prefix(q) for q in query_ids], t.pad_id, "left")
        t0 = time.perf_counter()
        with torch.inference_mode():
            sequences = model.causal_lm.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_p=top_p,
                max_new_tokens=max_new_tokens, num_return_sequences=k, eos_token_id=t.eos_id, pad_token_id=t.pad_id)
        new = sequences[:, ids.shape[1]:]
        generated += int(((new != t.pad_id) & (new != t.eos_id)).sum())
        thoughts = tokenizer.batch_decode(new, skip_special_tokens=True)
        t1 = time.perf_counter()
        rows = [t.thought_query(query_ids[i // k], t.tokenize(thought))[0] for i, thought in enumerate(thoughts)]
        vectors = encode_sequences(model, rows, batch_size * k, query=True).reshape(len(chunk), k, -1)
        out.append(vectors.mean(1))
        t2 = time.perf_counter()
        seconds["generate"] += t1 - t0
        seconds["embed"] += t2 - t1
    return np.concatenate(out), generated


def o1e_think_split(encoder, texts: list[str]) -> dict:
    """Seconds of one o1e think pass by part, timed by wrapping the parts (a pass of its own, so the
    wrappers never touch the timed comparison): the prefill (one per query, shared by its k thoughts),
    the decode steps of ``generate``, the sampler inside them, and the fused embed that follows."""
    from o1e_pyserini.thinking import backends as thinking

    seconds = {"prefill": 0.0, "generate": 0.0, "sampling": 0.0}

    def clocked(part, fn):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - t0
        return call

    lm = encoder.model.causal_lm
    originals = thinking.prefill_plain_query, thinking.NucleusSampler.__call__
    thinking.prefill_plain_query = clocked("prefill", originals[0])
    thinking.NucleusSampler.__call__ = clocked("sampling", originals[1])
    lm.generate = clocked("generate", lm.generate)
    try:
        t0 = time.perf_counter()
        encoder.encode_batch(texts)
        total = time.perf_counter() - t0
    finally:
        thinking.prefill_plain_query, thinking.NucleusSampler.__call__ = originals
        del lm.generate
    return {"total": round(total, 2), "prefill": round(seconds["prefill"], 2),
            "decode": round(seconds["generate"] - seconds["sampling"], 2), "sampling": round(seconds["sampling"], 2),
            "embed_and_rest": round(total - seconds["prefill"] - seconds["generate"], 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/mini/model-b", help="a trained O1E checkpoint")
    p.add_argument("--num-queries", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-thoughts", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128, help="the authors' 128")
    p.add_argument("--temperature", type=float, default=0.1, help="the authors' 0.1")
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", help="of the think comparison")
    args = p.parse_args(argv)

    import o1e_pyserini  # noqa: F401  (sets up Java before pyserini)
    from o1e_pyserini.encoders.o1e import O1EQueryEncoder

    texts = queries(args.num_queries)
    think = O1EQueryEncoder(args.checkpoint, mode="think", num_thoughts=args.num_thoughts,
                            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            seed=0, dtype=args.dtype, batch_size=args.batch_size)
    fast = O1EQueryEncoder.__new__(O1EQueryEncoder)
    fast.__dict__.update({**think.__dict__, "mode": "fast", "think_now": False})
    model = think.model
    split = {"generate": 0.0, "embed": 0.0}
    tokens = {}

    def run(name):
        t0 = time.perf_counter()
        if name == "authors":
            vectors, tokens[name] = authors_pipeline(model, texts, args.num_thoughts, args.temperature, args.top_p,
                                                     args.max_new_tokens, args.batch_size, split)
        else:
            encoder = think if name == "o1e_think" else fast
            start = len(encoder.encoded.generated_tokens)
            vectors = encoder.encode_batch(texts)
            tokens[name] = sum(encoder.encoded.generated_tokens[start:])
        return time.perf_counter() - t0, vectors

    names = ["authors", "o1e_think", "o1e_fast"]
    run("o1e_fast")  # warm-up
    seconds = {name: [] for name in names}
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            seconds[name].append(run(name)[0])
    qps = {name: round(len(texts) / median(s), 3) for name, s in seconds.items()}
    generated = {name: round(tokens[name] / len(texts), 1) for name in ("authors", "o1e_think")}

    results = {
        "queries_per_s": qps,
        "o1e_think_over_authors": round(qps["o1e_think"] / qps["authors"], 2), "target": ">= 3",
        "generated_tokens_per_query": generated,
        "generated_tokens_per_s": {name: round(generated[name] * qps[name], 1) for name in generated},
        "authors_seconds_split": {name: round(v / args.repeats, 2) for name, v in split.items()},
        "o1e_think_seconds_split": o1e_think_split(think, texts),
        "all_seconds": seconds,
    }
    emit("real_think", results, **vars(args))


if __name__ == "__main__":
    main()
