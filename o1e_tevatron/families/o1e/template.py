"""THE text layout of O1 Embedder: special tokens and token-id sequences, shared by training and inference.

Sequences are assembled by concatenating token ids, never by formatting strings (a space next to a
special token would become a token of its own). Each part is truncated to its own maximum length
*before* assembly, so the special tokens always survive truncation. The one text step is the chat
layout's prompt, which the backbone's chat template writes as text and which is tokenized whole.

    thought-augmented query  [bos] <query> q </query> <thought> t </s> <emb>
    plain query              [bos] <query> q </query> <thought> <emb>
    passage                  [bos] [passage prefix] title text <emb>

The ``paper`` layout drops ``</query>`` (eq. 6 of the paper); ``authors`` (default) follows the
authors' code. The ``chat`` layout speaks the backbone's own chat template: the query part is the
teacher's prompt (:class:`~o1e_tevatron.families.o1e.prompts.TeacherPrompt`, without in-context
examples) as system + user turns, the thought is the assistant turn, and ``<emb>`` closes it:

    thought-augmented query  <chat: system, user(task [passages] query)> assistant: t <emb>
    plain query              <chat: system, user(task [passages] query)> assistant: <emb>

so an instruction-tuned model writes on-topic thoughts from step 0. ``<emb>`` takes the place of the
turn's end (``</s>``, SmolLM2's ``<|im_end|>``), and is labelled ``</s>`` so that the model still
learns to stop: after an end of turn an instruct model's state is nearly the same for every query
(SmolLM2, 16 queries: mean cosine 0.988 between their ``<emb>`` vectors, 0.85 in the authors' layout),
and 29 contrastive steps did not move it (recipes/mini, dev). ``grounding_passages`` K > 0
(chat only) puts the query's top-K retrieved passages, each cut to ``grounding_max_words`` words,
into the user turn before the query. With ``append_emb=False`` (pooling ablations: last token,
mean) no ``<emb>`` is appended.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable, Optional, Sequence

from ..base import IGNORE_INDEX, TokenTemplate, add_family_tokens
from .prompts import TeacherPrompt, cut_words

QUERY_TOKEN = "<query>"
QUERY_END_TOKEN = "</query>"
THOUGHT_TOKEN = "<thought>"
EMB_TOKEN = "<emb>"
SPECIAL_TOKENS = (QUERY_TOKEN, QUERY_END_TOKEN, THOUGHT_TOKEN, EMB_TOKEN)
LAYOUTS = ("authors", "paper", "chat")
# placeholders the chat template is rendered around: its text is split there and the parts tokenized
_QUERY_SLOT, _PASSAGES_SLOT = "\x00o1e-query\x00", "\x00o1e-passages\x00"


@dataclass
class TemplateConfig:
    """Everything that fixes the layout; saved with every checkpoint so inference matches training."""

    layout: str = "authors"
    query_max_len: int = 32
    thought_max_len: int = 256
    passage_max_len: int = 192
    passage_prefix: str = ""
    append_emb: bool = True
    #: chat layout: the TeacherPrompt fields its query prompt is rendered from (saved resolved, so a
    #: later change of o1e's default prompt does not change an old checkpoint's layout)
    prompt: Optional[dict] = None
    #: chat layout: K retrieved passages shown before the query (0: none), each cut to this many words
    grounding_passages: int = 0
    grounding_max_words: int = 48

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        for name in ("query_max_len", "thought_max_len", "passage_max_len", "grounding_max_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grounding_passages < 0:
            raise ValueError(f"grounding_passages must be >= 0, got {self.grounding_passages}")
        if self.grounding_passages and self.layout != "chat":
            raise ValueError("grounding passages go into the chat layout's prompt: use layout 'chat'")
        if self.layout == "chat":
            self.prompt = asdict(TeacherPrompt(**(self.prompt or {})))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TemplateConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def add_special_tokens(tokenizer, model=None, tokens: Sequence[str] = SPECIAL_TOKENS) -> list[int]:
    """O1E's special tokens (or ``tokens``) added to the tokenizer and ``model``
    (:func:`~o1e_tevatron.families.base.add_family_tokens`); their ids."""
    return add_family_tokens(tokenizer, model, tokens)


class Template(TokenTemplate):
    """Token-id assembly for one tokenizer and one :class:`TemplateConfig`.

    Query texts become ids through :meth:`tokenize_queries` (in the chat layout: the user turn's
    task, grounding passages and query, each cut before assembly); :meth:`query_prefix` wraps them.
    """

    def __init__(self, tokenizer, config: TemplateConfig | None = None):
        super().__init__(tokenizer)
        self.config = config or TemplateConfig()
        vocab = tokenizer.get_vocab()
        absent = [t for t in SPECIAL_TOKENS if t not in vocab]
        if absent:
            raise ValueError(f"tokenizer lacks {absent}: call o1e_tevatron.template.add_special_tokens first")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; O1E ends every thought with it")
        self.query_id, self.query_end_id, self.thought_id, self.emb_id = (vocab[t] for t in SPECIAL_TOKENS)
        self.emb = [self.emb_id] if self.config.append_emb else []
        self.passage_prefix_ids = self.tokenize(self.config.passage_prefix) if self.config.passage_prefix else []
        #: search time: query text -> its grounding passages (e.g. BM25 top-K from a Lucene index)
        self.grounder: Callable[[str], Sequence[str]] | None = None
        if self.config.layout == "chat":
            self.prompt = TeacherPrompt(**self.config.prompt)
            self.chat_prompt = self._render_chat_template()

    def _render_chat_template(self) -> str:
        """The system and user turns and the assistant's header, as the tokenizer's own chat template
        writes them, with placeholders where the passages block and the query go."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("template layout 'chat' needs a tokenizer with a chat template (an instruct model)")
        user = self.prompt.user_template.format(task=self.prompt.task, examples="", passages=_PASSAGES_SLOT,
                                                query=_QUERY_SLOT)
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "system", "content": self.prompt.system}, {"role": "user", "content": user}],
            tokenize=False, add_generation_prompt=True)
        if rendered.count(_QUERY_SLOT) != 1 or rendered.count(_PASSAGES_SLOT) != 1:
            raise ValueError("the prompt's user_template must hold {passages} and {query} once each for the chat layout")
        answered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": _QUERY_SLOT}], tokenize=False)
        if f"{_QUERY_SLOT}{self.tokenizer.eos_token}" not in answered:
            raise ValueError(f"the chat layout ends the thought with eos ({self.tokenizer.eos_token!r}), but this chat "
                             "template closes an assistant turn with another token: not supported yet")
        return rendered

    # --- queries -------------------------------------------------------------------------------
    def tokenize_queries(self, queries: Sequence[str],
                         passages: Sequence[Sequence[str]] | None = None) -> list[list[int]]:
        """Query texts -> the ids ``query_prefix`` / ``plain_query`` / ``thought_query`` take.

        The chat layout's ids are its whole prompt: the query (cut to ``query_max_len`` tokens) and the
        grounding passages (the first ``grounding_passages``, each cut to ``grounding_max_words``) are
        written into the chat template's text, which is tokenized whole, as the teacher's server does
        (parts tokenized apart would differ where a merge crosses a seam, e.g. SmolLM2's ``\n\n``).
        Passages come with the training rows, else from the ``grounder``."""
        query_ids = self.tokenize_batch(queries)
        if self.config.layout != "chat":
            if passages is not None:
                raise ValueError(f"grounding passages need the chat layout, not {self.config.layout!r}")
            return query_ids
        k = self.config.grounding_passages
        if k and passages is None:
            if self.grounder is None:
                raise ValueError(f"this checkpoint thinks with {k} retrieved passages per query: give a "
                                 "Lucene index of the corpus (--o1e-grounding-index / --grounding-index)")
            passages = [self.grounder(q) for q in queries]
        prompts = []
        for i, (query, ids) in enumerate(zip(queries, query_ids)):
            if len(ids) > self.config.query_max_len:
                query = self.tokenizer.decode(ids[: self.config.query_max_len])
            shown = [cut_words(p, self.config.grounding_max_words) for p in (passages[i] or [])[:k]] if k else []
            prompts.append(self.chat_prompt.replace(_PASSAGES_SLOT, self.prompt.passages_block(shown))
                           .replace(_QUERY_SLOT, query))
        return self.tokenize_batch(prompts)

    def query_prefix(self, query_ids: Sequence[int]) -> list[int]:
        """The prompt from which thoughts are generated: ``[bos] <query> q </query> <thought>``, or in the
        chat layout the prompt ``tokenize_queries`` made (system and user turns, the assistant's header)."""
        if self.config.layout == "chat":
            return list(query_ids)
        end = [self.query_end_id] if self.config.layout == "authors" else []
        return self.bos + [self.query_id] + list(query_ids[: self.config.query_max_len]) + end + [self.thought_id]

    @property
    def plain_suffix(self) -> list[int]:
        """What follows ``query_prefix`` in fast mode: ``<emb>`` (in the chat layout, an empty assistant
        turn that ``<emb>`` closes)."""
        return self.emb

    @property
    def emb_closes_turn(self) -> bool:
        """Chat layout: ``<emb>`` stands where the thought's ``</s>`` would (see the module docstring)."""
        return self.config.layout == "chat" and self.config.append_emb

    def plain_query(self, query_ids: Sequence[int]) -> list[int]:
        return self.query_prefix(query_ids) + self.plain_suffix

    def thought_query(self, query_ids: Sequence[int], thought_ids: Sequence[int]) -> tuple[list[int], int, int]:
        """The thought-augmented query and the [start, end) span that the generation loss learns
        (:meth:`generation_labels`): the thought tokens and the closing ``</s>`` (in the chat layout the
        ``<emb>`` that stands in its place, labelled ``</s>``).
        """
        prefix = self.query_prefix(query_ids)
        thought = list(thought_ids[: self.config.thought_max_len])
        if self.emb_closes_turn:
            sequence = prefix + thought + self.emb
            return sequence, len(prefix), len(sequence)
        thought += [self.eos_id]
        return prefix + thought + self.emb, len(prefix), len(prefix) + len(thought)

    def generation_labels(self, input_ids: Sequence[int], start: int, end: int) -> list[int]:
        """Labels of ``thought_query``'s sequence: its tokens inside [start, end), IGNORE_INDEX elsewhere;
        in the chat layout the closing ``<emb>`` is labelled ``</s>``, the end of turn it replaces."""
        labels = generation_labels(input_ids, start, end)
        if self.emb_closes_turn and end > start:
            labels[end - 1] = self.eos_id
        return labels

    @property
    def thought_keeps_eos(self) -> bool:
        """Whether a generated ``</s>`` stays in the embedded sequence (not in the chat layout, where
        ``<emb>`` takes its place)."""
        return not self.emb_closes_turn

    def close_thought(self, generated_ids: Sequence[int]) -> list[int]:
        """Ids to feed after a generated thought to reach ``<emb>``: ``</s> <emb>``, or only ``<emb>``
        when the generation already ended with ``</s>`` (the chat layout: ``<emb>``, and the caller
        masks a generated ``</s>``). ``generated_ids`` must be free of padding."""
        if self.emb_closes_turn:
            return list(self.emb)
        ended = len(generated_ids) > 0 and generated_ids[-1] == self.eos_id
        return ([] if ended else [self.eos_id]) + self.emb

    @property
    def not_in_thoughts(self) -> list[int]:
        """Token ids a generated thought must never contain: the layout's own markers (and a bos that is
        not the eos). A freshly added row, tied to the LM head, can otherwise win the next-token
        softmax and fill a thought with ``<query><query>...`` (seen on SmolLM2 after 24 LoRA steps)."""
        markers = [self.query_id, self.query_end_id, self.thought_id, self.emb_id]
        return markers + [b for b in self.bos if b != self.eos_id]

    def strip_thought(self, generated_ids: Sequence[int]) -> list[int]:
        """A generated thought up to (without) its first eos, cut to ``thought_max_len``."""
        ids = list(generated_ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return ids[: self.config.thought_max_len]

    # --- passages ------------------------------------------------------------------------------
    def passage(self, passage_ids: Sequence[int]) -> list[int]:
        return self.bos + self.passage_prefix_ids + list(passage_ids[: self.config.passage_max_len]) + self.emb


def generation_labels(input_ids: Sequence[int], start: int, end: int) -> list[int]:
    """Hugging Face style labels: the token ids inside [start, end), IGNORE_INDEX elsewhere."""
    return [tok if start <= i < end else IGNORE_INDEX for i, tok in enumerate(input_ids)]
