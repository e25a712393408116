"""The losses both families use, and the cross-device helpers every loss part reads: InfoNCE (with
negatives gathered across devices), distillation from teacher scores, ``world_size`` and ``global_sum``.
Each family's own part lives with it (O1E's thought generation in ``families/o1e/loss.py``, DEBATER's
max-step parts in ``families/debater/loss.py``).

Cross-device conventions: with ``negatives_x_device`` every rank gathers all query and passage
vectors and keeps the gradient of its own slice only, so the global-batch InfoNCE loss must be scaled
by ``world_size`` before backward for DDP's gradient averaging to yield its gradient (the model does
that, as Tevatron does; the family's objective applies the scale). The distillation loss reads each
rank's own groups only, so it is a local mean that DDP's averaging already turns into the global one:
it is not scaled. The generation loss divides each rank's token sum by the global token count times
``1 / world_size``, so that its mean over ranks is the global-batch loss.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .core.deprecation import moved_names

# one release: the family-specific losses moved into their families
__getattr__ = moved_names(__name__, {"ThoughtGenerationLoss": "o1e_tevatron.families.o1e.loss",
                                     "MaxStepSelfDistillationLoss": "o1e_tevatron.families.debater.loss"})


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if _distributed() else 1


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """All ranks' ``t`` concatenated in rank order; the local slice keeps its autograd graph."""
    if not _distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    parts[dist.get_rank()] = t
    return torch.cat(parts, dim=0)


def global_sum(x: torch.Tensor) -> torch.Tensor:
    if _distributed():
        x = x.detach().clone()
        dist.all_reduce(x)
    return x


class InfoNCELoss:
    """Contrastive loss of eq. 9: each query against its positive, its hard negatives and every other
    query's passages in the batch (all ranks' with ``negatives_x_device``).

    Passages come in groups of ``group_size``: passage ``i * group_size`` is query ``i``'s positive.
    """

    def __init__(self, temperature: float = 0.02, negatives_x_device: bool = False):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        self.temperature = temperature
        self.negatives_x_device = negatives_x_device

    def scores(self, q_reps: torch.Tensor, p_reps: torch.Tensor) -> torch.Tensor:
        """In float32 whatever the vectors' dtype: bf16 scores divided by 0.02 are off by whole logits."""
        return q_reps.float() @ p_reps.float().T / self.temperature

    def __call__(self, q_reps: torch.Tensor, p_reps: torch.Tensor) -> torch.Tensor:
        q_reps, p_reps, target = contrastive_batch(q_reps, p_reps, self.negatives_x_device)
        return F.cross_entropy(self.scores(q_reps, p_reps), target)


def contrastive_batch(q_reps: torch.Tensor, p_reps: torch.Tensor, negatives_x_device: bool):
    """(queries, passages, index of each query's positive) of the batch, every rank's when
    ``negatives_x_device``. Passages come in groups: passage ``i * group_size`` is query ``i``'s positive."""
    if p_reps.shape[0] % q_reps.shape[0]:
        raise ValueError(f"{p_reps.shape[0]} passages do not split into groups for {q_reps.shape[0]} queries")
    if negatives_x_device:
        q_reps, p_reps = gather_with_grad(q_reps), gather_with_grad(p_reps)
    group_size = p_reps.shape[0] // q_reps.shape[0]
    return q_reps, p_reps, torch.arange(q_reps.shape[0], device=q_reps.device) * group_size


class DistillationLoss:
    """KL from teacher scores (``pos_scores`` / ``neg_scores`` of the authors' rows) to the student's
    scores over each query's own passage group, as in the authors' code."""

    def __init__(self, temperature: float = 0.02, teacher_temperature: float = 1.0):
        self.temperature = temperature
        self.teacher_temperature = teacher_temperature

    def __call__(self, q_reps: torch.Tensor, p_reps: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
        group = p_reps.view(q_reps.shape[0], -1, p_reps.shape[-1])
        student = torch.einsum("bd,bgd->bg", q_reps.float(), group.float()) / self.temperature
        teacher = torch.softmax(teacher_scores.float() / self.teacher_temperature, dim=-1)
        return -(teacher * torch.log_softmax(student, dim=-1)).sum(-1).mean()
