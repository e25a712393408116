"""python -m o1e_tevatron.driver.encode: Tevatron's encoding flags for an o1e checkpoint.

    python -m o1e_tevatron.driver.encode --model_name_or_path ckpt --encode_in_path corpus.jsonl \\
        --encoded_save_path corpus.0.pkl --faiss_index_dir corpus-index.0 \\
        --encode_num_shard 4 --encode_shard_index 0 --per_device_eval_batch_size 64 --bf16

Writes Tevatron's pickle of (reps, lookup) at --encoded_save_path (read by ``python -m
tevatron.faiss_retriever``) and/or a Pyserini faiss index directory (``index`` + ``docid``) at
--faiss_index_dir. Shard i of n takes the i-th contiguous slice of the input; shard index directories
named PREFIX0 .. PREFIX{n-1} merge with ``python -m pyserini.index.merge_faiss_indexes --prefix PREFIX
--shard-num n --dimension d``. A shard whose outputs exist and list exactly its ids is skipped;
missing, unreadable or partial outputs are written again.

Input: JSON lines (BEIR ``_id``/``title``/``text``, Tevatron ``docid``/``title``/``text`` or
``query_id``/``query``, Pyserini ``id``/``contents``) or a TSV of ``id<TAB>text``. Queries
(--encode_is_qry) are embedded plainly, as Tevatron does; thought-augmented query vectors come
from ``o1e_pyserini.encoder.O1EQueryEncoder``.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..arguments import O1EDataArguments, O1EModelArguments, O1ETrainingArguments, parse_args
from ..inference import encode_sequences, read_index_dir_header, write_index_dir
from ..checkpoint import load_model
from ..families.debater import SCORINGS, index_rows
from ..template import passage_text

logger = logging.getLogger(__name__)

ID_FIELDS = ("_id", "docid", "query_id", "id")
TEXT_FIELDS = ("text", "query", "contents")


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


def read_texts(paths: list[str], is_query: bool) -> tuple[list[str], list[str]]:
    """(ids, texts) from JSON lines or TSV files, passages as ``title text``."""
    ids, texts = [], []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                if path.endswith(".tsv"):
                    row_id, sep, text = line.rstrip("\n").partition("\t")
                    if not sep:
                        raise ValueError(f"{where}: expected id<TAB>text")
                else:
                    row = json.loads(line)
                    try:
                        row_id = next(str(row[k]) for k in ID_FIELDS if k in row)
                        text = next(row[k] for k in TEXT_FIELDS if k in row)
                    except StopIteration:
                        raise ValueError(f"{where}: needs one of {ID_FIELDS} and one of {TEXT_FIELDS}") from None
                    title = "" if is_query else (row.get("title") or "").strip()
                    text = passage_text(title, text)
                if is_query and not text.strip():
                    raise ValueError(f"{where}: query {row_id} is empty")
                ids.append(row_id)
                texts.append(text)
    return ids, texts


def shard_slice(total: int, num_shards: int, index: int) -> slice:
    if not 0 <= index < num_shards:
        raise ValueError(f"encode_shard_index must be in [0, {num_shards}), got {index}")
    bounds = np.linspace(0, total, num_shards + 1).round().astype(int)
    return slice(int(bounds[index]), int(bounds[index + 1]))


def pickle_complete(path: Path, ids: list[str]) -> Optional[int]:
    """The vector dimension of a complete pickle for exactly ``ids``; None when it must be written."""
    try:
        with open(path, "rb") as f:
            reps, lookup = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as e:  # a torn or foreign file: encode again
        logger.warning("%s is unreadable (%r): encoding this shard again", path, e)
        return None
    if list(lookup) != ids or len(reps) != len(ids):
        logger.warning("%s holds %d vectors for %d ids, not this shard's %d ids: encoding again",
                       path, len(reps), len(lookup), len(ids))
        return None
    return int(np.asarray(reps).shape[1])


def index_dir_complete(folder: Path, ids: list[str]) -> Optional[int]:
    """The vector dimension of a complete index directory for exactly ``ids``; None otherwise."""
    try:
        count, dim, docids = read_index_dir_header(folder)
    except FileNotFoundError:
        return None
    except Exception as e:
        logger.warning("%s is unreadable (%r): encoding this shard again", folder, e)
        return None
    if count != len(docids) or docids != ids:
        logger.warning("%s holds %d vectors and %d docids, not this shard's %d ids: encoding again",
                       folder, count, len(docids), len(ids))
        return None
    return dim


def write_pickle(path: Path, reps: np.ndarray, lookup: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump((reps, lookup), f, protocol=4)
    os.replace(tmp, path)


def main(argv=None) -> int:
    model_args, data_args, training_args, encode_args = parse_args(
        (O1EModelArguments, O1EDataArguments, O1ETrainingArguments, O1EEncodeArguments), argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if not data_args.encode_in_path:
        raise ValueError("--encode_in_path is required")
    pickle_path = Path(data_args.encoded_save_path) if data_args.encoded_save_path else None
    index_dir = Path(encode_args.faiss_index_dir) if encode_args.faiss_index_dir else None
    if pickle_path is None and index_dir is None:
        raise ValueError("give --encoded_save_path (Tevatron pickle) and/or --faiss_index_dir (Pyserini index)")

    ids, texts = read_texts(data_args.encode_in_path, data_args.encode_is_qry)
    part = shard_slice(len(ids), data_args.encode_num_shard, data_args.encode_shard_index)
    ids, texts = ids[part], texts[part]
    outputs = {path: check(path, ids) for path, check in ((pickle_path, pickle_complete),
                                                          (index_dir, index_dir_complete)) if path is not None}
    if all(dim is not None for dim in outputs.values()):
        logger.info("shard %d/%d (%d texts) is already encoded: skipping", data_args.encode_shard_index,
                    data_args.encode_num_shard, len(ids))
        return 0

    dtype = "bfloat16" if training_args.bf16 else "float16" if training_args.fp16 else "float32"
    model = load_model(model_args.model_name_or_path, dtype=dtype, device=training_args.device,
                       base_model_name_or_path=encode_args.base_model_name_or_path,
                       trust_remote_code=model_args.trust_remote_code).eval()
    t = model.template
    if data_args.encode_is_qry:
        sequences = [t.plain_query(x) for x in t.tokenize_queries(texts)]
    else:
        sequences = [t.passage(x) for x in t.tokenize_batch(texts)]
    reps = encode_sequences(model, sequences, training_args.per_device_eval_batch_size, progress=True,
                            desc=f"shard {data_args.encode_shard_index}", query=data_args.encode_is_qry)
    if reps.ndim == 3:  # DEBATER's step vectors
        reps, ids = index_rows(reps, ids, encode_args.debater_scoring)
    for path, dim in outputs.items():
        if dim is not None and dim != reps.shape[1]:
            raise ValueError(f"vector dimension mismatch: {path} already holds {dim}-d vectors of this shard but "
                             f"{model_args.model_name_or_path} makes {reps.shape[1]}-d vectors; remove {path} or "
                             "write elsewhere")
    for path, dim in outputs.items():
        if dim is None:
            (write_pickle if path == pickle_path else write_index_dir)(path, reps, ids)
            logger.info("wrote %s (%d x %d)", path, *reps.shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
