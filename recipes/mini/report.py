"""The miniature's report: the score table (markdown), loss curves and an nDCG bar chart (PNG), and
example thoughts, all read from the small artifacts run.sh commits (logs, metrics, t-tests, thoughts).
Which arm is which, its settings and its files: ``results/index.yaml``, the one place the report reads them.

    .venv/bin/python recipes/mini/report.py [--mini recipes/mini] [--out docs/results/mini]
"""
from __future__ import annotations

import argparse
import ast
import gzip
import json
from pathlib import Path

import yaml

TEST_SETS = ("beir/scifact/test", "o1e/cosqa/dev")  # the main table's datasets


def read_index(mini: Path) -> dict:
    """``results/index.yaml``: arms (label, settings, run folder per dataset), tables, t-tests, curves."""
    return yaml.safe_load((mini / "results" / "index.yaml").read_text())


def read_losses(log: Path) -> list[dict]:
    """The trainer's logged dicts (one per --logging_steps) from a training log. A run resumed from a
    checkpoint logs again the steps after it, which a stopped run may have logged already: the later lines win."""
    rows: list[dict] = []
    for line in log.read_text().splitlines():
        line = line.strip()
        if line.startswith("{'loss'"):
            row = {k: float(v) for k, v in ast.literal_eval(line).items()}
            while rows and "epoch" in row and rows[-1].get("epoch", -1) >= row["epoch"]:
                rows.pop()
            rows.append(row)
    return rows


def metrics_of(mini: Path, index: dict, arm: str, dataset: str) -> dict | None:
    folder = index["arms"][arm]["runs"].get(dataset)
    path = mini / "results" / folder / "run.metrics.json" if folder else None
    return json.loads(path.read_text()) if path and path.exists() else None


def ttest_of(mini: Path, index: dict, dataset: str, a: str, b: str) -> dict | None:
    name = index["ttests"].get(dataset, {}).get(f"{a}-vs-{b}")
    return json.loads((mini / "results" / name).read_text()) if name else None


def table(mini: Path, index: dict) -> str:
    lines = ["| arm | dataset | nDCG@10 | vs (a): Δ, p, wins/losses | queries thought | generated tokens/query "
             "| thinking s/query |", "|---|---|---|---|---|---|---|"]
    for dataset in TEST_SETS:
        for arm in index["table"]:
            record = metrics_of(mini, index, arm, dataset)
            if record is None:
                continue
            cost = record["cost"]
            versus = "—"
            test = ttest_of(mini, index, dataset, "a", arm) if arm != "a" else None
            if test:
                deltas = test["deltas"].values()
                wins, losses = sum(d > 0 for d in deltas), sum(d < 0 for d in deltas)
                versus = f"{test['mean_b'] - test['mean_a']:+.4f}, p={test['p']:.3g}, {wins}/{losses}"
            lines.append(f"| {index['arms'][arm]['label']} | {index['datasets'][dataset]} | "
                         f"{record['metrics']['nDCG@10']:.4f} | {versus} | "
                         f"{cost['queries_thought']} | {cost['generated_tokens_per_query']:.1f} | "
                         f"{cost['thinking_seconds_per_query']:.2f} |")
    return "\n".join(lines)


def plot_losses(mini: Path, out: Path, logging_steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for arm in ("a", "b"):
        log = mini / "logs" / f"train-{arm}.log"
        if not log.exists():
            continue
        rows = read_losses(log)
        steps = [(i + 1) * logging_steps for i in range(len(rows))]
        axes[0].plot(steps, [r.get("ctr_loss", r["loss"]) for r in rows], marker=".", label=f"({arm}) contrastive")
        if any("gen_loss" in r for r in rows) and arm == "b":
            axes[1].plot(steps, [r["gen_loss"] for r in rows], marker=".", color="C1", label="(b) thought generation")
    axes[0].set(title="contrastive loss", xlabel="training step", ylabel="InfoNCE")
    axes[1].set(title="thought-generation loss (b)", xlabel="training step", ylabel="token NLL")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)


def plot_ndcg(mini: Path, index: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    arms = [arm for arm in index["table"] if any(metrics_of(mini, index, arm, d) for d in TEST_SETS)]
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        values = [(metrics_of(mini, index, arm, d) or {"metrics": {"nDCG@10": 0}})["metrics"]["nDCG@10"]
                  for d in TEST_SETS]
        bars = ax.bar([j + i * width for j in range(len(TEST_SETS))], values, width, label=index["arms"][arm]["label"])
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks([j + width * (len(arms) - 1) / 2 for j in range(len(TEST_SETS))],
                  [index["datasets"][d] for d in TEST_SETS])
    ax.set(ylabel="nDCG@10", title="SmolLM2-135M-Instruct, LoRA, the miniature")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "ndcg.png", dpi=110)


def diagnostics(mini: Path, index: dict) -> str:
    lines = ["| run | nDCG@10 on SciFact train (809 queries) | generated tokens/query |", "|---|---:|---:|"]
    for row in index["diagnostics"]:
        record = metrics_of(mini, index, row["arm"], row["dataset"])
        if record is not None:
            label = row.get("label", index["arms"][row["arm"]]["label"])
            lines.append(f"| {label} | {record['metrics']['nDCG@10']:.4f} | "
                         f"{record['cost']['generated_tokens_per_query']:.1f} |")
    return "\n".join(lines)


def examples(mini: Path, index: dict, count: int = 3) -> str:
    """Test queries with the teacher's thoughts and the trained model's (the index's ``examples``)."""
    def thoughts(arm):
        folder = index["arms"][arm]["runs"].get(index["examples"]["dataset"])
        path = mini / "results" / folder / "run.queries" / "thoughts.jsonl" if folder else None
        if path is None or not (path.exists() or path.with_suffix(".jsonl.gz").exists()):
            return {}
        path, opener = (path, open) if path.exists() else (path.with_suffix(".jsonl.gz"), gzip.open)
        with opener(path, "rt") as f:
            return {row["text"]: row["thoughts"] for row in map(json.loads, f)}
    teacher, model = thoughts(index["examples"]["teacher"]), thoughts(index["examples"]["trained"])
    blocks = []
    for text in [t for t in model if t in teacher][:count]:
        blocks.append(f"**{text}**\n\n" + "".join(f"- teacher: {t!r}\n" for t in teacher[text][:1])
                      + "".join(f"- trained (b): {t!r}\n" for t in model[text]))
    return "\n".join(blocks)


CURVE_RATES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def adaptive_curves(mini: Path, index: dict) -> str:
    """The adaptive curves (run.sh stage 6) as tables: nDCG@10 and generated tokens per query at a few
    think rates, per signal; their PNGs redrawn (think rate and tokens panels)."""
    from o1e_pyserini.thinking.adaptive import plot_curve

    blocks = []
    for path in sorted(mini / "results" / name for name in index["adaptive"].values()):
        curve = json.loads(path.read_text())
        plot_curve(curve, curve["metric"], path.with_suffix(".png"))
        lines = [f"**{path.stem.removeprefix('curve.')}** ({curve['num_queries']} queries; never think "
                 f"{curve['never_think']:.4f}, always think {curve['always_think']:.4f})", "",
                 "| signal | " + " | ".join(f"{rate:.0%} think" for rate in CURVE_RATES) + " |",
                 "|---|" + "---:|" * len(CURVE_RATES)]
        for signal, points in curve["curves"].items():
            cells = []
            for rate in CURVE_RATES:
                point = min(points, key=lambda p: abs(p["think_rate"] - rate))
                cells.append(f"{point['score']:.4f} ({point['generated_tokens_per_query']:.0f} tok/q)")
            lines.append(f"| {signal} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mini", type=Path, default=Path("recipes/mini"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/mini"))
    parser.add_argument("--logging-steps", type=int, default=5, help="run.sh's --logging_steps")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    index = read_index(args.mini)
    plot_losses(args.mini, args.out, args.logging_steps)
    plot_ndcg(args.mini, index, args.out)
    report = [table(args.mini, index), "", diagnostics(args.mini, index), "", adaptive_curves(args.mini, index), "",
              examples(args.mini, index)]
    times = args.mini / "logs" / "stage-times.jsonl"
    if times.exists():
        report += ["", "| stage | seconds | device |", "|---|---|---|"]
        report += [f"| {r['stage']} | {r['seconds']} | {r['device']} |"
                   for r in map(json.loads, times.read_text().splitlines())]
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
