"""Before any training step: how well does the backbone already speak each thought layout?

For SciFact train rows (never the dev ones), the untrained student's generation loss on the teacher's
voted thoughts (mean token cross entropy over thought + end of turn, the loss of eq. 7) under each
template layout, and the greedy thoughts it writes for the first rows' queries. Prints JSON; --output writes it too.

    python recipes/mini/step0.py --rows runs/mini/train-rows.jsonl --output recipes/mini/results/step0.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from o1e_pyserini.evaluation.datasets import scifact_dev_query_ids
from o1e_pyserini.thinking.backends import HFThoughts, ThoughtSettings
from o1e_tevatron.collator import O1ECollator
from o1e_tevatron.data import JsonlRows
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
from o1e_tevatron.models import resolve_model_path
from o1e_tevatron.families.o1e.template import IGNORE_INDEX, TemplateConfig


@torch.inference_mode()
def generation_loss(model: O1EModel, rows, batch_size: int) -> float:
    collator, total, tokens = O1ECollator(model.template, "left"), 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids, mask, labels = collator.queries([r.query for r in chunk], [r.thought for r in chunk])
        logits = model.causal_lm(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        total += F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="sum").item()
        tokens += int((target != IGNORE_INDEX).sum())
    return total / tokens


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--rows", type=Path, required=True, help="training rows with the teacher's thoughts")
    parser.add_argument("--num-rows", type=int, default=96)
    parser.add_argument("--layouts", default="authors,chat")
    parser.add_argument("--thought-max-len", type=int, default=64)
    parser.add_argument("--examples", type=int, default=3, help="queries whose step-0 thoughts are shown")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows_source = JsonlRows([args.rows])
    rows = [r for r in (rows_source[i] for i in range(len(rows_source))) if r.thought][: args.num_rows]
    dev = scifact_dev_query_ids()
    if any(r.query_id in dev for r in rows):
        raise SystemExit(f"{args.rows} holds o1e/scifact/dev queries: use the training rows without them")
    result = {"model": args.model, "rows": len(rows), "layouts": {}}
    for layout in args.layouts.split(","):
        config = O1EConfig(template=TemplateConfig(layout=layout, thought_max_len=args.thought_max_len, query_max_len=32))
        model = O1EModel.build(resolve_model_path(args.model), config).eval()
        thinker = HFThoughts(model, ThoughtSettings(num_thoughts=1, temperature=0.0, max_new_tokens=48))
        texts = [r.query for r in rows[: args.examples]]
        thoughts = [model.tokenizer.decode(ths[0]) for ths in thinker.think(texts)]
        result["layouts"][layout] = {
            "generation_loss": round(generation_loss(model, rows, 8), 4),
            "greedy_thoughts": [{"query": q, "thought": t} for q, t in zip(texts, thoughts)],
        }
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
