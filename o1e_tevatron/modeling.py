"""O1EModel: one decoder LM that both thinks (LM head) and embeds (hidden state at ``<emb>``).

In the style of Tevatron v2's EncoderModel: the model owns building, the loss, saving and loading;
the pooling is a small named function. A training step runs the backbone once over the query
sequences (shared by the generation and the contrastive loss) and once over the passages.

A checkpoint is a folder with ``o1e_config.json`` (layout, pooling, normalisation), the tokenizer
(with O1E's special tokens) and either a PEFT adapter (``adapter_model.safetensors``: LoRA weights and
the special-token embedding rows) or a full model in safetensors (full fine-tuning or ``merge``).
Nothing is unpickled on load, and remote code runs only with ``trust_remote_code=True``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import ModelOutput

from .loss import DistillationLoss, InfoNCELoss, ThoughtGenerationLoss, world_size
from .template import SPECIAL_TOKENS, Template, TemplateConfig, add_special_tokens

logger = logging.getLogger(__name__)

O1E_CONFIG_NAME = "o1e_config.json"
ADAPTER_CONFIG_NAME = "adapter_config.json"
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class O1EConfig:
    """What a checkpoint must carry for inference to match training."""

    pooling: str = "emb"
    normalize: bool = True
    temperature: float = 0.02
    template: TemplateConfig = field(default_factory=TemplateConfig)
    base_model: Optional[dict] = None  # what the weights were trained on: see base_fingerprint

    def __post_init__(self):
        if self.pooling not in POOLERS:
            raise ValueError(f"pooling must be one of {sorted(POOLERS)}, not {self.pooling!r}")
        if isinstance(self.template, dict):
            self.template = TemplateConfig.from_dict(self.template)
        self.template.append_emb = self.pooling == "emb"

    def save(self, folder: Path) -> None:
        (Path(folder) / O1E_CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "O1EConfig":
        path = Path(folder) / O1E_CONFIG_NAME
        return cls(**json.loads(path.read_text())) if path.exists() else cls()


class BaseModelMismatchError(ValueError):
    """An adapter or a checkpoint over another base model than the one it was trained on."""


WEIGHT_BUCKETS = 16
WEIGHT_TOLERANCE = 1e-2  # of a bucket's norm: far above float16/bf16 rounding, far below other weights


def base_fingerprint(lm, name_or_path: str) -> dict:
    """What identifies a base model cheaply: its architecture (type, parameter names and shapes, hashed)
    and a weight digest, the sums of ~1k values per tensor in 16 buckets, with each bucket's norm, so
    that the same weights loaded in float32, bf16 or float16 agree and other weights do not."""
    architecture = hashlib.sha256(lm.config.model_type.encode())
    sums, squares = [0.0] * WEIGHT_BUCKETS, [0.0] * WEIGHT_BUCKETS
    with torch.no_grad():
        for i, (name, param) in enumerate(lm.named_parameters()):
            architecture.update(f"{name}:{tuple(param.shape)};".encode())
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 1024)].to("cpu", torch.float64)
            sums[i % WEIGHT_BUCKETS] += sample.sum().item()
            squares[i % WEIGHT_BUCKETS] += sample.square().sum().item()
    return {"name_or_path": str(name_or_path), "architecture": architecture.hexdigest()[:16],
            "weight_sums": [float(f"{x:.6g}") for x in sums],
            "weight_norms": [float(f"{x ** 0.5:.6g}") for x in squares]}


def _same_weights(a: dict, b: dict) -> bool:
    return all(abs(x - y) <= WEIGHT_TOLERANCE * max(n, 1e-12)
               for x, y, n in zip(a["weight_sums"], b["weight_sums"], a["weight_norms"]))


def check_same_base(recorded: Optional[dict], actual: dict, what: str) -> None:
    """Refuse weights trained on one base to be used over another; silent only when they match."""
    if recorded is None:
        logger.warning("%s does not record its base model (saved by an older o1e): cannot check that %s is it",
                       what, actual["name_or_path"])
        return
    if recorded["architecture"] != actual["architecture"]:
        difference = "another architecture (other parameter names or shapes)"
    elif not _same_weights(recorded, actual):
        difference = "the same architecture but other weights"
    else:
        return
    raise BaseModelMismatchError(
        f"{what} was trained on the base model {recorded['name_or_path']}, but the base given is "
        f"{actual['name_or_path']}: {difference}. Use the base it was trained on.")


# --- pooling -----------------------------------------------------------------------------------
def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token of each row: right for left and right padding alike."""
    length = attention_mask.shape[1]
    return length - 1 - attention_mask.flip(-1).long().argmax(-1)


def pool_emb(hidden, input_ids, attention_mask, emb_id):
    pos = last_positions(attention_mask)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if not bool((input_ids[rows, pos] == emb_id).all()):
        raise ValueError("a sequence does not end with <emb>: build inputs with o1e_tevatron.template")
    return hidden[rows, pos]


def pool_last(hidden, input_ids, attention_mask, emb_id):
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_positions(attention_mask)]


def pool_mean(hidden, input_ids, attention_mask, emb_id):
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


POOLERS = {"emb": pool_emb, "last": pool_last, "mean": pool_mean}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so a left-padded row embeds like an unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class O1EOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    ctr_loss: Optional[torch.Tensor] = None
    gen_loss: Optional[torch.Tensor] = None
    kd_loss: Optional[torch.Tensor] = None
    q_reps: Optional[torch.Tensor] = None
    p_reps: Optional[torch.Tensor] = None


@contextmanager
def peft_without_deprecation_warnings():
    """PEFT (0.x) still reads transformers' deprecated ``is_gradient_checkpointing``: not ours to warn about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class O1EModel(nn.Module):
    """Backbone (a causal LM, optionally wrapped by PEFT) plus O1E's pooling and joint loss."""

    def __init__(self, lm, tokenizer, config: O1EConfig, gen_loss_weight: float = 0.2,
                 negatives_x_device: bool = False, gen_loss_chunk_size: int = 1024, kd_weight: float = 0.0,
                 kd_teacher_temperature: float = 1.0):
        super().__init__()
        if not 0.0 <= gen_loss_weight <= 1.0:
            raise ValueError(f"gen_loss_weight (lambda of eq. 10) must be in [0, 1], got {gen_loss_weight}")
        self.lm = lm
        self.tokenizer = tokenizer
        self.o1e_config = config
        self.config = lm.config  # what transformers.Trainer expects on a model
        self.template = Template(tokenizer, config.template)
        self.gen_loss_weight = gen_loss_weight
        self.negatives_x_device = negatives_x_device
        self.kd_weight = kd_weight
        self.contrastive = InfoNCELoss(config.temperature, negatives_x_device)
        self.generation = ThoughtGenerationLoss(gen_loss_chunk_size, global_token_mean=negatives_x_device)
        self.distillation = DistillationLoss(config.temperature, kd_teacher_temperature)

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

    def pool(self, hidden, input_ids, attention_mask) -> torch.Tensor:
        reps = POOLERS[self.o1e_config.pooling](hidden, input_ids, attention_mask, self.template.emb_id)
        return F.normalize(reps, dim=-1) if self.o1e_config.normalize else reps

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pool(self.hidden_states(input_ids, attention_mask), input_ids, attention_mask)

    encode_query = encode
    encode_passage = encode

    # --- training -----------------------------------------------------------------------------
    def forward(self, query_input_ids, query_attention_mask, passage_input_ids, passage_attention_mask,
                gen_labels=None, teacher_scores=None) -> O1EOutput:
        q_hidden = self.hidden_states(query_input_ids, query_attention_mask)
        q_reps = self.pool(q_hidden, query_input_ids, query_attention_mask)
        p_reps = self.encode(passage_input_ids, passage_attention_mask)

        retrieval, ctr, kd = self.retrieval_loss(q_reps, p_reps, teacher_scores)
        gen = self.generation(q_hidden, gen_labels, self.lm_head) if gen_labels is not None else ctr.new_zeros(())
        loss = self.gen_loss_weight * gen + (1 - self.gen_loss_weight) * retrieval
        return O1EOutput(loss=loss, ctr_loss=ctr.detach(), gen_loss=gen.detach(),
                         kd_loss=None if kd is None else kd.detach(), q_reps=q_reps, p_reps=p_reps)

    def retrieval_loss(self, q_reps, p_reps, teacher_scores=None):
        """(what backward sees, InfoNCE, distillation or None). Only InfoNCE, whose gathered batch keeps
        the gradient of this rank's slice alone, is scaled by the world size; distillation reads this
        rank's own groups, so DDP's averaging already gives its global-batch gradient."""
        ctr = self.contrastive(q_reps, p_reps)
        retrieval = ctr * (world_size() if self.negatives_x_device else 1)
        kd = None
        if self.kd_weight > 0 and teacher_scores is not None:
            kd = self.distillation(q_reps, p_reps, teacher_scores)
            retrieval = retrieval + self.kd_weight * kd
        return retrieval, ctr, kd

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, **kwargs):
        """What Trainer calls for --activation_checkpointing (transformers >= 5.20 naming)."""
        ckpt_kwargs = activation_checkpointing_kwargs or {"use_reentrant": False}
        self.causal_lm.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs, **kwargs)
        if ckpt_kwargs.get("use_reentrant", True) and self.is_peft:
            self.causal_lm.enable_input_require_grads()  # reentrant checkpointing needs a grad-carrying input

    # --- building, saving, loading ------------------------------------------------------------
    @classmethod
    def build(cls, model_name_or_path: str, config: O1EConfig, *, tokenizer_name: str | None = None,
              lora: bool = True, lora_r: int = 32, lora_alpha: int = 64, lora_dropout: float = 0.1,
              lora_target_modules=LORA_TARGET_MODULES, train_special_tokens: bool = True,
              dtype: str = "float32", attn_implementation: str | None = None, trust_remote_code: bool = False,
              cache_dir: str | None = None, **model_kwargs) -> "O1EModel":
        """A fresh model for training: base LM + O1E's special tokens (+ LoRA)."""
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name or model_name_or_path, cache_dir=cache_dir,
                                                  trust_remote_code=trust_remote_code)
        lm = AutoModelForCausalLM.from_pretrained(
            model_name_or_path, dtype=DTYPES[dtype], attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code, cache_dir=cache_dir, use_safetensors=None,
        )
        config.base_model = base_fingerprint(lm, model_name_or_path)
        special_ids = add_special_tokens(tokenizer, lm)
        if lora:
            from peft import LoraConfig, get_peft_model

            peft_config = LoraConfig(
                r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                target_modules=list(lora_target_modules), trainable_token_indices=special_ids,
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
        """Adapter (or full model) in safetensors + tokenizer + o1e_config.json.

        ``merge=True`` writes a plain model with the adapter folded in; it folds in place, so save the
        adapter first if you need it too.
        """
        out = Path(output_dir)
        with staging_folder(out) as staging:
            if merge and self.is_peft:
                self.lm.merge_and_unload().save_pretrained(staging)
            elif self.is_peft:  # special-token rows travel as trainable tokens; the rest is the base's
                self.lm.save_pretrained(staging, save_embedding_layers=False)
            else:
                self.lm.save_pretrained(staging)
            self.tokenizer.save_pretrained(staging)
            self.o1e_config.save(staging)
        move_into(staging, out)

    @classmethod
    def load(cls, path: str | Path, *, base_model_name_or_path: str | None = None, dtype: str = "float32",
             device: str | torch.device | None = None, is_trainable: bool = False,
             trust_remote_code: bool = False, attn_implementation: str | None = None, **model_kwargs) -> "O1EModel":
        """Load an o1e checkpoint (adapter or merged) or any causal LM folder / hub id.

        For an adapter, the base model is the one named in ``adapter_config.json`` unless
        ``base_model_name_or_path`` says where it now lives.
        """
        path = Path(path)
        config = O1EConfig.load(path) if path.is_dir() else O1EConfig()
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        adapter_file = path / ADAPTER_CONFIG_NAME
        load_kwargs = dict(dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                           attn_implementation=attn_implementation)
        if adapter_file.exists():
            from peft import PeftModel

            base = base_model_name_or_path or json.loads(adapter_file.read_text())["base_model_name_or_path"]
            lm = AutoModelForCausalLM.from_pretrained(base, **load_kwargs)
            check_same_base(config.base_model, base_fingerprint(lm, base), f"the adapter {path}")
            add_special_tokens(tokenizer, lm)
            with peft_without_deprecation_warnings():
                lm = PeftModel.from_pretrained(lm, str(path), is_trainable=is_trainable)
        else:
            lm = AutoModelForCausalLM.from_pretrained(str(path), **load_kwargs)
            missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
            if missing:
                logger.warning("%s lacks O1E's special tokens %s: adding them with untrained embeddings", path, missing)
            add_special_tokens(tokenizer, lm)
        model = cls(lm, tokenizer, config, **model_kwargs)
        if device is not None:
            model.to(device)
        return model.train(is_trainable)

    def load_trainable_state(self, checkpoint: str | Path) -> None:
        """Restore trainable weights from a checkpoint of this same model (for resuming a run)."""
        checkpoint = Path(checkpoint)
        if self.o1e_config.base_model is not None:
            check_same_base(O1EConfig.load(checkpoint).base_model, self.o1e_config.base_model,
                            f"the checkpoint {checkpoint}")
        if self.is_peft:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            state = load_file(str(checkpoint / "adapter_model.safetensors"))
            result = set_peft_model_state_dict(self.lm, state)
            if getattr(result, "unexpected_keys", None):
                raise ValueError(f"{checkpoint}: adapter has unexpected keys {result.unexpected_keys[:5]}")
        else:
            from safetensors.torch import load_file
            from transformers.trainer_utils import load_sharded_checkpoint

            single = checkpoint / "model.safetensors"
            if single.exists():  # not strict: tied weights are saved once
                result = self.lm.load_state_dict(load_file(str(single)), strict=False)
                if result.unexpected_keys:
                    raise ValueError(f"{checkpoint}: model has unexpected keys {result.unexpected_keys[:5]}")
            else:
                load_sharded_checkpoint(self.lm, str(checkpoint), strict=False)


def _is_disk_full(error: BaseException) -> bool:
    text = str(error)
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in text or "os error 28" in text


@contextmanager
def staging_folder(final: Path, staging: Optional[Path] = None):
    """A fresh hidden sibling of ``final`` to write into (``staging``, or a new unique one), so that a
    failed save (a full disk, a crash) never leaves torn files under ``final``: the caller moves the
    finished files in. On error the partial files are removed and a full disk is reported as such."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if staging is None:
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    else:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    try:
        yield staging
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if _is_disk_full(e):
            raise OSError(errno.ENOSPC, f"no space left on device while saving {final}: nothing was written "
                                        f"there (the partial files were removed); free some space and save again") from e
        raise


def move_into(staging: Path, final: Path) -> None:
    """Move every file of ``staging`` into ``final`` (replacing those of the same name), then drop ``staging``."""
    final.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        target = final / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    staging.rmdir()
