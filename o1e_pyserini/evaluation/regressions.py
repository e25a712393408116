"""``compare`` (ours against a paper's table) and ``regress`` (pinned scores, 2CR-style) of
``python -m o1e_pyserini.eval``."""
from __future__ import annotations

import json
from pathlib import Path

from o1e_tevatron.core import readers

from . import retrievers
from .harness import EvalConfig, evaluate, slug

REGRESSIONS = Path(__file__).parents[1] / "resources" / "regressions.yaml"
def compare(expected_path: Path, results_dir: Path) -> list[dict]:
    """Ours vs the paper per dataset, from ``<results>/<condition>/<dataset>/*.metrics.json``.

    ``expected.yaml``: ``{table, metric_scale, conditions: [{name, datasets: [{dataset, scores:
    {metric: value}}]}]}``; a dataset ``average`` with ``over: [ids]`` is the mean of ours over those
    ids. The paper prints percentages, hence ``metric_scale`` (100). Cost columns beside the scores:
    the share of queries that thought, generated tokens and thinking seconds per query (means over
    ``over``), blank for results written before o1e recorded cost."""
    expected = readers.yaml_file(expected_path)
    scale = expected.get("metric_scale", 1)
    if not Path(results_dir).is_dir():
        raise FileNotFoundError(f"--results {results_dir}: no such folder (it holds <condition>/<dataset>/*.metrics.json)")
    rows = []
    for condition in expected["conditions"]:
        ours_by_dataset = {}
        for entry in condition["datasets"]:
            for dataset_id in entry.get("over", [entry["dataset"]]):
                if dataset_id not in ours_by_dataset:
                    ours_by_dataset[dataset_id] = _record_of(Path(results_dir) / condition["name"], dataset_id)
            records = [ours_by_dataset[d] for d in entry.get("over", [entry["dataset"]])]
            cost = {name: _mean([_cost_value(r, name) for r in records]) for name in COST_COLUMNS}
            for metric, paper in entry["scores"].items():
                ours = _mean([r.get("metrics", {}).get(metric) for r in records])
                rows.append({"condition": condition["name"], "dataset": entry["dataset"], "metric": metric,
                             "paper": paper, "ours": None if ours is None else scale * ours, **cost})
    print(f"{'condition':16} {'dataset':38} {'metric':8} {'paper':>8} {'ours':>8} {'delta':>8} "
          f"{'thought':>8} {'tok/q':>8} {'think s/q':>10}")
    for row in rows:
        ours = "missing" if row["ours"] is None else f"{row['ours']:.2f}"
        delta = "" if row["ours"] is None else f"{row['ours'] - row['paper']:+.2f}"
        costs = [("" if row[name] is None else f"{row[name]:{spec}}") for name, spec in
                 zip(COST_COLUMNS, (".0%", ".1f", ".3f"))]
        print(f"{row['condition']:16} {row['dataset']:38} {row['metric']:8} {row['paper']:8.2f} {ours:>8} {delta:>8} "
              f"{costs[0]:>8} {costs[1]:>8} {costs[2]:>10}")
    if all(row["ours"] is None for row in rows):
        raise ValueError(f"--results {results_dir}: none of the {len(rows)} results of {expected_path} is there "
                         "(expected <results>/<condition>/<dataset>/*.metrics.json): wrong folder?")
    return rows


COST_COLUMNS = ("think_rate", "generated_tokens_per_query", "thinking_seconds_per_query")


def _record_of(condition_dir: Path, dataset_id: str) -> dict:
    found = sorted((condition_dir / slug(dataset_id)).glob("*.metrics.json"))
    if len(found) > 1:
        raise ValueError(f"{condition_dir / slug(dataset_id)}: several metrics files {found}; keep one per condition")
    return json.loads(found[0].read_text()) if found else {}


def _cost_value(record: dict, name: str) -> float | None:
    cost = record.get("cost")
    if not cost:
        return None
    if name == "think_rate":
        return cost["queries_thought"] / max(record.get("num_queries", 0), 1)
    return cost[name]


def _mean(values: list) -> float | None:
    return None if not values or None in values else sum(values) / len(values)


def regress(regressions: Path, base: EvalConfig) -> list[str]:
    """Run every condition of a 2CR-style YAML and return the scores that moved beyond its tolerance."""
    spec = readers.yaml_file(regressions)
    tolerance = check_regressions(spec, regressions)
    failures = []
    for condition in spec["conditions"]:
        retriever = retrievers.RetrieverSpec(condition["retriever"], **condition.get("options", {}))
        for entry in condition["datasets"]:
            record = evaluate(EvalConfig(**{**base.__dict__, "dataset": entry["dataset"], "retriever": retriever,
                                            "hits": spec.get("hits", base.hits), "metrics": list(entry["scores"])}))
            for metric, pinned in entry["scores"].items():
                got = record["metrics"][metric]
                if abs(got - pinned) > tolerance:
                    failures.append(f"{condition['name']} {entry['dataset']} {metric}: pinned {pinned:.4f}, "
                                    f"got {got:.4f} (tolerance {tolerance})")
    return failures


def check_regressions(spec: dict, path) -> float:
    """The tolerance of a regressions YAML whose every entry pins at least one number: an entry that
    pins nothing would pass without checking anything."""
    try:
        tolerance = float(spec["tolerance"])
        conditions = spec["conditions"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: needs a numeric 'tolerance' and a list of 'conditions'") from None
    if not conditions or not 0 <= tolerance < 1:
        raise ValueError(f"{path}: needs at least one condition and a tolerance in [0, 1), got {tolerance}")
    for condition in conditions:
        name = condition.get("name", "?")
        if not condition.get("retriever") or not condition.get("datasets"):
            raise ValueError(f"{path}: condition {name!r} needs a retriever and at least one dataset")
        for entry in condition["datasets"]:
            scores = entry.get("scores")
            if not entry.get("dataset") or not isinstance(scores, dict) or not scores or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
                raise ValueError(f"{path}: condition {name!r}, dataset {entry.get('dataset')!r}: 'scores' must pin "
                                 "at least one metric to a number (an entry without one checks nothing)")
    return tolerance
