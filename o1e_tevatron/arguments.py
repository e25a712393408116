"""Tevatron's argument dataclasses plus O1E's fields.

Subclassing ``tevatron.arguments`` keeps every Tevatron flag and its meaning (model_name_or_path,
train_dir / dataset_name, q_max_len, p_max_len, train_n_passages, negatives_x_device, grad_cache,
gc_q_chunk_size, gc_p_chunk_size, encode_num_shard, ...). Tevatron v2's names are accepted as aliases:
--query_max_len, --passage_max_len, --train_group_size.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Optional

from tevatron.arguments import DataArguments, DenseTrainingArguments, ModelArguments
from transformers import HfArgumentParser

from .families.registry import FAMILIES
from .families.base import LORA_TARGET_MODULES
from .families.debater.model import DEFAULT_NUM_STEPS, DEFAULT_STEP_PROMPT, DebaterConfig
from .families.o1e.model import O1EConfig
from .families.o1e.template import LAYOUTS, TemplateConfig

#: LoRA (r, alpha, dropout) when --lora_r / --lora_alpha / --lora_dropout are not given: the papers' settings
LORA_DEFAULTS = {"o1e": (32, 64, 0.1), "debater": (16, 32, 0.05)}


def check_flag(flag: str, value, ok: bool, expected: str) -> None:
    """One line naming the flag, the value and what it must be; NaN fails every range check."""
    if not ok:
        raise ValueError(f"--{flag} {value}: must be {expected}")


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass
class O1EModelArguments(ModelArguments):
    model_name_or_path: str = field(
        metadata={"help": "Base causal LM (hub id or local folder), or an o1e checkpoint to encode with"})
    family: str = field(default="o1e", metadata={
        "help": "o1e: the query thinks (thoughts + <emb>); debater: the passage thinks (M step tokens)",
        "choices": sorted(FAMILIES)})
    pooling: str = field(default="emb", metadata={
        "help": "emb: hidden state at <emb> (O1E); last / mean: ablations without <emb>",
        "choices": ["emb", "last", "mean"]})
    normalize: bool = field(default=True, metadata={"help": "L2-normalise query and passage vectors"})
    temperature: float = field(default=0.02, metadata={"help": "InfoNCE temperature (authors: 0.02)"})
    template_layout: str = field(default="authors", metadata={
        "help": "authors: <query> q </query> <thought> t </s> <emb>; paper: without </query>; chat: the "
                "backbone's chat template around the teacher's prompt, the thought as the assistant turn, then <emb>",
        "choices": list(LAYOUTS)})
    grounding_passages: int = field(default=0, metadata={
        "help": "chat layout: show the query's top-K retrieved passages (the rows' 'grounding' field; at search "
                "time BM25 from a Lucene index) in the prompt before the query; 0: none"})
    grounding_max_words: int = field(default=48, metadata={"help": "Words kept of each grounding passage"})
    prompts_file: Optional[str] = field(default=None, metadata={
        "help": "chat layout: a JSON object overriding the prompt (system / task / user_template / ...), the same "
                "file as synthesis.generate --prompts_file, so that the student reads the teacher's prompt"})
    passage_prefix: str = field(default="", metadata={"help": "Text put before every passage"})
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights"})
    lora_r: Optional[int] = field(default=None, metadata={"help": "default: 32 (o1e), 16 (debater)"})
    lora_alpha: Optional[int] = field(default=None, metadata={"help": "default: 64 (o1e), 32 (debater)"})
    lora_dropout: Optional[float] = field(default=None, metadata={"help": "default: 0.1 (o1e), 0.05 (debater)"})
    lora_target_modules: str = field(default=",".join(LORA_TARGET_MODULES),
                                     metadata={"help": "Comma-separated module names LoRA wraps"})
    train_special_tokens: bool = field(default=True, metadata={
        "help": "Train the embedding rows of the family's tokens: <query>, </query>, <thought>, <emb> (the "
                "authors' code leaves them at their random initial values; --train_special_tokens false does "
                "the same); DEBATER's step tokens (the release never trains them)"})
    debater_num_steps: int = field(default=DEFAULT_NUM_STEPS, metadata={
        "help": "DEBATER: step tokens M after each passage (one vector each)"})
    debater_step_prompt: str = field(default=DEFAULT_STEP_PROMPT, metadata={
        "help": "DEBATER: text between the passage and its step tokens"})
    debater_step_tokens: str = field(default="", metadata={
        "help": "DEBATER: comma-separated step tokens (default <reserved_12>..: MiniCPM's; added when absent)"})
    debater_scale: float = field(default=30.0, metadata={"help": "DEBATER: cosine scale (1 / temperature)"})
    debater_query_instruction: str = field(default="", metadata={
        "help": "DEBATER: instruction before every training query ('{instruction} {query}</s>'), ending with ':'"})
    debater_query_token: str = field(default="", metadata={
        "help": "DEBATER: a token of its own ending every query, where it is pooled (added and trained; default: "
                "the eos, DEBATER's </s>, which in a chat model closes a turn, where all queries look alike)"})
    attn_implementation: Optional[str] = field(default=None, metadata={"help": "eager, sdpa, flash_attention_2"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run model code from the model's folder"})

    def __post_init__(self):
        check_flag("temperature", self.temperature, finite(self.temperature) and self.temperature > 0,
                   "a finite number > 0 (authors: 0.02)")
        lora = self.lora_settings()
        check_flag("lora_r", lora["lora_r"], lora["lora_r"] >= 1, "an integer >= 1")
        check_flag("lora_alpha", lora["lora_alpha"], finite(lora["lora_alpha"]) and lora["lora_alpha"] > 0, "> 0")
        check_flag("lora_dropout", lora["lora_dropout"],
                   finite(lora["lora_dropout"]) and 0 <= lora["lora_dropout"] < 1, "in [0, 1)")
        check_flag("debater_num_steps", self.debater_num_steps, self.debater_num_steps >= 1, "an integer >= 1")
        check_flag("debater_scale", self.debater_scale, finite(self.debater_scale) and self.debater_scale > 0,
                   "a finite number > 0 (the release: 30)")
        check_flag("grounding_passages", self.grounding_passages, self.grounding_passages >= 0, "an integer >= 0")
        check_flag("grounding_max_words", self.grounding_max_words, self.grounding_max_words >= 1, "an integer >= 1")
        if self.grounding_passages and self.template_layout != "chat":
            check_flag("grounding_passages", self.grounding_passages, False,
                       "0 unless --template_layout chat (the passages go into the chat prompt)")

    def chat_prompt(self) -> Optional[dict]:
        """The chat layout's prompt: o1e's teacher prompt, with --prompts_file's overrides."""
        if self.template_layout != "chat":
            if self.prompts_file:
                check_flag("prompts_file", self.prompts_file, False, "given with --template_layout chat only")
            return None
        from .families.o1e.prompts import TeacherPrompt

        return asdict(TeacherPrompt.from_file(self.prompts_file) if self.prompts_file else TeacherPrompt())

    def lora_settings(self) -> dict:
        """LoRA's r, alpha and dropout: the flags given, the family's defaults for the others."""
        given = (self.lora_r, self.lora_alpha, self.lora_dropout)
        return {name: default if value is None else value for name, value, default
                in zip(("lora_r", "lora_alpha", "lora_dropout"), given, LORA_DEFAULTS[self.family])}

    def family_config(self, data_args: "O1EDataArguments"):
        if self.family == "debater":
            return DebaterConfig(
                num_steps=self.debater_num_steps, step_prompt=self.debater_step_prompt,
                step_tokens=[t for t in self.debater_step_tokens.split(",") if t] or None,
                scale=self.debater_scale, query_instruction=self.debater_query_instruction,
                query_token=self.debater_query_token,
                query_max_len=data_args.q_max_len, passage_max_len=data_args.p_max_len)
        return self.o1e_config(data_args)

    def o1e_config(self, data_args: "O1EDataArguments") -> O1EConfig:
        template = TemplateConfig(
            layout=self.template_layout, query_max_len=data_args.q_max_len,
            thought_max_len=data_args.thought_max_len, passage_max_len=data_args.p_max_len,
            passage_prefix=self.passage_prefix, grounding_passages=self.grounding_passages,
            grounding_max_words=self.grounding_max_words, prompt=self.chat_prompt(),
        )
        return O1EConfig(pooling=self.pooling, normalize=self.normalize, temperature=self.temperature,
                         template=template)


@dataclass
class O1EDataArguments(DataArguments):
    train_n_passages: int = field(default=16, metadata={
        "aliases": ["--train_group_size"], "help": "1 positive + (n-1) hard negatives per query"})
    q_max_len: int = field(default=32, metadata={"aliases": ["--query_max_len"], "help": "Query tokens kept"})
    p_max_len: int = field(default=192, metadata={"aliases": ["--passage_max_len"], "help": "Passage tokens kept"})
    thought_max_len: int = field(default=256, metadata={"help": "Thought tokens kept"})
    plain_query_prob: float = field(default=0.1, metadata={
        "help": "Probability z of training a query without its thought (eq. 9)"})
    require_thought: bool = field(default=False, metadata={"help": "Fail on rows without a thought"})
    padding_side: str = field(default="left", metadata={"choices": ["left", "right"]})
    pad_to_multiple_of: Optional[int] = field(default=None, metadata={
        "help": "Pad each batch to a multiple of this many tokens (Tevatron's flag): fewer distinct shapes, "
                "which keeps a CPU run's memory from growing with every new sequence length"})

    def __post_init__(self):
        train_file = self.train_dir if self.train_dir and os.path.isfile(self.train_dir) else None
        if train_file:  # Tevatron only lists folders; one file is as good
            self.train_dir = os.path.dirname(train_file) or "."
        super().__post_init__()
        if train_file:
            self.train_path = [train_file]
        if self.train_dir is not None and not self.train_path:
            raise FileNotFoundError(f"--train_dir {self.train_dir}: no .jsonl or .json files there")
        check_flag("plain_query_prob", self.plain_query_prob,
                   finite(self.plain_query_prob) and 0 <= self.plain_query_prob <= 1, "in [0, 1]")
        check_flag("train_n_passages", self.train_n_passages, self.train_n_passages >= 1, "an integer >= 1")
        for flag in ("q_max_len", "p_max_len", "thought_max_len"):
            check_flag(flag, getattr(self, flag), getattr(self, flag) >= 1, "an integer >= 1")
        if self.pad_to_multiple_of is not None:
            check_flag("pad_to_multiple_of", self.pad_to_multiple_of, self.pad_to_multiple_of >= 1, "an integer >= 1")


@dataclass
class O1ETrainingArguments(DenseTrainingArguments):
    # Tevatron's flag (its default 0.1). transformers 5 dropped TrainingArguments.warmup_ratio, so Tevatron's
    # field of that name reached no scheduler; __post_init__ passes it on as a fraction in --warmup_steps.
    warmup_ratio: float = field(default=0.1, metadata={
        "help": "Linear warmup over this fraction of the steps (Tevatron's flag); a --warmup_steps > 0 wins"})
    gen_loss_weight: float = field(default=0.2, metadata={
        "help": "lambda of eq. 10: loss = lambda * L_gen + (1 - lambda) * L_ctr (authors: 0.2)"})
    gen_loss_chunk_size: int = field(default=1024, metadata={
        "help": "Thought positions sent through the LM head at once"})
    kd_weight: float = field(default=0.0, metadata={
        "help": "Weight of distillation from pos_scores/neg_scores (0: off)"})
    kd_teacher_temperature: float = field(default=1.0)
    merge_lora: bool = field(default=False, metadata={
        "help": "After training, also write a plain merged model to OUTPUT_DIR/merged"})
    remove_unused_columns: bool = field(default=False)
    logging_steps: float = field(default=10)

    def __post_init__(self):
        super().__post_init__()
        check_flag("gen_loss_weight", self.gen_loss_weight,
                   finite(self.gen_loss_weight) and 0 <= self.gen_loss_weight <= 1, "in [0, 1] (lambda of eq. 10)")
        check_flag("kd_weight", self.kd_weight, finite(self.kd_weight) and self.kd_weight >= 0, "a finite number >= 0")
        check_flag("kd_teacher_temperature", self.kd_teacher_temperature,
                   finite(self.kd_teacher_temperature) and self.kd_teacher_temperature > 0, "a finite number > 0")
        check_flag("gen_loss_chunk_size", self.gen_loss_chunk_size, self.gen_loss_chunk_size >= 1, "an integer >= 1")
        check_flag("warmup_ratio", self.warmup_ratio, finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1,
                   "in [0, 1)")
        if not self.warmup_steps:  # transformers 5 reads a warmup_steps in (0, 1) as a fraction of the steps
            self.warmup_steps = self.warmup_ratio
        for flag in ("learning_rate", "max_grad_norm", "weight_decay"):
            check_flag(flag, getattr(self, flag), finite(getattr(self, flag)) and getattr(self, flag) >= 0,
                       "a finite number >= 0")
        if self.grad_cache:
            for flag in ("gc_q_chunk_size", "gc_p_chunk_size"):
                check_flag(flag, getattr(self, flag), getattr(self, flag) >= 1, "an integer >= 1")


def parse_args(dataclasses=(O1EModelArguments, O1EDataArguments, O1ETrainingArguments), argv=None):
    """Flags, or a single JSON config file as the only argument (as Tevatron allows)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = HfArgumentParser(dataclasses)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    return parser.parse_args_into_dataclasses(args=argv)
