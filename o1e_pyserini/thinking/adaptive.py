"""Adaptive thinking: embed fast, search, and think only for the queries whose fast result looks uncertain.

Three cheap uncertainty signals, each higher = more uncertain:

* ``margin``: minus the fast run's top-1 - top-2 score gap (a clear winner is a small uncertainty);
* ``score-entropy``: the entropy (nats) of the softmax of the top ``SCORE_ENTROPY_DEPTH`` fast scores at
  O1E's contrastive temperature (0.02: the scale the scores were trained at);
* ``model-entropy``: the model's own next-token entropy at ``<thought>``, free from the plain query's
  pass (``o1e_pyserini.thinking.backends.prefill_plain_query``).

A threshold (think when the uncertainty is at least it) or a target think-rate r (the round(r * n) most
uncertain queries think; ties by query id) chooses. Every decision is recorded with its signal value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from o1e_pyserini.evaluation.scoring import Run

SIGNALS = ("margin", "score-entropy", "model-entropy")
SCORE_ENTROPY_DEPTH = 10
SCORE_TEMPERATURE = 0.02


def margin_uncertainty(hits: list[tuple[str, float]]) -> float:
    """Minus the top-1 - top-2 score gap; a single hit is certain (-inf), none maximally uncertain."""
    if len(hits) < 2:
        return -math.inf if hits else math.inf
    return -(hits[0][1] - hits[1][1])


def score_entropy(hits: list[tuple[str, float]], depth: int = SCORE_ENTROPY_DEPTH,
                  temperature: float = SCORE_TEMPERATURE) -> float:
    """Entropy (nats) of the softmax of the top ``depth`` scores divided by ``temperature``."""
    if not hits:
        return math.inf
    logits = np.array([score for _, score in hits[:depth]], dtype=np.float64) / temperature
    logp = logits - logits.max()
    logp -= np.log(np.exp(logp).sum())
    return float(-(np.exp(logp) * logp).sum())


def uncertainties(signal: str, fast_run: Run, model_entropy: dict[str, float] | None = None) -> dict[str, float]:
    """Each query's uncertainty under ``signal`` (higher: more uncertain)."""
    if signal == "margin":
        return {q: margin_uncertainty(hits) for q, hits in fast_run.items()}
    if signal == "score-entropy":
        return {q: score_entropy(hits) for q, hits in fast_run.items()}
    if signal == "model-entropy":
        if model_entropy is None:
            raise ValueError("the model-entropy signal needs an o1e model's entropy at <thought>")
        return {q: model_entropy[q] for q in fast_run}
    raise ValueError(f"adaptive signal must be one of {SIGNALS}, not {signal!r}")


@dataclass(frozen=True)
class AdaptivePolicy:
    """Which queries think: ``threshold`` (uncertainty >= it) or ``rate`` (the most uncertain round(rate*n))."""

    signal: str = "margin"
    threshold: float | None = None
    rate: float | None = None

    def __post_init__(self):
        if self.signal not in SIGNALS:
            raise ValueError(f"adaptive signal must be one of {SIGNALS}, not {self.signal!r}")
        if (self.threshold is None) == (self.rate is None):
            raise ValueError("adaptive thinking needs a think threshold or a think rate (one of them)")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ValueError(f"the think rate must be in [0, 1], got {self.rate}")

    def decide(self, uncertainty: dict[str, float]) -> dict[str, dict]:
        """{query id: {think, signal, value, reason}} for every query."""
        if self.rate is not None:
            ranked = sorted(uncertainty, key=lambda q: (-uncertainty[q], q))
            chosen = set(ranked[:round(self.rate * len(ranked))])
            reason = f"among the {len(chosen)} most uncertain of {len(ranked)} (rate {self.rate:g})"
        else:
            chosen = {q for q, value in uncertainty.items() if value >= self.threshold}
            reason = f"uncertainty >= {self.threshold:g}"
        return {q: {"think": q in chosen, "signal": self.signal, "value": uncertainty[q],
                    "reason": reason if q in chosen else "not " + reason} for q in uncertainty}


def adaptive_curve(fast_values: dict[str, float], think_values: dict[str, float],
                   signal_values: dict[str, dict[str, float]], tokens: dict[str, float] | None = None) -> dict:
    """The score against the fraction of queries that think, per signal: at each count m (0..n) the m
    most uncertain queries (ties by id) take their think-run score, the others their fast-run score.
    Each point carries the threshold that picks those m (the m-th uncertainty) and, given ``tokens``
    (generated per query when thinking), the tokens per query. m = 0 is never-think, m = n always."""
    queries = sorted(fast_values)
    n = len(queries)
    curves = {}
    for signal, uncertainty in signal_values.items():
        order = sorted(queries, key=lambda q: (-uncertainty[q], q))
        total, spent, points = sum(fast_values.values()), 0.0, []
        for m in range(n + 1):
            if m:
                q = order[m - 1]
                total += think_values[q] - fast_values[q]
                spent += (tokens or {}).get(q, 0.0)
            points.append({"think_rate": m / n, "queries_thought": m, "score": total / n,
                           "threshold": uncertainty[order[m - 1]] if m else None,
                           "generated_tokens_per_query": spent / n if tokens is not None else None})
        curves[signal] = points
    never, always = sum(fast_values.values()) / n, sum(think_values.values()) / n
    return {"num_queries": n, "never_think": never, "always_think": always, "curves": curves}


def operating_points(curve: dict, target: float) -> dict[str, dict | None]:
    """Per signal, the curve's first point (fewest queries thinking) whose gain over never-think reaches
    ``target`` of always-think's; None when always-think gains nothing (thinking does not pay here)."""
    gain = curve["always_think"] - curve["never_think"]
    if gain <= 0:
        return {signal: None for signal in curve["curves"]}
    return {signal: next(p for p in points if p["score"] - curve["never_think"] >= target * gain - 1e-12)
            for signal, points in curve["curves"].items()}


def plot_curve(curve: dict, metric: str, path) -> None:
    """score vs think-rate and vs generated tokens per query, one line per signal, never/always as the
    ends, a random choice of queries dotted (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    always_tokens = max((p["generated_tokens_per_query"] for points in curve["curves"].values() for p in points),
                        default=0.0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, x, label, end in ((axes[0], "think_rate", "fraction of queries that think", 1),
                              (axes[1], "generated_tokens_per_query", "generated tokens per query", always_tokens)):
        for signal, points in curve["curves"].items():
            ax.plot([p[x] for p in points], [p["score"] for p in points], label=signal)
        ax.plot([0, end], [curve["never_think"], curve["always_think"]], "k:", label="random (expected)")
        ax.set_xlabel(label)
    axes[0].set_ylabel(metric)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
