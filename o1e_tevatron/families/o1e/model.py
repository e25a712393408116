"""O1EModel: one decoder LM that both thinks (LM head) and embeds (hidden state at ``<emb>``).

The O1E member of the family base (:mod:`o1e_tevatron.families.base`, which owns building, saving,
loading, the training forward and the objective): pooling at ``<emb>`` (or the last / mean ablations),
the InfoNCE and distillation parts on the vectors, and the thought-generation part read from the
same query hidden states (eq. 10: ``lambda * L_gen + (1 - lambda) * L_ctr``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ...core.tensors import last_positions
from ...loss import DistillationLoss, InfoNCELoss
from ...objective import Objective
from ..base import FamilyConfig, FamilyModel, family_output
from .loss import ThoughtGenerationLoss
from .template import SPECIAL_TOKENS, Template, TemplateConfig, add_special_tokens

@dataclass
class O1EConfig(FamilyConfig):
    """What a checkpoint must carry for inference to match training."""

    family = "o1e"
    pooling: str = "emb"
    normalize: bool = True
    temperature: float = 0.02
    template: TemplateConfig = field(default_factory=TemplateConfig)

    def __post_init__(self):
        if self.pooling not in POOLERS:
            raise ValueError(f"pooling must be one of {sorted(POOLERS)}, not {self.pooling!r}")
        if isinstance(self.template, dict):
            self.template = TemplateConfig.from_dict(self.template)
        self.template.append_emb = self.pooling == "emb"


# --- pooling -----------------------------------------------------------------------------------
def pool_emb(hidden, input_ids, attention_mask, emb_id):
    pos = last_positions(attention_mask)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if not bool((input_ids[rows, pos] == emb_id).all()):
        raise ValueError("a sequence does not end with <emb>: build inputs with o1e_tevatron.families.o1e.template")
    return hidden[rows, pos]


def pool_last(hidden, input_ids, attention_mask, emb_id):
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_positions(attention_mask)]


def pool_mean(hidden, input_ids, attention_mask, emb_id):
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


POOLERS = {"emb": pool_emb, "last": pool_last, "mean": pool_mean}


O1EOutput = family_output("O1EOutput", "ctr_loss", "gen_loss", "kd_loss")


class O1EModel(FamilyModel):
    """O1E's pooling (one vector per query and per passage) and joint loss parts."""

    family = "o1e"
    config_class = O1EConfig
    output_class = O1EOutput

    def __init__(self, lm, tokenizer, config: O1EConfig, gen_loss_weight: float = 0.2,
                 negatives_x_device: bool = False, gen_loss_chunk_size: int = 1024, kd_weight: float = 0.0,
                 kd_teacher_temperature: float = 1.0):
        if not 0.0 <= gen_loss_weight <= 1.0:
            raise ValueError(f"gen_loss_weight (lambda of eq. 10) must be in [0, 1], got {gen_loss_weight}")
        ctr_weight = 1 - gen_loss_weight
        weights = {"gen_loss": gen_loss_weight, "ctr_loss": ctr_weight, "kd_loss": ctr_weight * kd_weight}
        # only InfoNCE reads the gathered batch; distillation reads this rank's own groups (a local mean)
        gathered = {"ctr_loss"} if negatives_x_device else set()
        super().__init__(lm, tokenizer, config, Objective(weights, gathered))
        self.template = Template(tokenizer, config.template)
        self.gen_loss_weight = gen_loss_weight
        self.negatives_x_device = negatives_x_device
        self.kd_weight = kd_weight
        self.contrastive = InfoNCELoss(config.temperature, negatives_x_device)
        self.generation = ThoughtGenerationLoss(gen_loss_chunk_size, global_token_mean=negatives_x_device)
        self.distillation = DistillationLoss(config.temperature, kd_teacher_temperature)
        self.token_losses = {"gen_loss": self.generation}

    @property
    def o1e_config(self) -> O1EConfig:
        return self.family_config

    @classmethod
    def add_tokens(cls, tokenizer, lm, config) -> list[int]:
        return add_special_tokens(tokenizer, lm, SPECIAL_TOKENS)

    def pool(self, hidden, input_ids, attention_mask) -> torch.Tensor:
        reps = POOLERS[self.o1e_config.pooling](hidden, input_ids, attention_mask, self.template.emb_id)
        return F.normalize(reps, dim=-1) if self.o1e_config.normalize else reps

    pool_query = pool
    pool_passage = pool

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pool(self.hidden_states(input_ids, attention_mask), input_ids, attention_mask)

    def vector_loss_parts(self, q_reps, p_reps, teacher_scores=None) -> dict[str, torch.Tensor]:
        parts = {"ctr_loss": self.contrastive(q_reps, p_reps)}
        if self.kd_weight > 0 and teacher_scores is not None:
            parts["kd_loss"] = self.distillation(q_reps, p_reps, teacher_scores)
        return parts
