"""Evaluation fixtures: the shared topics/qrels folder and one index cache per test session."""
import pytest


@pytest.fixture(scope="session")
def topics_dir(shared_data):
    return shared_data / "topics-and-qrels"


@pytest.fixture(scope="session")
def index_root(tmp_path_factory):
    """Indexes built once per session and reused by every test that evaluates the same pair."""
    return tmp_path_factory.mktemp("indexes")


@pytest.fixture
def no_pyserini_cache(monkeypatch, tmp_path):
    """Hide ~/.cache/pyserini/topics-and-qrels so tests see only the files they name."""
    from o1e_pyserini.evaluation import datasets
    monkeypatch.setattr(datasets, "PYSERINI_TOPICS_DIR", tmp_path / "no-pyserini-cache")


@pytest.fixture(autouse=True)
def isolated_registry():
    """Local registrations replace ir_datasets' entries process-wide: undo them after each test."""
    import ir_datasets
    saved = dict(ir_datasets.registry._registered)
    yield
    ir_datasets.registry._registered.clear()
    ir_datasets.registry._registered.update(saved)


@pytest.fixture(scope="session")
def o1e_checkpoint(tiny_llama_dir, tmp_path_factory):
    """An untrained o1e adapter checkpoint on the tiny Llama (skips until the training side exists)."""
    modeling = pytest.importorskip("o1e_tevatron.families.o1e.model")
    pytest.importorskip("o1e_pyserini.encoders.o1e")
    out = tmp_path_factory.mktemp("o1e-ckpt")
    modeling.O1EModel.build(str(tiny_llama_dir), modeling.O1EConfig(), lora=True, lora_r=4, lora_alpha=8).save(out)
    return out
