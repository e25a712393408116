"""O1 Embedder encoders on Pyserini's interfaces.

``O1EQueryEncoder`` thinks before it embeds: in ``think`` mode (default) it samples k thoughts per
query and averages the L2-normalised vectors of (q, t_i) (eq. 11; optionally with the plain-query
vector as one more member, and renormalised); in ``fast`` mode it embeds the plain query (the paper's
"w/o T"). ``O1EDocumentEncoder`` embeds passages at ``<emb>``.

Both take the keyword arguments Pyserini's CLIs pass to every encoder (``encoder_dir`` /
``model_name``, ``device``, ``tokenizer_name``, ``fp16``, ...), so ``o1e_pyserini.encoders.registry`` can put
them into Pyserini's class maps and ``python -m pyserini.search.faiss`` / ``pyserini.encode``
construct them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from pyserini.encode import QueryEncoder

from o1e_tevatron.core.fingerprint import O1E_CACHE, model_fingerprint
from o1e_tevatron.core.redact import json_line
from o1e_tevatron.core.vectors import PICKLE_WARNING, read_vectors, write_vectors
from o1e_tevatron.core.encoding import encode_sequences
from o1e_tevatron.families.o1e.model import O1EModel

from ..thinking.grounding import LuceneGrounder
from .base import FamilyDocumentEncoder, O1EInputError, load_family_model, report_ignored
from ..thinking.cache import ThoughtCache
from ..thinking.backends import (HFThoughts, OpenAIThoughts, RecordedThoughts, ThoughtSettings, TokenizedThoughts,
                       VLLMThoughts, average_thought_vectors, prefill_plain_query)

logger = logging.getLogger(__name__)

MODES = ("think", "fast", "adaptive")  # adaptive: fast until told to think (``think_now``; o1e_pyserini.thinking.adaptive)
THOUGHT_BACKENDS = ("hf", "vllm", "openai", "file")
QUERY_VECTORS = ("thoughts", "thoughts+query")  # eq. 11's mean; the same with the plain query as a member
ENCODED_QUERIES_NAME = "embedding.npz"  # o1e's pre-encoded queries: texts + vectors, no pickle
PICKLED_QUERIES_NAME = "embedding.pkl"  # Pyserini's own format: a pandas pickle (read only on opt-in)
THOUGHTS_NAME = "thoughts.jsonl"


@dataclass
class EncodedQueries:
    """What a query encoder produced: one row per query, in encoding order."""

    texts: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    thoughts: list[list[str]] = field(default_factory=list)  # empty lists in fast mode
    entropy: list[float | None] = field(default_factory=list)  # next-token entropy at <thought> (None: not computed)
    generated_tokens: list[int] = field(default_factory=list)  # over the query's k thoughts (0 in fast mode)

    def add(self, texts: Sequence[str], vectors: np.ndarray, thoughts: Sequence[list[str]],
            entropy: Sequence[float | None] | None = None, generated_tokens: Sequence[int] | None = None) -> None:
        """One row per query (``entropy`` and ``generated_tokens`` unknown: None and 0)."""
        self.texts.extend(texts)
        self.vectors.extend(vectors)
        self.thoughts.extend(thoughts)
        self.entropy.extend(entropy if entropy is not None else [None] * len(texts))
        self.generated_tokens.extend(generated_tokens if generated_tokens is not None else [0] * len(texts))

    def save(self, folder: str | Path, ids_by_text: Mapping[str, Sequence[str]] | None = None,
             decisions: Mapping[str, dict] | None = None) -> Path:
        """``embedding.npz`` (query texts and vectors; ``--encoded-queries`` of ``o1e_pyserini.search.faiss``)
        and ``thoughts.jsonl`` ({query_id, text, thoughts, ...}), so a run can be re-scored without generating;
        ``decisions``: adaptive thinking's per query id, recorded on its row."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        latest = {text: i for i, text in enumerate(self.texts)}  # a query encoded twice keeps its last vector
        rows = sorted(latest.values())
        write_vectors(out / ENCODED_QUERIES_NAME, np.stack([self.vectors[i] for i in rows]) if rows
                      else np.empty((0, 0), dtype=np.float32), [self.texts[i] for i in rows])
        with open(out / THOUGHTS_NAME, "w", encoding="utf-8") as f:
            for i in rows:
                text = self.texts[i]
                for query_id in (ids_by_text or {}).get(text, [None]):
                    f.write(json_line({"query_id": query_id, "text": text, "thoughts": self.thoughts[i],
                                       "generated_tokens": self.generated_tokens[i], "entropy": self.entropy[i],
                                       **({"adaptive": decisions[query_id]} if decisions and query_id in decisions
                                          else {})}))
        return out


def load_encoded_queries(folder: str | Path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """{query text: vector} of a pre-encoded queries folder: o1e's ``embedding.npz``, or Pyserini's
    ``embedding.pkl`` only with ``allow_pickle`` (a pickle runs any code it carries)."""
    folder = Path(folder)
    if (folder / ENCODED_QUERIES_NAME).is_file():
        vectors, texts = read_vectors(folder / ENCODED_QUERIES_NAME)
        return dict(zip(texts, vectors))
    pickled = folder / PICKLED_QUERIES_NAME
    if not pickled.is_file():
        raise O1EInputError(f"{folder}: no {ENCODED_QUERIES_NAME} (o1e writes one with --o1e-save-queries)")
    if not allow_pickle:
        raise O1EInputError(f"{pickled} is a pickle, and loading a pickle runs any code it carries: pass "
                            "--o1e-allow-pickle only if you made it yourself")
    logger.warning(PICKLE_WARNING, pickled)
    frame = pd.read_pickle(pickled)  # opt-in: the caller trusts this file
    return dict(zip(frame["text"].tolist(), frame["embedding"].tolist()))


def ids_by_text(topics: Mapping[str, str]) -> dict[str, list[str]]:
    """Each query text with the ids that carry it (thoughts.jsonl rows are written per id)."""
    by_text: dict[str, list[str]] = {}
    for query_id, text in topics.items():
        by_text.setdefault(text, []).append(query_id)
    return by_text


def check_queries(queries: Sequence[str], ids: Optional[Sequence[str]] = None) -> None:
    """Refuse empty or whitespace-only queries, naming them by id (or position when ids are unknown)."""
    bad = [str(ids[i]) if ids is not None else f"#{i}" for i, q in enumerate(queries)
           if not isinstance(q, str) or not q.strip()]
    if bad:
        what = "query ids" if ids is not None else "queries at positions"
        raise O1EInputError(f"empty or whitespace-only query text for {what} {', '.join(bad[:10])}"
                            + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""))


def merged_for_vllm(model: O1EModel, checkpoint: str, base: str | None = None) -> str:
    """The checkpoint as vLLM loads it: an adapter (LoRA + trained token rows, which vLLM's LoRA does not
    cover) is merged once into ``$O1E_CACHE/merged/``, under its content's digest (never a stale merge)."""
    if not (Path(checkpoint) / "adapter_config.json").exists():  # (loaded for search, an adapter is merged already)
        return checkpoint
    key = hashlib.sha256(f"{model_fingerprint(checkpoint)}\n{base and model_fingerprint(base)}".encode()).hexdigest()
    target = O1E_CACHE / "merged" / key[:24]
    if not (target / "o1e_config.json").exists():
        logger.info("merging the adapter %s for vLLM into %s", checkpoint, target)
        type(model).load(checkpoint, base_model_name_or_path=base, dtype="float32").save(target, merge=True)  # merging folds a copy in place
    return str(target)


class O1EQueryEncoder(QueryEncoder):
    """Query vectors from an o1e checkpoint, thinking first (``mode='think'``) or not (``'fast'``).

    ``fused=True`` embeds (q, t_i) from the generation's own KV cache (HF backend only);
    ``fused=False`` re-encodes q + t_i from token ids. ``thoughts`` picks where thoughts come from:
    ``hf`` (this model), ``vllm``, ``openai`` (``thought_server`` + ``thought_model``: a separate
    generator) or ``file`` (``thoughts_file``: a ``thoughts.jsonl`` written earlier).
    ``generate_kwargs`` go to Hugging Face ``generate`` (e.g. ``sequence_bias``). ``query_vector``:
    ``thoughts`` (eq. 11, default) or ``thoughts+query`` (the plain-query vector averaged in as one more
    member; with the HF backend it comes free from the generation's prefill); ``renormalize`` scales
    the mean to unit length. ``thought_cache``: a folder (``o1e_pyserini.thinking.cache``) where the HF and
    vLLM backends' reproducible thoughts (seeded or greedy) are kept and reused, re-encoded instead of
    generated (each backend under its own keys).
    """

    def __init__(self, encoder_dir: str, mode: str = "think", num_thoughts: int = 3, temperature: float = 0.1,
                 top_p: float = 0.9, max_new_tokens: int = 128, seed: Optional[int] = None, fused: bool = True,
                 thoughts: str = "hf", thought_server: Optional[str] = None, thought_model: Optional[str] = None,
                 thoughts_file: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                 fp16: bool = False, batch_size: int = 16, base_model_name_or_path: Optional[str] = None,
                 tokenizer_name: Optional[str] = None, prefix: Optional[str] = None,
                 generate_kwargs: Optional[dict] = None, query_vector: str = "thoughts", renormalize: bool = False,
                 thought_cache: Optional[str] = None, trust_remote_code: bool = False,
                 grounding_index: Optional[str] = None, grounding_passages: int = 3, grounding_max_words: int = 48,
                 vllm_options: Optional[dict] = None, **pyserini_options):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if thoughts not in THOUGHT_BACKENDS:
            raise ValueError(f"thoughts must be one of {THOUGHT_BACKENDS}, not {thoughts!r}")
        if query_vector not in QUERY_VECTORS:
            raise ValueError(f"query_vector must be one of {QUERY_VECTORS}, not {query_vector!r}")
        if prefix:
            raise ValueError("o1e queries follow the checkpoint's template; a query prefix is not supported")
        if tokenizer_name and Path(tokenizer_name).resolve() != Path(encoder_dir).resolve():
            logger.warning("ignoring tokenizer %s: an o1e checkpoint carries its own tokenizer", tokenizer_name)
        report_ignored(type(self).__name__, pyserini_options)
        self.has_model = True
        self.model = load_family_model(O1EModel, encoder_dir, device, dtype, fp16, base_model_name_or_path,
                                       trust_remote_code)
        self.template = self.model.template
        self.trust_remote_code = trust_remote_code
        self.dtype = "float16" if fp16 else dtype
        self.vllm_options, self.base_model = dict(vllm_options or {}), base_model_name_or_path
        if self.vllm_options and thoughts != "vllm":
            raise ValueError("vllm_options (--o1e-vllm-arg, --vllm-arg) apply to thoughts='vllm' only")
        self.grounder = self._make_grounder(grounding_index, thoughts, grounding_passages)
        # a grounded checkpoint shows its passages cut as it was trained; a separate generator then sees the same
        self.grounding_max_words = (self.template.config.grounding_max_words if self.template.config.grounding_passages
                                    else grounding_max_words)
        self.mode = mode
        self.batch_size = batch_size
        self.settings = ThoughtSettings(num_thoughts, temperature, top_p, max_new_tokens, seed)
        self.fused = fused and thoughts == "hf"
        self.include_query, self.renormalize = query_vector == "thoughts+query", renormalize
        self.backend = None
        self.think_now = mode == "think"
        if mode != "fast":
            self.backend = self._make_backend(thoughts, encoder_dir, thought_server, thought_model, thoughts_file,
                                              generate_kwargs or {})
        self.cache = None
        if thought_cache and thoughts in ("hf", "vllm") and mode != "fast" and (seed is not None or temperature == 0):
            context = {
                "model": model_fingerprint(encoder_dir), "base": base_model_name_or_path and model_fingerprint(
                    base_model_name_or_path), "template": self.template.config.to_dict(),
                "sampling": {"num_thoughts": num_thoughts, "temperature": temperature, "top_p": top_p,
                             "max_new_tokens": self.backend.max_new_tokens, "generate_kwargs": generate_kwargs},
                "seed": seed, "dtype": "float16" if fp16 else dtype, "device": torch.device(device).type}
            if thoughts == "vllm":  # another sampler: its own entries, per vLLM version and engine settings
                from vllm import __version__ as vllm_version
                context["backend"] = {"vllm": vllm_version, "engine": self.vllm_options}
            self.cache = ThoughtCache(thought_cache, context)
        self.cache_hits = 0
        self.empty_thoughts = 0
        self.prompt_tokens = 0  # of the thinking prompts (query_prefix), for the cost columns
        self.encoded = EncodedQueries()
        self.seconds = {"fast": 0.0, "think": 0.0}  # query encoding time, without and with thinking

    def _make_grounder(self, index: Optional[str], thoughts: str, passages: int) -> Optional[LuceneGrounder]:
        """BM25 passages for the prompt: the checkpoint's own (a chat layout trained with grounding, in
        every mode), or a separate generator's prompt (``thoughts='openai'``, ``passages`` each)."""
        k = self.template.config.grounding_passages
        if not index:
            if k:
                raise O1EInputError(f"this checkpoint thinks from {k} BM25 passages per query: give the Lucene "
                                 "index of the corpus (grounding_index; --o1e-grounding-index, --grounding-index)")
            return None
        if not k and thoughts != "openai":
            raise O1EInputError("grounding_index: this checkpoint was not trained with grounding passages "
                             "(grounding_passages 0); only a separate generator (thoughts='openai') can use them")
        try:
            grounder = LuceneGrounder(index, k or passages)
        except (FileNotFoundError, ValueError) as e:
            raise O1EInputError(str(e)) from None
        self.template.grounder = grounder if k else None
        logger.info("grounding: the top-%d BM25 passages of each query from %s", grounder.k, index)
        return grounder

    def _cache_key(self, query: str) -> str:
        """A grounded prompt's thoughts depend on its passages too: they are part of the key."""
        if self.template.grounder is None:
            return query
        return json.dumps([query, self.template.grounder(query)], ensure_ascii=False)

    def _make_backend(self, name, encoder_dir, server, model, path, generate_kwargs):
        if name == "hf":
            return HFThoughts(self.model, self.settings, **generate_kwargs)
        if name == "vllm":
            options = {"trust_remote_code": self.trust_remote_code, "dtype": self.dtype, **self.vllm_options}
            return VLLMThoughts(merged_for_vllm(self.model, encoder_dir, self.base_model), self.template, self.settings, **options)
        if name == "openai":
            if not (server and model):
                raise ValueError("thoughts='openai' needs thought_server (base URL) and thought_model")
            return TokenizedThoughts(OpenAIThoughts(server, model, self.settings, grounder=self.grounder,
                                                    grounding_max_words=self.grounding_max_words),
                                     self.template, self.settings)
        if not path:
            raise ValueError("thoughts='file' needs thoughts_file (a thoughts.jsonl)")
        return TokenizedThoughts(RecordedThoughts(path), self.template, self.settings)

    @property
    def dimension(self) -> int:
        return self.model.causal_lm.config.hidden_size

    def encode(self, query: str, **kwargs) -> np.ndarray:
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"cannot encode an empty or whitespace-only query: {query!r}")
        return self.encode_batch([query])[0]

    def encode_batch(self, queries: Sequence[str], ids: Optional[Sequence[str]] = None, **kwargs) -> np.ndarray:
        """(n, d) float32, ``batch_size`` queries at a time on the device."""
        queries = list(queries)
        check_queries(queries, ids)
        if not queries:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.concatenate([self._encode_chunk(queries[i:i + self.batch_size])
                               for i in range(0, len(queries), self.batch_size)])

    def encode_topics(self, topics: Mapping[str, str]) -> tuple[list[str], np.ndarray]:
        """Query ids and their vectors for a {query id: text} mapping (Pyserini's topics, flattened)."""
        ids = [str(i) for i in topics]
        return ids, self.encode_batch([topics[i] for i in topics], ids=ids)

    def _encode_chunk(self, queries: list[str]) -> np.ndarray:
        started = time.perf_counter()
        t = self.template
        if t.grounder is not None:
            t.grounder.prefetch(queries)  # one batched BM25 search for the chunk
        self.prompt_tokens += sum(len(t.query_prefix(q)) for q in t.tokenize_queries(queries))
        vectors = self._think_chunk(queries) if self.think_now else self._fast_chunk(queries)
        self.seconds["think" if self.think_now else "fast"] += time.perf_counter() - started
        return vectors

    def _fast_chunk(self, queries: list[str]) -> np.ndarray:
        plain = prefill_plain_query(self.model, queries)
        return self._record(queries, plain.vectors.float().cpu().numpy(), [[] for _ in queries], plain.entropy.tolist(),
                            [0] * len(queries))

    def _think_chunk(self, queries: list[str]) -> np.ndarray:
        if self.template.grounder is not None:
            self.template.grounder.prefetch(queries)
        known = {}
        if self.cache is not None:
            keys = {q: self._cache_key(q) for q in queries}
            by_key = self.cache.get(list(keys.values()))
            known = {q: by_key[key] for q, key in keys.items() if key in by_key}
        fresh = list(dict.fromkeys(q for q in queries if q not in known))
        results = {}  # query -> (thought ids, (k, d) vectors, tokens generated, plain vector, entropy)
        if fresh:
            results.update(self._think_fresh(fresh))
            if self.cache is not None:
                self.cache.put({keys[q]: results[q][0] for q in fresh})
        if known:
            cached = list(known)
            plain = prefill_plain_query(self.model, cached)
            per_thought = self._reencode(cached, [known[q] for q in cached])
            results.update({q: (known[q], per_thought[i], 0, plain.vectors[i], plain.entropy[i].item())
                            for i, q in enumerate(cached)})
            self.cache_hits += sum(q in known for q in queries)
        thought_ids, per_thought, generated, plain_vectors, entropy = zip(*(results[q] for q in queries))
        if self.include_query and any(v is None for v in plain_vectors):
            plain = prefill_plain_query(self.model, queries)
            plain_vectors, entropy = plain.vectors, plain.entropy.tolist()
        vectors = average_thought_vectors(per_thought, torch.stack(list(plain_vectors)) if self.include_query else None,
                                          self.renormalize).cpu().numpy()
        self._count_empty(queries, thought_ids)
        thought_texts = [self.template.tokenizer.batch_decode(ts) for ts in thought_ids]
        return self._record(queries, vectors, thought_texts, list(entropy), list(generated))

    def _think_fresh(self, queries: list[str]) -> dict:
        """Thoughts generated now: {query: (thought ids, (k, d) vectors, tokens generated, plain vector, entropy)}."""
        if self.fused:
            thinking = self.backend.think_embed_and_plain(queries)
            return {q: (thinking.thoughts[i], thinking.vectors[i], thinking.generated_tokens[i],
                        thinking.plain_vectors[i], thinking.entropy[i].item()) for i, q in enumerate(queries)}
        thought_ids = self.backend.think(queries)
        per_thought = self._reencode(queries, thought_ids)
        return {q: (ids, per_thought[i], sum(len(th) for th in ids), None, None)
                for i, (q, ids) in enumerate(zip(queries, thought_ids))}

    def _record(self, queries, vectors: np.ndarray, thought_texts, entropy, generated) -> np.ndarray:
        vectors = vectors.astype(np.float32, copy=False)
        self.encoded.add(queries, vectors, thought_texts, entropy, generated)
        return vectors

    def _reencode(self, queries: list[str], thought_ids) -> list[torch.Tensor]:
        """One (k_i, d) tensor per query: a thoughts file may hold a different number per query."""
        counts = [len(ths) for ths in thought_ids]
        if 0 in counts:
            raise O1EInputError(f"no thoughts for the query {queries[counts.index(0)]!r:.80}: thought-augmented "
                                "vectors need at least one")
        t = self.template
        sequences = [t.thought_query(q, th)[0] for q, ths in zip(t.tokenize_queries(queries), thought_ids) for th in ths]
        vectors = encode_sequences(self.model, sequences, self.batch_size * max(counts), query=True)
        return list(torch.from_numpy(vectors).split(counts))

    def _count_empty(self, queries: list[str], thought_ids) -> None:
        empty = sum(len(t) == 0 for ts in thought_ids for t in ts)
        if empty:
            self.empty_thoughts += empty
            logger.warning("%d of %d thoughts came out empty (embedded as q + </s> <emb>); %d so far",
                           empty, sum(map(len, thought_ids)), self.empty_thoughts)


class O1EDocumentEncoder(FamilyDocumentEncoder):
    """Passage vectors at ``<emb>``: ``[bos] title text <emb>``, truncated as the checkpoint says."""

    family = O1EModel

    def encode(self, texts: Sequence[str], titles: Optional[Sequence[str]] = None, **kwargs) -> np.ndarray:
        """(n, d) float32."""
        return self.passage_vectors(texts, titles)
