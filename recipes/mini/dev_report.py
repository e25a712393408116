"""The miniature's dev report, driven by recipes/mini/dev/index.yaml: every arm and mode on o1e/scifact/dev
with paired t-tests against the arm's own fast mode and against (a), the cost columns, the training
losses and the dev curves (PNG) and a few thoughts per thinking arm; then the test table
(recipes/mini/test/index.yaml: SciFact test and CoSQA dev, once per arm) in the same columns.

    .venv/bin/python recipes/mini/dev_report.py [--index recipes/mini/dev/index.yaml] [--out docs/results/mini]
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from report import read_losses  # noqa: E402  (one parser of the trainer's logs)

METRIC = "nDCG@10"


def folder(index_path: Path, name: str, dataset: str) -> Path:
    return index_path.parent / name / dataset.replace("/", "__")


def record_of(index_path: Path, name: str, dataset: str) -> dict | None:
    found = sorted(folder(index_path, name, dataset).glob("*.metrics.json"))
    return json.loads(found[0].read_text()) if found else None


def versus(index_path: Path, a: str, b: str, dataset: str = "") -> str:
    """Δ, p and wins/losses of run.sh's paired t-test (``eval ttest``) of b against a, if it ran (a test
    folder names its t-tests by dataset too: ``ttest.beir_scifact_test.A-vs-B.json``)."""
    first, second = Path(a), Path(b)  # runs in one folder (dev/ or dev/history/...) have their t-tests there
    if first.parent != second.parent:
        return "—"
    folder = index_path.parent / first.parent
    names = [f"ttest.{dataset.replace('/', '_')}.{first.name}-vs-{second.name}.json",
             f"ttest.{first.name}-vs-{second.name}.json"]
    path = next((folder / name for name in names if (folder / name).exists()), None)
    if path is None:
        return "—"
    test = json.loads(path.read_text())
    deltas = test["deltas"].values()
    return (f"{test['mean_b'] - test['mean_a']:+.4f}, p={test['p']:.2g}, "
            f"{sum(d > 0 for d in deltas)}/{sum(d < 0 for d in deltas)}")


def generated(cost: dict, num_queries: int) -> str:
    """Tokens generated per query (a run whose thoughts all came from the thought cache generated none), and
    how many queries thought when not all or none did (adaptive)."""
    thought = cost.get("queries_thought") or 0
    share = f"; {thought}/{num_queries} queries thought" if 0 < thought < num_queries else ""
    if cost.get("queries_from_thought_cache") and not cost["generated_tokens_per_query"]:
        return "0 (thoughts from the cache)" + share
    return f"{cost['generated_tokens_per_query']:.1f}" + share


def table(index_path: Path, index: dict, dataset: str) -> str:
    baseline = index["arms"]["a"]["results"]["fast"] if "a" in index["arms"] else None
    bm25 = index["arms"]["bm25"]["results"]["fast"] if "bm25" in index["arms"] else None
    lines = [f"| arm | steps | mode | {METRIC} | vs its first mode: Δ, p, wins/losses | vs (a): Δ, p, wins/losses | "
             "vs BM25: Δ, p, wins/losses | generated tokens/query | prompt tokens/query | query encoding s/query |",
             "|---|---:|---|---:|---|---|---|---:|---:|---:|"]
    for arm, entry in index["arms"].items():
        fast = entry["results"].get(entry.get("reference", "fast"))
        steps = entry.get("steps", "—")
        for mode, name in entry["results"].items():
            record = record_of(index_path, name, dataset)
            if record is None:
                lines.append(f"| {entry['label']} | {steps} | {mode} | (not run yet) | | | | | | |")
                continue
            cost = record["cost"]
            own = versus(index_path, fast, name, dataset) if fast and name != fast else "—"
            against_a = versus(index_path, baseline, name, dataset) if baseline and name != baseline else "—"
            against_bm25 = versus(index_path, bm25, name, dataset) if bm25 and name != bm25 else "—"
            seconds = 1 / cost["query_encoding_qps"] if cost.get("query_encoding_qps") else None
            lines.append(f"| {entry['label']} | {steps} | {mode} | {record['metrics'][METRIC]:.4f} | {own} | {against_a} | {against_bm25} | "
                         f"{generated(cost, record['num_queries'])} | {cost.get('prompt_tokens_per_query') or '—'} | "
                         + (f"{seconds:.3f} |" if seconds else "— |"))
    return "\n".join(lines)


def plot_losses(index: dict, root: Path, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    seen = set()
    for arm, entry in index["arms"].items():
        log = root / entry["log"]
        if not log.exists() or log in seen:  # arms that share a model share its log
            continue
        seen.add(log)
        rows = read_losses(log)
        steps = range(1, len(rows) + 1)
        axes[0].plot(steps, [r.get("ctr_loss", r.get("ce_loss", r["loss"])) for r in rows], marker=".", label=arm)
        if any(r.get("gen_loss", 0) for r in rows):
            axes[1].plot(steps, [r["gen_loss"] for r in rows], marker=".", label=arm)
    axes[0].set(title="contrastive loss (InfoNCE; DEBATER: over its best step)", xlabel="training step")
    axes[1].set(title="thought-generation loss (token NLL)", xlabel="training step")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "dev-loss.png", dpi=110)


def curve(index_path: Path, index: dict, out: Path) -> str:
    """Fast-mode dev nDCG@10 at each saved checkpoint (run.sh's ``curve/<arm>-step<N>``; DEBATER's last step),
    the last point being the shipped adapter's reference mode (``<arm>-fast``, ``c-last``): a table and
    ``dev-curve.png``; empty when no curve ran."""
    dataset, points = index["dataset"], {}
    for path in sorted((index_path.parent / "curve").glob("*-step*")):
        arm, step = path.name.rsplit("-step", 1)
        record = record_of(index_path, f"curve/{path.name}", dataset)
        if record and arm in index["arms"]:
            points.setdefault(arm, {})[int(step)] = record["metrics"][METRIC]
    if not points:
        return ""
    for arm in points:  # the final point: the shipped adapter, after the recipe's last step
        entry = index["arms"][arm]
        record = record_of(index_path, entry["results"][entry.get("reference", "fast")], dataset)
        steps = entry.get("steps")
        if record and steps:
            points[arm][int(steps)] = record["metrics"][METRIC]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    lines = ["| arm | " + " | ".join(f"step {s}" for s in sorted({s for p in points.values() for s in p})) + " |"]
    lines.append("|---|" + "---:|" * (lines[0].count("|") - 2))
    all_steps = sorted({s for p in points.values() for s in p})
    for arm, by_step in points.items():
        ax.plot(sorted(by_step), [by_step[s] for s in sorted(by_step)], marker="o", label=arm)
        lines.append(f"| {index['arms'][arm]['label']} | " +
                     " | ".join(f"{by_step[s]:.4f}" if s in by_step else "—" for s in all_steps) + " |")
    ax.set(title=f"fast-mode {METRIC} on {dataset}", xlabel="training step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "dev-curve.png", dpi=110)
    return "Dev curve (fast mode):\n\n" + "\n".join(lines)


def thoughts(index_path: Path, index: dict, count: int = 2) -> str:
    blocks = []
    for arm, entry in index["arms"].items():
        record = record_of(index_path, entry["results"].get("think", ""), index["dataset"])
        if not record or not record.get("thoughts"):
            continue
        path = folder(index_path, entry["results"]["think"], index["dataset"]) / Path(record["thoughts"]).parent.name
        files = sorted(path.glob("thoughts.jsonl*"))
        if not files:
            continue
        opener = gzip.open if files[0].suffix == ".gz" else open
        with opener(files[0], "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f][:count]
        blocks.append(f"**{entry['label']}**\n\n" + "".join(
            f"- {row['text']!r}\n" + "".join(f"  - {t[:300]!r}\n" for t in row["thoughts"]) for row in rows))
    return "\n".join(blocks)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=Path("recipes/mini/dev/index.yaml"))
    parser.add_argument("--test-index", type=Path, default=Path("recipes/mini/test/index.yaml"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/mini"))
    args = parser.parse_args(argv)
    index = yaml.safe_load(args.index.read_text())
    root = args.index.resolve().parents[3]
    args.out.mkdir(parents=True, exist_ok=True)
    plot_losses(index, root, args.out)
    report = "\n\n".join(part for part in [f"{index['dataset']}: {index['shared']}",
                                          table(args.index, index, index["dataset"]),
                                          curve(args.index, index, args.out), thoughts(args.index, index)] if part)
    (args.out / "dev.md").write_text(report + "\n")
    print(report)
    if args.test_index.exists():  # the test table: each dataset once, with dev's settings
        test = yaml.safe_load(args.test_index.read_text())
        tables = [f"{dataset}:\n\n{table(args.test_index, test, dataset)}" for dataset in test["datasets"]]
        (args.out / "test.md").write_text("\n\n".join([test["shared"], *tables]) + "\n")
        print("\n\n".join(tables))
    return report


if __name__ == "__main__":
    main()
