"""python -m o1e_pyserini.think: thoughts for many queries, split across processes and merged.

Like the corpus encoding, each process (one per GPU) thinks about one contiguous part of the topics
and appends ``{query_id, text, thoughts}`` lines (the ``thoughts.jsonl`` format) to its part file,
flushed per batch. A killed part resumes where it stopped: its finished queries are kept, a torn
last line is dropped, and a part made by another model, topics or sampling settings starts over.
``merge`` checks that every query is there exactly once and writes ``thoughts.jsonl`` in topic
order, which every later run reads (``--thoughts-file`` / ``--o1e-thoughts file``), so the queries
are thought about once.

    # one process per GPU (or torchrun: the part is the rank)
    for i in 0 1 2 3 4 5 6 7; do CUDA_VISIBLE_DEVICES=$i python -m o1e_pyserini.think run --model CKPT \\
        --topics dev.tsv --output-dir thoughts --num-shards 8 --shard-index $i --device cuda --dtype bfloat16 & done; wait
    python -m o1e_pyserini.think merge --topics dev.tsv --output-dir thoughts --num-shards 8

``--backend hf`` (the reference: the model's own ``generate``) or ``--backend vllm`` (the GPU path, a
merged checkpoint; ``--tensor-parallel-size`` and ``--vllm-arg NAME=VALUE`` go to ``vllm.LLM``). With
vLLM, one process may also take all queries (``--num-shards 1``) and split them itself
(``--vllm-arg data_parallel_size=8``).
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Iterator

from o1e_tevatron.core.fingerprint import fingerprint, model_fingerprint, path_fingerprint
from o1e_tevatron.core import readers
from o1e_tevatron.core.errors import run_command
from o1e_tevatron.core.encoding import shard_slice
from o1e_tevatron.core.redact import install_log_redaction, json_line

from ..arguments import positive_int
from ..encoders.o1e import THOUGHTS_NAME
from .backends import ThoughtSettings

logger = logging.getLogger(__name__)


def part_path(output_dir: Path, index: int, count: int) -> Path:
    return output_dir / f"thoughts.part-{index}-of-{count}.jsonl"


def read_part(path: Path) -> Iterator[dict]:
    """The complete lines of a part file (a line cut by a kill has no newline and is skipped)."""
    if not path.exists():
        return
    fields = {"query_id": readers.record_id, "text": readers.text, "thoughts": readers.string_list}
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break
            row = readers.checked_object(readers.parse_json(line, path, line_no), fields, path, line_no)
            yield {name: row[name] for name in fields}


def part_settings(args) -> str:
    grounding = path_fingerprint(args.grounding_index) if args.grounding_index and Path(args.grounding_index).exists() \
        else args.grounding_index  # a grounded prompt's thoughts depend on the index it retrieves from
    return fingerprint(model=model_fingerprint(args.model), topics=path_fingerprint(args.topics),
                       settings=vars(sampling(args)), backend=args.backend, grounding=grounding)


def sampling(args) -> ThoughtSettings:
    return ThoughtSettings(args.num_thoughts, args.temperature, args.top_p, args.max_thought_tokens, args.seed)


def rank_and_world(args) -> tuple[int, int]:
    """--shard-index/--num-shards, else torchrun's RANK/WORLD_SIZE."""
    if args.shard_index is not None:
        return args.shard_index, args.num_shards
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", args.num_shards))


def make_backend(args, settings: ThoughtSettings):
    """(backend, template): the HF reference (the o1e model's own generate) or vLLM (GPU)."""
    if args.backend == "vllm":
        from transformers import AutoTokenizer

        from o1e_tevatron.families.o1e.model import O1EConfig
        from o1e_tevatron.families.o1e.template import Template

        from .backends import VLLMThoughts, engine_options

        template = Template(AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code),
                            O1EConfig.load(Path(args.model)).template)
        options = engine_options(args.vllm_arg)
        return VLLMThoughts(args.model, template, settings, tensor_parallel_size=args.tensor_parallel_size,
                            dtype=args.dtype, trust_remote_code=args.trust_remote_code, **options), template
    from o1e_tevatron.families.o1e.model import O1EModel

    from ..encoders.base import load_family_model
    from .backends import HFThoughts

    device = args.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per rank
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    model = load_family_model(O1EModel, args.model, device, args.dtype, False, args.base_model, args.trust_remote_code)
    return HFThoughts(model, settings), model.template


def run(args) -> Path:
    index, count = rank_and_world(args)
    topics = readers.topics(args.topics)
    ids, texts = list(topics), list(topics.values())
    part = shard_slice(len(ids), count, index)
    ids, texts = ids[part], texts[part]
    out = part_path(args.output_dir, index, count)
    record = out.with_name(out.name + ".settings")
    made_from = part_settings(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if record.exists() and record.read_text() != made_from:
        logger.warning("%s was made by another model, topics or settings: thinking again", out)
        out.unlink(missing_ok=True)
    done = [row for row in read_part(out)]
    with open(out, "w", encoding="utf-8") as f:  # rewritten without a torn last line
        f.writelines(json_line(row) for row in done)
    record.write_text(made_from)
    finished = {row["query_id"] for row in done}
    todo = [(q, t) for q, t in zip(ids, texts) if q not in finished]
    logger.info("part %d of %d: %d queries, %d done before, %d to think about", index, count, len(ids),
                len(finished), len(todo))
    if not todo:
        return out
    backend, template = make_backend(args, sampling(args))
    if template.config.grounding_passages:
        if not args.grounding_index:
            raise SystemExit(f"error: {args.model} thinks from {template.config.grounding_passages} BM25 passages per "
                             "query: give --grounding-index (a Lucene index of the corpus)")
        from .grounding import LuceneGrounder

        template.grounder = LuceneGrounder(args.grounding_index, template.config.grounding_passages)
        template.grounder.prefetch(texts)
    with open(out, "a", encoding="utf-8") as f:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start:start + args.batch_size]
            thought_ids = backend.think([text for _, text in batch])
            for (query_id, text), ids_k in zip(batch, thought_ids):
                f.write(json_line({"query_id": query_id, "text": text,
                                   "thoughts": template.tokenizer.batch_decode(ids_k)}))
            f.flush()
            logger.info("part %d: %d / %d", index, start + len(batch), len(todo))
    return out


def merge(args) -> Path:
    """One ``thoughts.jsonl`` in topic order from the parts; each query exactly once."""
    topics = readers.topics(args.topics)
    ids, texts = list(topics), list(topics.values())
    rows = {}
    for index in range(args.num_shards):
        path = part_path(args.output_dir, index, args.num_shards)
        if not path.exists():
            raise FileNotFoundError(f"{path}: part {index} of {args.num_shards} was never run")
        for row in read_part(path):
            if row["query_id"] in rows:
                raise ValueError(f"{path}: query {row['query_id']} is also in another part: rerun that part alone")
            rows[row["query_id"]] = row
    missing = [q for q in ids if q not in rows]
    if missing:
        raise ValueError(f"{len(missing)} queries have no thoughts yet (e.g. {missing[0]}): resume their parts")
    unknown = sorted(set(rows) - set(ids))
    changed = [q for q, text in zip(ids, texts) if rows[q]["text"] != text]
    if unknown or changed:
        raise ValueError(f"the parts answer other topics than {args.topics} (query {(unknown or changed)[0]}): "
                         "think again with these topics")
    out = args.output_dir / THOUGHTS_NAME
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json_line(rows[q]) for q in ids)
    os.replace(tmp, out)
    logger.info("merged %d queries from %d parts into %s", len(ids), args.num_shards, out)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m o1e_pyserini.think", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    for name in ("run", "merge"):
        c = commands.add_parser(name)
        c.add_argument("--topics", required=True, help="query_id<TAB>text file")
        c.add_argument("--output-dir", type=Path, required=True)
        c.add_argument("--num-shards", type=positive_int, default=1)
    c = commands.choices["run"]
    c.add_argument("--model", required=True, help="o1e checkpoint (merged for --backend vllm)")
    c.add_argument("--shard-index", type=int, default=None, help="this part (default: torchrun's RANK)")
    c.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    c.add_argument("--num-thoughts", type=positive_int, default=3)
    c.add_argument("--temperature", type=float, default=0.1)
    c.add_argument("--top-p", type=float, default=0.9)
    c.add_argument("--max-thought-tokens", type=positive_int, default=128)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--batch-size", type=positive_int, default=64, help="queries per generate call")
    c.add_argument("--device", default="cpu")
    c.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    c.add_argument("--base-model", default=None, help="where the base model of an adapter checkpoint lives now")
    c.add_argument("--grounding-index", default=None,
                   help="a Lucene index of the corpus (folder or prebuilt name), for checkpoints trained with grounding")
    c.add_argument("--trust-remote-code", action="store_true",
                   help="run code shipped in the model folder (some backbones need it); off by default")
    c.add_argument("--tensor-parallel-size", type=positive_int, default=1, help="vLLM")
    c.add_argument("--vllm-arg", action="append", default=[], metavar="NAME=VALUE", help="more vllm.LLM options")
    return p


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    return run(args) if args.command == "run" else merge(args)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    install_log_redaction()
    run_command(main)
