"""python -m o1e_tevatron.driver.encode: Tevatron's encoding flags for a checkpoint of any family.

    python -m o1e_tevatron.driver.encode --model_name_or_path ckpt --encode_in_path corpus.jsonl \\
        --encoded_save_path corpus.0.pkl --faiss_index_dir corpus-index.0 \\
        --encode_num_shard 4 --encode_shard_index 0 --per_device_eval_batch_size 64 --bf16

Writes the vectors at --encoded_save_path: ``.npz`` (vectors + ids; o1e's safe default, read by
``python -m o1e_pyserini.eval import-shards``) or, for a ``.pkl`` path, Tevatron's pickle of (reps,
lookup) (read by ``python -m tevatron.faiss_retriever``); and/or a Pyserini faiss index directory
(``index`` + ``docid``) at --faiss_index_dir. Shard i of n takes the i-th contiguous slice of the input;
shard index directories named PREFIX0 .. PREFIX{n-1} merge with ``python -m
pyserini.index.merge_faiss_indexes --prefix PREFIX --shard-num n --dimension d``.

Each output gets a record beside it (``<path>.o1e.json``, or ``o1e-encoded.json`` in an index
directory) holding the fingerprint of the model's files, the input files and the encoding settings.
A shard is skipped only when its record matches all of them and its ids; any other model (even
one retrained or copied into the same folder), input or setting encodes it again. Nothing is
unpickled to decide that. --q_max_len / --p_max_len, when given, replace the checkpoint's lengths.

A DEBATER checkpoint writes the last step's vector per passage, or with ``--debater_scoring
max-steps`` all M step vectors (each passage's id repeated M times: search keeps its best step).
--model_name_or_path may also be a release in its authors' layout (DEBATER's llm2vec adapter, the O1
Embedder authors'; ``o1e_tevatron.families.release``); ``--trust_remote_code`` runs its folder's code (MiniCPM).

Input: JSON lines (BEIR ``_id``/``title``/``text``, Tevatron ``docid``/``title``/``text`` or
``query_id``/``query``, Pyserini ``id``/``contents``) or a TSV of ``id<TAB>text``. Queries
(--encode_is_qry) are embedded plainly, as Tevatron does; thought-augmented query vectors come
from ``o1e_pyserini.encoders.o1e.O1EQueryEncoder``.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from ..arguments import O1EDataArguments, O1EModelArguments, O1ETrainingArguments, parse_args
from ..core import readers
from ..core.encoding import DocidCheck, encode_sequences, shard_slice, write_index_dir
from ..core.errors import InputError, run_command
from ..core.fingerprint import fingerprint, model_fingerprint, path_fingerprint
from ..core.rows import passage_text
from ..core.vectors import (VECTOR_DTYPES, memory_plan, recorded_dimension, remove_record, storage_dtype,
                            write_record, write_vectors)
from ..families.debater.model import SCORINGS, index_rows
from ..families.registry import load_model

logger = logging.getLogger(__name__)


@dataclass
class O1EEncodeArguments:
    faiss_index_dir: Optional[str] = field(default=None, metadata={
        "help": "Also write this shard as a Pyserini faiss index directory (index + docid)"})
    base_model_name_or_path: Optional[str] = field(default=None, metadata={
        "help": "Where the base model of an adapter checkpoint lives now"})
    debater_scoring: str = field(default="last", metadata={
        "help": "DEBATER passages: the last step's vector (one per passage), or max-steps: all M step vectors, "
                "each passage's id repeated M times (search keeps each passage's best step)",
        "choices": list(SCORINGS)})
    vector_dtype: str = field(default="auto", metadata={
        "help": "How vectors are stored (.npz and index): float16 (half the memory), float32, or auto: float16 "
                "from 1M input texts on (a large corpus), float32 below", "choices": list(VECTOR_DTYPES)})


def read_texts(paths: list[str], is_query: bool) -> tuple[list[str], list[str]]:
    """(ids, texts) from JSON lines (``core.readers.corpus``) or ``id<TAB>text`` files, passages as
    ``title text``; ids unique across all files."""
    ids, texts, check = [], [], DocidCheck("")
    for path in paths:
        for line_no, row_id, title, text in _rows(path):
            text = text if is_query else passage_text(title.strip(), text)
            if is_query and not text.strip():
                raise InputError(f"query {row_id} is empty", path, line_no, hint="give its text or remove the line")
            problem = check.problem(row_id)
            if problem:
                raise InputError(problem, path, line_no)
            ids.append(row_id)
            texts.append(text)
    return ids, texts


def _rows(path: str) -> Iterator[tuple[int, str, str, str]]:
    """(line, id, title, text) of one input file."""
    if path.endswith(".tsv"):
        for line_no, line in readers.record_lines(path):
            row_id, text = readers.tsv_fields(line, 2, "id<TAB>text", path, line_no)
            yield line_no, row_id, "", text
    else:
        yield from readers.corpus(path)


def given_lengths(argv: list[str], data_args) -> dict[str, int]:
    """The template lengths set on the command line (--q_max_len / --p_max_len and their Tevatron v2
    aliases): they replace the checkpoint's own, as Tevatron's encoder applies its flags."""
    flags = {"query_max_len": ("--q_max_len", "--query_max_len"), "passage_max_len": ("--p_max_len", "--passage_max_len")}
    values = {"query_max_len": data_args.q_max_len, "passage_max_len": data_args.p_max_len}
    return {name: values[name] for name, names in flags.items()
            if any(arg == n or arg.startswith(n + "=") for arg in argv for n in names)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    model_args, data_args, training_args, encode_args = parse_args(
        (O1EModelArguments, O1EDataArguments, O1ETrainingArguments, O1EEncodeArguments), argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if not data_args.encode_in_path:
        raise ValueError("--encode_in_path is required")
    vectors_path = Path(data_args.encoded_save_path) if data_args.encoded_save_path else None
    index_dir = Path(encode_args.faiss_index_dir) if encode_args.faiss_index_dir else None
    if vectors_path is None and index_dir is None:
        raise ValueError("give --encoded_save_path (.npz, or .pkl for Tevatron) and/or --faiss_index_dir (Pyserini index)")

    ids, texts = read_texts(data_args.encode_in_path, data_args.encode_is_qry)
    vector_dtype = storage_dtype(encode_args.vector_dtype, len(ids))
    part = shard_slice(len(ids), data_args.encode_num_shard, data_args.encode_shard_index)
    ids, texts = ids[part], texts[part]
    lengths = given_lengths(argv, data_args)
    dtype = "bfloat16" if training_args.bf16 else "float16" if training_args.fp16 else "float32"
    model_made_from = model_fingerprint(model_args.model_name_or_path)
    made_from = fingerprint(
        model=model_made_from,
        base=model_fingerprint(encode_args.base_model_name_or_path) if encode_args.base_model_name_or_path else None,
        inputs=[path_fingerprint(p) for p in data_args.encode_in_path], is_query=data_args.encode_is_qry,
        lengths=lengths, dtype=dtype, debater_scoring=encode_args.debater_scoring, vector_dtype=vector_dtype)
    outputs = {path: recorded_dimension(path, made_from, ids) for path in (vectors_path, index_dir) if path is not None}
    if all(dim is not None for dim in outputs.values()):
        logger.info("shard %d/%d (%d texts) is already encoded by this model and settings: skipping",
                    data_args.encode_shard_index, data_args.encode_num_shard, len(ids))
        return 0

    model = load_model(model_args.model_name_or_path, dtype=dtype, device=training_args.device,
                       base_model_name_or_path=encode_args.base_model_name_or_path,
                       trust_remote_code=model_args.trust_remote_code).eval()
    t = model.template
    for name, value in lengths.items():
        logger.info("%s %d (the checkpoint says %d)", name, value, getattr(t.config, name))
        setattr(t.config, name, value)
    if data_args.encode_is_qry:
        if getattr(t.config, "grounding_passages", 0):
            raise ValueError(f"{model_args.model_name_or_path} thinks from BM25 passages: encode its queries on the "
                             "search side, which retrieves them (python -m o1e_pyserini.search.faiss "
                             "--o1e-grounding-index, python -m o1e_pyserini.eval --grounding-index)")
        sequences = [t.plain_query(x) for x in t.tokenize_queries(texts)]
    else:
        sequences = [t.passage(x) for x in t.tokenize_batch(texts)]
    reps = encode_sequences(model, sequences, training_args.per_device_eval_batch_size, progress=True,
                            desc=f"shard {data_args.encode_shard_index}", query=data_args.encode_is_qry)
    rows, row_ids = index_rows(reps, ids, encode_args.debater_scoring) if reps.ndim == 3 else (reps, ids)
    rows_per_id = len(row_ids) // max(len(ids), 1)
    logger.info("this shard: %s", memory_plan(len(rows), rows.shape[1], vector_dtype))
    shard = [data_args.encode_shard_index, data_args.encode_num_shard]  # sharded search checks all n are there
    for path, dim in outputs.items():
        if dim is None:
            remove_record(path)
            if path == vectors_path:
                write_vectors(path, rows, row_ids, dtype=vector_dtype)
            else:
                write_index_dir(path, rows, row_ids, rows_per_id, dtype=vector_dtype)
            write_record(path, made_from, ids, rows.shape[1], model=model_made_from, shard=shard)  # the shard's ids
            logger.info("wrote %s (%d x %d)", path, *rows.shape)
    return 0


if __name__ == "__main__":
    run_command(main)
