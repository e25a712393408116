"""The one place loss parts are weighted and summed: the plain step and the grad-cache step both call it.

Parts computed over gathered (cross-device) scores are scaled by the world size before backward:
every rank keeps the gradient of its own slice only, and DDP averages the ranks' gradients, so the
scaled loss yields the global-batch gradient (as Tevatron does). Parts computed from a rank's own
batch only (a per-rank mean) are not scaled.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .loss import world_size


class Objective:
    """loss = sum over parts of weight * part (times the world size for gathered parts)."""

    def __init__(self, weights: Mapping[str, float], gathered: frozenset[str] | set[str] = frozenset()):
        unknown = set(gathered) - set(weights)
        if unknown:
            raise ValueError(f"gathered parts {sorted(unknown)} have no weight")
        self.weights = dict(weights)
        self.gathered = frozenset(gathered)

    def scale(self, name: str) -> float:
        return self.weights[name] * (world_size() if name in self.gathered else 1)

    def __call__(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of the parts present (a part without a weight is an error)."""
        unknown = set(parts) - set(self.weights)
        if unknown:
            raise ValueError(f"loss parts {sorted(unknown)} have no weight in the objective")
        terms = [self.scale(name) * parts[name] for name in self.weights if name in parts and self.weights[name]]
        if not terms:
            return next(iter(parts.values())) * 0.0
        loss = terms[0]
        for term in terms[1:]:
            loss = loss + term
        return loss
