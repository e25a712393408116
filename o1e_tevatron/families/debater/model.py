"""DEBATER (arXiv 2502.12974): the passage thinks. A passage is followed by a prompt and M step tokens;
the last-layer hidden state at each step token is one view of it (Chain-of-Deliberation), so a
passage has M unit vectors (B, M, d). A query is ``{instruction} {query}</s>``, pooled at ``</s>``.

Training scores a passage by its best step (S_max) and distils S_max into the last step
(:class:`~o1e_tevatron.loss.MaxStepSelfDistillationLoss`); search uses the last step's vector (one
per passage), or the best of the M steps (``max-steps``, the paper's ablation).

Fixed here, unlike the release: step tokens the tokenizer lacks are added and their embedding rows
train (LoRA's trainable tokens, as O1E's special tokens); the passage is truncated before the prompt
and the steps are appended, so they survive any passage length; the loss runs inside the wrapped
module's forward, so DDP synchronises gradients.

    passage  [bos] passage[:passage_max_len] step_prompt <step_1> ... <step_M>
    query    [bos] instruction query[:query_max_len] </s>      (or a query token of its own: query_token)

The release's own checkpoints (llm2vec layout, ``llm2vec_config.json``) load with the release's text
(:meth:`DebaterConfig.from_release`): the same ids for every passage within its length limit.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...core.tensors import last_positions
from ...objective import Objective
from ..base import FamilyConfig, FamilyModel, TokenTemplate, add_family_tokens, family_output
from .loss import MaxStepSelfDistillationLoss

logger = logging.getLogger(__name__)

DEFAULT_NUM_STEPS = 8
DEFAULT_STEP_PROMPT = "Use eight words to represent the above text in multiple aspects: "
LLM2VEC_CONFIG = "llm2vec_config.json"  # the settings DEBATER's release (the authors' llm2vec fork) saves
RELEASE_STEP_PROMPT = " " + DEFAULT_STEP_PROMPT  # the release writes "{passage} Use eight words ...: <steps>"
SCORINGS = ("last", "max-steps")


def default_step_tokens(num_steps: int) -> list[str]:
    """MiniCPM's reserved tokens, as in the release (``<reserved_12>`` ...); added where absent."""
    return [f"<reserved_{12 + k}>" for k in range(num_steps)]


@dataclass
class DebaterConfig(FamilyConfig):
    """What a DEBATER checkpoint carries: step layout, score scale, query instruction and lengths."""

    family = "debater"
    num_steps: int = DEFAULT_NUM_STEPS
    step_prompt: str = DEFAULT_STEP_PROMPT
    step_tokens: Optional[list] = None
    scale: float = 30.0
    query_instruction: str = ""
    #: the token that ends every query, where it is pooled: "" = the tokenizer's eos (DEBATER's ``</s>``).
    #: A chat model's eos closes a turn (SmolLM2's ``<|im_end|>``), where every query looks alike: such a
    #: model gets a token of its own, added and trained like the step tokens.
    query_token: str = ""
    query_max_len: int = 32
    passage_max_len: int = 192

    def __post_init__(self):
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        self.step_tokens = list(self.step_tokens or default_step_tokens(self.num_steps))
        if len(self.step_tokens) != self.num_steps or len(set(self.step_tokens)) != self.num_steps:
            raise ValueError(f"need {self.num_steps} distinct step tokens, got {self.step_tokens}")
        if self.query_token in self.step_tokens:
            raise ValueError(f"the query token {self.query_token!r} is also a step token")
        for name in ("query_max_len", "passage_max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def tokens(self) -> list[str]:
        """The tokens this layout adds where the tokenizer lacks them: the steps, and the query token."""
        return self.step_tokens + ([self.query_token] if self.query_token else [])

    @classmethod
    def from_release(cls, folder: Path) -> "DebaterConfig":
        """DEBATER's release (``llm2vec_config.json``): its passage prompt and M=8 step tokens, and its
        ``doc_max_length``, which llm2vec applies to every text (queries too), as both lengths. Unlike the
        release, the passage is cut before the prompt (so long passages keep their steps); shorter ones
        get the release's ids. A folder without that file gets the defaults."""
        path = folder / LLM2VEC_CONFIG
        if not path.is_file():
            return cls()
        settings = json.loads(path.read_text())
        if settings.get("pooling_mode") != "M_token":
            raise ValueError(f"{path}: pooling_mode {settings.get('pooling_mode')!r}, not DEBATER's 'M_token': "
                             "o1e loads DEBATER's llm2vec checkpoints, not other llm2vec models")
        length = settings.get("doc_max_length")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ValueError(f"{path}: doc_max_length must be a positive integer, got {length!r}")
        return cls(step_prompt=RELEASE_STEP_PROMPT, query_max_len=length, passage_max_len=length)


class DebaterTemplate(TokenTemplate):
    """Token-id assembly of DEBATER's queries and passages (ids concatenated, never strings)."""

    def __init__(self, tokenizer, config: DebaterConfig):
        super().__init__(tokenizer)
        self.config = config
        vocab = tokenizer.get_vocab()
        absent = [t for t in config.tokens() if t not in vocab]
        if absent:
            raise ValueError(f"tokenizer lacks the tokens {absent}: build or load the model through DebaterModel")
        if self.eos_id is None and not config.query_token:
            raise ValueError("the tokenizer has no eos token; DEBATER ends every query with it (or give a query token)")
        self.step_ids = [vocab[t] for t in config.step_tokens]
        self.query_end_id = vocab[config.query_token] if config.query_token else self.eos_id
        self.prompt_ids = self.tokenize(config.step_prompt) if config.step_prompt else []
        self.instruction_ids = self.tokenize(config.query_instruction) if config.query_instruction else []

    def with_instruction(self, instruction: str) -> "DebaterTemplate":
        """The same layout with another query instruction (per-task instructions at search time)."""
        return DebaterTemplate(self.tokenizer, replace(self.config, query_instruction=instruction))

    def tokenize_queries(self, queries: Sequence[str]) -> list[list[int]]:
        """Query ids as they follow the instruction in ``{instruction} {query}`` (a space before the query)."""
        return self.tokenize_batch([f" {q}" for q in queries] if self.instruction_ids else queries)

    def plain_query(self, query_ids: Sequence[int]) -> list[int]:
        return self.bos + self.instruction_ids + list(query_ids[: self.config.query_max_len]) + [self.query_end_id]

    def passage(self, passage_ids: Sequence[int]) -> list[int]:
        """The passage is cut first, so the prompt and every step token are always there."""
        return self.bos + list(passage_ids[: self.config.passage_max_len]) + self.prompt_ids + self.step_ids


DebaterOutput = family_output("DebaterOutput", "ce_loss", "distill_loss")


class DebaterModel(FamilyModel):
    """Query vector at ``</s>``; M step vectors per passage; loss = (CE over S_max + self-distillation) / 2."""

    family = "debater"
    config_class = DebaterConfig
    output_class = DebaterOutput

    def __init__(self, lm, tokenizer, config: DebaterConfig, negatives_x_device: bool = False):
        parts = {"ce_loss", "distill_loss"}
        super().__init__(lm, tokenizer, config, Objective({name: 0.5 for name in sorted(parts)},
                                                          parts if negatives_x_device else set()))
        self.template = DebaterTemplate(tokenizer, config)
        self.loss = MaxStepSelfDistillationLoss(config.scale, negatives_x_device)

    @classmethod
    def add_tokens(cls, tokenizer, lm, config: DebaterConfig) -> list[int]:
        return add_family_tokens(tokenizer, lm, config.tokens())

    def pool_query(self, hidden, input_ids, attention_mask) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        last = last_positions(attention_mask)
        if not bool((input_ids[rows, last] == self.template.query_end_id).all()):
            raise ValueError("a query does not end with its query token (</s>): build inputs with "
                             "DebaterTemplate.plain_query")
        return F.normalize(hidden[rows, last], dim=-1)

    def pool_passage(self, hidden, input_ids, attention_mask) -> torch.Tensor:
        """(B, M, d): the unit vectors at the M step tokens, the last M attended positions of each row."""
        steps = len(self.template.step_ids)
        positions = last_positions(attention_mask)[:, None] + torch.arange(1 - steps, 1, device=hidden.device)
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
        step_ids = torch.tensor(self.template.step_ids, device=input_ids.device)
        if not bool((input_ids[rows, positions] == step_ids).all()):
            raise ValueError("a passage does not end with the step tokens: build inputs with DebaterTemplate.passage")
        return F.normalize(hidden[rows, positions], dim=-1)

    def vector_loss_parts(self, q_reps, p_reps, teacher_scores=None) -> dict[str, torch.Tensor]:
        return self.loss(q_reps, p_reps)


def warn_on_turn_closing_eos(template: DebaterTemplate) -> bool:
    """Before training: say so when queries end with an eos that the chat template uses to close a turn,
    where every query looks alike (SmolLM2-Instruct's ``<|im_end|>``: its DEBATER arm did not learn)."""
    tokenizer = template.tokenizer
    if template.config.query_token or not getattr(tokenizer, "chat_template", None):
        return False
    mark = "o1e-answer-mark"
    try:
        answered = tokenizer.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": mark}],
                                                 tokenize=False)
    except Exception:  # noqa: BLE001  (a template that needs other roles: nothing to say)
        return False
    if f"{mark}{tokenizer.eos_token}" not in answered:
        return False
    logger.warning("DEBATER pools each query at eos %r, which this model's chat template uses to close a turn: "
                   "queries look alike there and training may not take off; --debater_query_token '<query_vector>' "
                   "gives them a token of their own", tokenizer.eos_token)
    return True


def index_rows(step_vectors: np.ndarray, ids: Sequence[str], scoring: str = "last") -> tuple[np.ndarray, list[str]]:
    """What a flat inner-product index holds for passages with (n, M, d) step vectors: the last step
    (one row per passage), or with ``max-steps`` all M steps (M rows per passage, its id repeated, so
    the best-scoring row of a passage is its best step)."""
    if scoring not in SCORINGS:
        raise ValueError(f"DEBATER scoring must be one of {SCORINGS}, not {scoring!r}")
    if scoring == "last":
        return np.ascontiguousarray(step_vectors[:, -1]), list(ids)
    n, steps, dim = step_vectors.shape
    return np.ascontiguousarray(step_vectors.reshape(n * steps, dim)), [i for i in ids for _ in range(steps)]


def best_step_hits(hits: Sequence, k: int) -> list:
    """Each passage once, at its best step's rank, ``k`` deep: ``hits`` (objects with ``docid``, best
    first) come from searching ``k * M`` rows of a max-steps index, which always hold ``k`` passages."""
    seen, best = set(), []
    for hit in hits:
        if hit.docid not in seen:
            seen.add(hit.docid)
            best.append(hit)
            if len(best) == k:
                break
    return best
