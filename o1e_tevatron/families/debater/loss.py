"""DEBATER's loss parts: max-step cross entropy and self-distillation of the last step from the best."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...loss import contrastive_batch


class MaxStepSelfDistillationLoss:
    """DEBATER's loss parts over passages with M step vectors each (``p_reps``: (P, M, d), unit vectors).

    ``ce_loss``: cross entropy of S_max = scale * max_k cos(q, d^k) over each query's positive, its hard
    negatives and every other query's passages; ``distill_loss``: self-distillation, the mean over
    queries of -sum_j softmax(S_max.detach())_j * log_softmax(S_last)_j with S_last = scale * cos(q, d^M):
    the last step learns what the best step knows, and the teacher side gets no gradient.
    """

    def __init__(self, scale: float = 30.0, negatives_x_device: bool = False):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale}")
        self.scale = scale
        self.negatives_x_device = negatives_x_device

    def step_scores(self, q_reps: torch.Tensor, p_reps: torch.Tensor) -> torch.Tensor:
        """(Q, P, M) scaled cosine of every query with every step vector of every passage, in float32."""
        return torch.einsum("qd,pmd->qpm", q_reps.float(), p_reps.float()) * self.scale

    def __call__(self, q_reps: torch.Tensor, p_reps: torch.Tensor) -> dict[str, torch.Tensor]:
        q_reps, p_reps, target = contrastive_batch(q_reps, p_reps, self.negatives_x_device)
        scores = self.step_scores(q_reps, p_reps)
        best = scores.max(-1).values
        teacher = torch.softmax(best.detach(), dim=-1)
        distill = -(teacher * torch.log_softmax(scores[..., -1], dim=-1)).sum(-1).mean()
        return {"ce_loss": F.cross_entropy(best, target), "distill_loss": distill}
