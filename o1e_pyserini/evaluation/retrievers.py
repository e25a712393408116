"""Retriever specs -> cached Pyserini indexes and searchers.

A spec is ``bm25`` (Lucene, Pyserini's BM25 k1=0.9 b=0.4), ``<pyserini-encoder>:<model>`` for any
key of Pyserini's encoder class maps (``auto:``, ``contriever:``, ``dpr:`` ...; Auto encoders use
mean pooling + L2 norm by default, as sentence-transformers models expect), ``repllama:<model>``,
``o1e:<model>`` or ``debater:<model>`` (o1e's own retrievers: a factory table, :func:`own_encoders`). Any dense retriever can read thoughts from a file or a separate generator
(``query_options``: ``thoughts`` = ``file`` | ``openai``), the paper's Table 4 baseline.
Indexes are built once per (retriever, options, dataset) and reused: a Lucene index from a
JsonCollection via ``python -m pyserini.index.lucene``, or a faiss directory (``index`` + ``docid``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

import o1e_pyserini  # noqa: F401  (Java 21 for Pyserini before pyserini is imported)
from o1e_pyserini.search.sharded import ShardedIndex, is_sharded, shard_dirs, sharded_searcher_class, write_shards_file
from o1e_tevatron.core.fingerprint import fingerprint, model_fingerprint
from o1e_tevatron.core.vectors import flat_index, memory_plan, storage_dtype
from o1e_tevatron.core.encoding import DocidCheck, read_docid_file, write_index_dir
from o1e_tevatron.models import resolve_model_path
from o1e_tevatron.core.rows import passage_text

logger = logging.getLogger(__name__)

INDEX_META = "o1e-index.json"
AUTO_ENCODERS = ("auto", "sentence", "sentence-transformers", "contriever")
OWN_ENCODERS = ("o1e", "debater", "repllama")  # o1e's own classes (see own_encoders)
THOUGHT_OPTIONS = ("num_thoughts", "temperature", "max_new_tokens", "seed")  # ThoughtSettings' names
THOUGHT_SOURCE_OPTIONS = ("thoughts", "thoughts_file", "thought_server", "thought_model")  # O1EQueryEncoder's names
@dataclass(frozen=True)
class RetrieverSpec:
    """What to search with, and every option that changes the index (part of its cache key)."""

    spec: str
    device: str = "cpu"
    batch_size: int = 32
    max_passage_length: int = 256
    pooling: str = "mean"
    l2_norm: bool = True
    debater_scoring: str = "last"  # DEBATER's index: the last step, or max-steps (M vectors per passage)
    vector_dtype: str = "auto"  # how the index stores vectors: float16, float32, auto (float16 from 1M passages)
    dtype: str = "float32"  # o1e's own encoders compute in it (bfloat16: ~3x faster on AMX CPUs; float16 on GPUs)
    trust_remote_code: bool = False  # o1e's own encoders run the model folder's code (MiniCPM needs it): opt-in
    # only for queries, so not in the index key: O1EQueryEncoder's options for o1e (mode, thoughts, ...);
    # for other dense retrievers a thought source (thoughts + thoughts_file or thought_server/thought_model)
    query_options: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.spec.split(":", 1)[0]

    @property
    def model(self) -> str | None:
        return resolve_model_path(self.spec.split(":", 1)[1]) if ":" in self.spec else None

    @property
    def is_lucene(self) -> bool:
        return self.spec == "bm25"

    def validate(self) -> "RetrieverSpec":
        from pyserini.encode import document_encoder_class_map

        if self.kind not in OWN_QUERY_OPTIONS and self.query_options:
            unknown = set(self.query_options) - set(THOUGHT_SOURCE_OPTIONS) - set(THOUGHT_OPTIONS)
            if unknown or self.is_lucene:
                raise ValueError(f"retriever {self.spec!r}: {sorted(unknown or self.query_options)} apply to "
                                 "o1e: retrievers only (thought sources also to dense retrievers)")
            if "thoughts" not in self.query_options:
                raise ValueError(f"retriever {self.spec!r}: thought options need a thought source (file or server)")
        if self.kind in OWN_QUERY_OPTIONS and OWN_QUERY_OPTIONS[self.kind] is not None:
            unknown = set(self.query_options) - set(OWN_QUERY_OPTIONS[self.kind])
            if unknown:
                raise ValueError(f"retriever {self.spec!r}: {sorted(unknown)} do not apply to {self.kind}: retrievers")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"retriever {self.spec!r}: dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.dtype != "float32" and self.kind not in OWN_ENCODERS:
            raise ValueError(f"retriever {self.spec!r}: dtype {self.dtype} applies to o1e's own encoders "
                             f"({', '.join(sorted(OWN_ENCODERS))}); Pyserini's compute in float32")
        if self.trust_remote_code and self.kind not in OWN_ENCODERS:
            raise ValueError(f"retriever {self.spec!r}: trust_remote_code applies to o1e's own encoders "
                             f"({', '.join(sorted(OWN_ENCODERS))})")
        if self.debater_scoring != "last" and self.kind != "debater":
            raise ValueError(f"retriever {self.spec!r}: debater_scoring applies to debater: retrievers only")
        if self.is_lucene:
            return self
        if self.model is None or (self.kind not in OWN_ENCODERS and self.kind not in document_encoder_class_map):
            raise ValueError(f"retriever {self.spec!r}: expected 'bm25', 'o1e:MODEL', 'debater:MODEL', "
                             f"'repllama:MODEL' or 'ENCODER:MODEL' with ENCODER one of {sorted(document_encoder_class_map)}")
        return self

    @property
    def rows_per_passage(self) -> int:
        """Index rows per passage: M for a max-steps DEBATER index, else 1."""
        if self.kind != "debater" or self.debater_scoring == "last":
            return 1
        from o1e_tevatron.families.debater.model import DebaterConfig
        return DebaterConfig.load(Path(self.model)).num_steps

    def index_key(self) -> dict:
        key = {"spec": self.spec}
        if not self.is_lucene:
            key.update(max_passage_length=self.max_passage_length)
            if self.kind in AUTO_ENCODERS:
                key.update(pooling=self.pooling, l2_norm=self.l2_norm)
            if self.kind == "debater":
                key.update(debater_scoring=self.debater_scoring)
            if self.vector_dtype != "auto":  # auto follows the corpus, which the content key holds
                key.update(vector_dtype=self.vector_dtype)
            if self.dtype != "float32":  # float32 indexes keep the keys they had before dtype existed
                key.update(dtype=self.dtype)
        return key

    def content_key(self, corpus: str) -> str:
        """What the index is made of: the model's files (weights, config, tokenizer), the corpus
        (``corpus``: its fingerprint) and :meth:`index_key`. Stored beside the index and compared on reuse."""
        model = None if self.is_lucene else model_fingerprint(self.model)
        return fingerprint(settings=self.index_key(), model=model, corpus=corpus)

    def slug(self) -> str:
        name = "bm25" if self.is_lucene else f"{self.kind}-{Path(self.spec.split(':', 1)[1].rstrip('/')).name}"
        digest = hashlib.sha1(json.dumps(self.index_key(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{name}-{digest}"

    # --- encoders -------------------------------------------------------------------------
    def document_encoder(self):
        if self.kind in OWN_ENCODERS:
            return own_encoders()[self.kind][1](self)
        from pyserini.encode import document_encoder_class_map
        cls = document_encoder_class_map[self.kind]
        if self.kind in AUTO_ENCODERS:
            return cls(self.model, device=self.device, pooling=self.pooling, l2_norm=self.l2_norm)
        return cls(self.model, device=self.device)

    def query_encoder(self):
        if self.kind in OWN_QUERY_OPTIONS:
            return own_encoders()[self.kind][0](self, **self.query_options)
        encoder = own_encoders()[self.kind][0](self) if self.kind in OWN_ENCODERS else self._plain_query_encoder()
        if "thoughts" not in self.query_options:
            return encoder
        from o1e_pyserini.encoders.augmented import ThoughtAugmentedQueryEncoder
        return ThoughtAugmentedQueryEncoder(encoder, self._thought_texts(), batch_size=self.batch_size)

    def _plain_query_encoder(self):
        from pyserini.encode import query_encoder_class_map
        if self.kind in AUTO_ENCODERS:
            return _batched_auto_query_encoder()(self.model, device=self.device, pooling=self.pooling, l2_norm=self.l2_norm)
        return query_encoder_class_map.get(self.kind, query_encoder_class_map["auto"])(self.model, device=self.device)

    def _thought_texts(self):
        from o1e_pyserini.thinking.backends import OpenAIThoughts, RecordedThoughts, ThoughtSettings
        options = self.query_options
        if options["thoughts"] == "file":
            return RecordedThoughts(options["thoughts_file"])
        settings = ThoughtSettings(**{k: options[k] for k in THOUGHT_OPTIONS if k in options})
        return OpenAIThoughts(options["thought_server"], options["thought_model"], settings)


#: Retrievers whose query encoder takes the spec's query options (None: checked against its signature).
OWN_QUERY_OPTIONS = {"o1e": None, "debater": ("instruction",)}


def own_encoders() -> dict:
    """o1e's own retrievers: kind -> (query encoder, document encoder) factories of a spec. The
    thinking families' classes come from the registry (the ones Pyserini's CLIs use); RepLLaMA, which
    Pyserini 1.6 lacks, is here only."""
    from o1e_pyserini.encoders.registry import ENCODERS
    from o1e_pyserini.encoders.repllama import RepLlamaDocumentEncoder, RepLlamaQueryEncoder

    o1e_query, o1e_document = ENCODERS["o1e"]

    def o1e_query_encoder(spec, **options):
        unknown = set(options) - set(inspect.signature(o1e_query).parameters)
        if unknown:
            raise TypeError(f"{o1e_query.__name__} does not accept {sorted(unknown)}")
        return o1e_query(spec.model, device=spec.device, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code,
                         **options)

    def batched(cls):
        return lambda spec, **options: cls(spec.model, device=spec.device, dtype=spec.dtype, batch_size=spec.batch_size,
                                           trust_remote_code=spec.trust_remote_code, **options)

    debater_query, debater_document = ENCODERS["debater"]
    return {
        "o1e": (o1e_query_encoder, batched(o1e_document)),
        "debater": (batched(debater_query), batched(debater_document)),
        "repllama": (batched(RepLlamaQueryEncoder), batched(RepLlamaDocumentEncoder)),
    }


def _batched_auto_query_encoder():
    """Pyserini's AutoQueryEncoder plus ``encode_batch`` (FaissSearcher.batch_search uses it): one
    padded forward pass per batch instead of one per query; pooling over the attention mask gives
    the vectors ``encode`` gives."""
    from pyserini.encode import AutoQueryEncoder
    from sklearn.preprocessing import normalize

    class BatchedAutoQueryEncoder(AutoQueryEncoder):
        def encode_batch(self, queries: list[str]) -> np.ndarray:
            if self.prefix:
                queries = [f"{self.prefix} {q}" for q in queries]
            inputs = self.tokenizer(queries, padding=True, truncation=True, return_tensors="pt",
                                    return_token_type_ids=False).to(self.device)
            hidden = self.model(**inputs)[0]
            if self.pooling == "mean":
                mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * mask).sum(1) / mask.sum(1)
            else:
                vectors = hidden[:, 0]
            vectors = vectors.float().cpu().numpy()
            return normalize(vectors, norm="l2") if self.l2_norm else vectors

    return BatchedAutoQueryEncoder


def index_is_built(index_dir: Path) -> bool:
    return (index_dir / INDEX_META).exists()


def reusable_index(index_dir: Path, content_key: str) -> bool:
    """True when ``index_dir`` was built from exactly this content (and its vectors are the size its
    record says); an index of other content is logged and rebuilt, never reused."""
    if not index_is_built(index_dir):
        return False
    meta = json.loads((index_dir / INDEX_META).read_text())
    if meta.get("fingerprint") != content_key:
        logger.warning("%s was built from another model, corpus or settings (its files changed since): "
                       "building it again", index_dir)
        return False
    if "dimension" in meta:
        try:
            index = _open_index(index_dir)
        except (ValueError, OSError, RuntimeError) as e:
            logger.warning("%s cannot be read (%s): building it again", index_dir, e)
            return False
        vectors = meta.get("num_vectors", meta["num_docs"])  # M per passage in a max-steps DEBATER index
        if index.d != meta["dimension"] or index.ntotal != vectors:
            logger.warning("%s holds %d %d-d vectors, its record says %d %d-d: building it again", index_dir,
                           index.ntotal, index.d, vectors, meta["dimension"])
            return False
    return True


def _open_index(index_dir: Path):
    """The index memory-mapped (d, ntotal), one faiss file or a sharded directory."""
    import faiss

    if is_sharded(index_dir):
        return ShardedIndex(shard_dirs(index_dir), gpu=False)
    return faiss.read_index(str(index_dir / "index"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)


def read_docids(index_dir: Path) -> list[str]:
    if is_sharded(index_dir):
        return [docid for folder in shard_dirs(index_dir) for docid in read_docid_file(folder / "docid")]
    return read_docid_file(index_dir / "docid")


def build_index(retriever: RetrieverSpec, docs: Iterable, index_dir: Path, content_key: str,
                num_docs: int | None = None, threads: int = 2) -> Path:
    """Build the index of ``docs`` (ir_datasets docs with doc_id/text[/title]) unless one of the same
    ``content_key`` (:meth:`RetrieverSpec.content_key`) exists.

    The index is written to a temporary sibling and renamed, so an interrupted build is never
    mistaken for a cached one. Duplicate doc ids in the corpus are an error (the run would be
    ambiguous)."""
    index_dir = Path(index_dir)
    with _sole_builder(index_dir) as partial:
        if reusable_index(index_dir, content_key):  # also when another process built it while this one waited
            logger.info("reusing index %s", index_dir)
            return index_dir
        with tqdm(total=num_docs, desc=f"index {retriever.spec}", unit="doc") as progress:
            if retriever.is_lucene:
                count, dimension = _build_lucene(_unique_docs(docs), partial, threads, progress), None
            else:
                count, dimension = _build_faiss(retriever, _unique_docs(docs), partial, progress, num_docs)
        rows = {} if retriever.rows_per_passage == 1 else {"num_vectors": count * retriever.rows_per_passage}
        _write_meta(partial, retriever, content_key, count, dimension, **rows)
        shutil.rmtree(index_dir, ignore_errors=True)
        partial.rename(index_dir)
    return index_dir


@contextlib.contextmanager
def _sole_builder(index_dir: Path) -> Iterator[Path]:
    """The folder to build ``index_dir`` in (``<name>.partial``, renamed into place when complete), held by one
    process at a time: two harness runs of one model and corpus once shared it, and the second one's start
    deleted the first one's half-written files. A second builder waits on a lock file beside the index."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(index_dir.with_name(index_dir.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is building %s: waiting for it", index_dir)
            fcntl.flock(lock, fcntl.LOCK_EX)
        partial = index_dir.with_name(index_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # a stopped build's, never a running one's
        partial.mkdir()
        try:
            yield partial
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def _unique_docs(docs: Iterable) -> Iterator:
    check = DocidCheck("the corpus")
    for doc in docs:
        check(doc.doc_id)
        yield doc


def _build_lucene(docs: Iterable, index_dir: Path, threads: int, progress: tqdm) -> int:
    collection = index_dir / "collection"
    collection.mkdir()
    count = 0
    with open(collection / "docs.jsonl", "w") as out, open(index_dir / "docid", "w") as docids:
        for doc in docs:
            out.write(json.dumps({"id": doc.doc_id, "contents": passage_text(getattr(doc, "title", ""), doc.text)}) + "\n")
            docids.write(doc.doc_id + "\n")
            count += 1
            progress.update()
    # A child process: Anserini's indexer owns its JVM settings; o1e_pyserini prepares Java first.
    command = [sys.executable, "-c",
               "import o1e_pyserini, runpy; runpy.run_module('pyserini.index.lucene', run_name='__main__', alter_sys=True)",
               "--collection", "JsonCollection", "--input", str(collection), "--index", str(index_dir),
               "--generator", "DefaultLuceneDocumentGenerator", "--threads", str(threads), "--storeRaw"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pyserini.index.lucene failed ({result.returncode}):\n{result.stderr[-4000:]}")
    shutil.rmtree(collection)
    return count


def _build_faiss(retriever: RetrieverSpec, docs: Iterable, index_dir: Path, progress: tqdm,
                 num_docs: int | None = None, chunk_batches: int = 64) -> tuple[int, int]:
    """Encode in length-sorted chunks (less padding); ``index`` and ``docid`` share one order."""
    import faiss
    import torch

    from o1e_tevatron.families.debater.model import index_rows

    encoder = retriever.document_encoder()
    step_rows = retriever.rows_per_passage > 1  # a max-steps DEBATER index: M rows per passage
    index = None
    count = 0
    with open(index_dir / "docid", "w") as docids, torch.inference_mode():
        for chunk in _chunks(docs, retriever.batch_size * chunk_batches):
            chunk.sort(key=lambda doc: len(doc.text) + len(getattr(doc, "title", "")))
            for start in range(0, len(chunk), retriever.batch_size):
                batch = chunk[start:start + retriever.batch_size]
                titles = [getattr(doc, "title", "") for doc in batch]
                ids = [doc.doc_id for doc in batch]
                encode = encoder.encode_steps if step_rows else encoder.encode
                vectors = encode([doc.text for doc in batch], titles=titles if any(titles) else None,
                                 max_length=retriever.max_passage_length)
                if step_rows:
                    vectors, ids = index_rows(vectors, ids, retriever.debater_scoring)
                vectors = np.ascontiguousarray(vectors, dtype=np.float32)
                if index is None:
                    index = _new_index(retriever, (num_docs or 0) * retriever.rows_per_passage, vectors.shape[1])
                index.add(vectors)
                docids.writelines(doc_id + "\n" for doc_id in ids)
                count += len(batch)
                progress.update(len(batch))
    if index is None:
        raise ValueError("the corpus is empty")
    faiss.write_index(index, str(index_dir / "index"))
    return count, index.d


def _new_index(retriever: RetrieverSpec, num_vectors: int, dimension: int):
    """The flat index in the spec's storage dtype, its memory plan logged before anything is added."""
    dtype = storage_dtype(retriever.vector_dtype, num_vectors)
    logger.info("index memory: %s", memory_plan(num_vectors, dimension, dtype))
    return flat_index(dimension, dtype)


def _write_meta(index_dir: Path, retriever: RetrieverSpec, content_key: str, count: int, dimension: int | None,
                **extra) -> None:
    meta = {**retriever.index_key(), "fingerprint": content_key, "num_docs": count, **extra}
    if dimension is not None:
        meta["dimension"] = dimension
    (index_dir / INDEX_META).write_text(json.dumps(meta, indent=1))


def import_shards(retriever: RetrieverSpec, shard_paths: list[Path], index_dir: Path, content_key: str,
                  allow_pickle: bool = False) -> Path:
    """Turn encoded corpus shards (``.npz`` from ``o1e_tevatron.driver.encode``; Tevatron's ``(reps,
    lookup)`` pickles only with ``allow_pickle``) into the harness's cached index: one shard index
    directory per shard (a sharded index, searched shard-wise: never merged, one shard in memory at a
    time), in the spec's vector dtype. A shard whose record names another model than ``retriever``'s
    is refused; the whole index is written under a temporary name and renamed."""
    model = model_fingerprint(retriever.model)
    shard_paths = sorted(shard_paths)
    if not shard_paths:
        raise FileNotFoundError("no encoded shards given")
    with _sole_builder(index_dir) as partial:
        return _import_shards_into(partial, retriever, shard_paths, index_dir, content_key, model, allow_pickle)


def _import_shards_into(partial: Path, retriever: RetrieverSpec, shard_paths: list[Path], index_dir: Path,
                        content_key: str, model: str, allow_pickle: bool) -> Path:
    """:func:`import_shards`' work, in the builder's ``partial`` folder."""
    from o1e_tevatron.core.vectors import read_record, read_vectors

    check, dirs, dimension, dtype = DocidCheck("the shards"), [], None, None
    for number, path in enumerate(shard_paths):
        record = read_record(path)
        if record is None:
            logger.warning("%s has no o1e record: cannot check that %s encoded it", path, retriever.model)
        elif record.get("model") not in (None, model):
            raise ValueError(f"{path} was encoded by another model than {retriever.model} (its files differ from "
                             "the ones recorded with the shard): import shards of the retriever's model")
        reps, lookup = read_vectors(path, allow_pickle=allow_pickle)
        if dimension is None:
            dimension = reps.shape[1]  # shards are near-equal slices: the first one's size times their count
            dtype = storage_dtype(retriever.vector_dtype, len(reps) * len(shard_paths))
            logger.info("index memory: %s", memory_plan(len(reps) * len(shard_paths), dimension, dtype))
        elif reps.shape[1] != dimension:
            raise ValueError(f"{path} holds {reps.shape[1]}-d vectors, the shards before it {dimension}-d: "
                             "shards of one corpus come from one model")
        for docid in lookup:
            check(docid)
        dirs.append(partial / f"shard-{number:03d}")
        write_index_dir(dirs[-1], reps, lookup, dtype=dtype)
        del reps
    write_shards_file(partial, dirs)
    _write_meta(partial, retriever, content_key, len(check.seen), dimension, vector_dtype=dtype,
                shards=[str(p) for p in shard_paths])
    shutil.rmtree(index_dir, ignore_errors=True)
    partial.rename(index_dir)
    return index_dir


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def search(retriever: RetrieverSpec, index_dir: Path, queries: dict[str, str], k: int = 1000,
           threads: int = 2, batch_size: int = 64, query_encoder=None) -> dict[str, list[tuple[str, float]]]:
    """Search every query; returns ``{query_id: [(doc_id, score), ...]}`` best first. Dense retrievers
    use ``query_encoder`` (default: the spec's), so the caller can keep what it encoded."""
    if retriever.is_lucene:
        from pyserini.search.lucene import LuceneSearcher
        searcher = LuceneSearcher(str(index_dir))
    else:
        query_encoder = query_encoder or retriever.query_encoder()
        searcher = sharded_searcher_class()(str(index_dir), query_encoder)  # one index or a sharded one
        check_dimension(index_dir, searcher.index.d, query_encoder, next(iter(queries.values()), None), retriever)
    import torch

    from o1e_tevatron.families.debater.model import best_step_hits

    rows = retriever.rows_per_passage  # k * M rows of a max-steps index always hold k passages
    query_ids = list(queries)
    results = {}
    # Pyserini's batch_search calls faiss.omp_set_num_threads(threads), which sets torch's OpenMP pool too (one
    # libgomp): a job started with OMP_NUM_THREADS=1 went on encoding and generating with `threads` threads
    threads_before = torch.get_num_threads()
    try:
        with tqdm(total=len(query_ids), desc=f"search {retriever.spec}", unit="query") as progress, \
                torch.inference_mode():
            for start in range(0, len(query_ids), batch_size):
                ids = query_ids[start:start + batch_size]
                hits = searcher.batch_search([queries[q] for q in ids], ids, k=k * rows, threads=threads)
                if rows > 1:
                    hits = {q: best_step_hits(hits.get(q, []), k) for q in ids}
                results.update({q: [(hit.docid, float(hit.score)) for hit in hits.get(q, [])] for q in ids})
                progress.update(len(ids))
    finally:
        torch.set_num_threads(threads_before)
    return results


def check_dimension(index_dir: Path, index_dimension: int, query_encoder, probe: str | None,
                    retriever: RetrieverSpec) -> None:
    """The index's vectors and the query encoder's must have one dimension; faiss would only assert."""
    dimension = getattr(query_encoder, "dimension", None)
    if dimension is None and probe is not None:
        dimension = len(query_encoder.encode(probe))
    if dimension is not None and dimension != index_dimension:
        raise ValueError(f"{index_dir} holds {index_dimension}-d vectors but {retriever.spec} makes {dimension}-d "
                         "query vectors: the index was built with another model; delete it or search with that model")


def describe(retriever: RetrieverSpec) -> dict:
    return {**asdict(retriever), "model": retriever.model}
