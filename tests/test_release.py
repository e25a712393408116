"""Released checkpoints load as they are (o1e_tevatron.families.release): DEBATER's llm2vec adapter and the O1 Embedder
authors' adapter or merged model, written by tests/release_layouts.py as their authors' code saves them.
o1e's vectors equal the releases' own encoders' (re-implemented literally there), and a layout with a
missing piece is a one-line error naming it."""
import json
import logging
import re
import shutil

import numpy as np
import pytest
import torch

from o1e_tevatron.families.registry import load_model
from o1e_tevatron.families.debater.model import DebaterModel
from o1e_tevatron.families.o1e.model import O1EModel
from o1e_tevatron.tiny import demo_texts, train_tokenizer

from release_layouts import (INSTRUCTION, PASSAGES, QUERIES, STEP_TOKENS, debater_release,  # noqa: F401
                             debater_release_encode, last_positions_encode, minicpm_like_base, release_base,
                             save_o1e_authors_adapter)

torch.set_num_threads(1)


def assert_close(ours, release):
    np.testing.assert_allclose(ours, np.asarray(release), rtol=0, atol=1e-5)


@pytest.mark.parametrize("instruction", [INSTRUCTION, ""], ids=["instruction", "none"])
def test_debater_release_queries_equal_the_releases(debater_release, instruction, caplog):
    from o1e_pyserini.encoders.debater import DebaterQueryEncoder

    with caplog.at_level(logging.INFO, logger="o1e_tevatron.families.registry"):
        ours = DebaterQueryEncoder(str(debater_release), instruction=instruction).encode_batch(QUERIES)
    assert "DEBATER's release in llm2vec's layout" in caplog.text and "doc_max_length 96" in caplog.text
    assert_close(ours, debater_release_encode(debater_release, QUERIES, instruction))


def test_debater_release_passages_equal_the_releases(debater_release):
    from o1e_pyserini.encoders.debater import DebaterDocumentEncoder

    encoder = DebaterDocumentEncoder(str(debater_release))
    release = debater_release_encode(debater_release, PASSAGES, query=False)
    assert_close(encoder.encode_steps(PASSAGES), release)
    assert_close(encoder.encode(PASSAGES), release[:, -1])  # the last step by default


def test_the_encode_driver_writes_the_releases_step_vectors(debater_release, tmp_path):
    from o1e_tevatron.core.vectors import read_vectors
    from o1e_tevatron.driver.encode import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": p}) + "\n" for i, p in enumerate(PASSAGES)))
    assert main(["--model_name_or_path", str(debater_release), "--encode_in_path", str(corpus), "--debater_scoring",
                 "max-steps", "--encoded_save_path", str(tmp_path / "c.npz"), "--output_dir", str(tmp_path / "t")]) == 0
    vectors, ids = read_vectors(tmp_path / "c.npz")
    assert ids == [f"d{i}" for i in range(len(PASSAGES)) for _ in STEP_TOKENS]
    assert_close(vectors.reshape(len(PASSAGES), len(STEP_TOKENS), -1),
                 debater_release_encode(debater_release, PASSAGES, query=False))


def test_debater_release_keeps_its_steps_past_the_document_length(debater_release):
    """o1e's deliberate fix of the release: the passage is cut to doc_max_length before the steps."""
    model = load_model(debater_release)
    assert isinstance(model, DebaterModel)
    t = model.template
    ids = t.passage(t.tokenize(" ".join(demo_texts()[:3])))
    assert ids[-len(STEP_TOKENS):] == t.step_ids and len(ids) == 1 + 96 + len(t.prompt_ids) + len(STEP_TOKENS)


def test_the_release_is_registered_as_debater_and_trust_remote_code_is_an_opt_in(debater_release, caplog):
    from o1e_pyserini.encoders.registry import registry_keys

    assert registry_keys(["--encoder", str(debater_release)])[1][str(debater_release)] == "debater"
    with caplog.at_level(logging.WARNING):
        load_model(debater_release)
    assert "trust_remote_code" not in caplog.text
    with caplog.at_level(logging.WARNING):
        load_model(debater_release, trust_remote_code=True)
    assert "trust_remote_code is on: running the Python code" in caplog.text


def test_a_release_of_one_family_is_not_loaded_as_another(debater_release):
    with pytest.raises(ValueError, match="a debater model: load it as debater, not o1e"):
        load_model(debater_release, O1EModel)


def _break(folder, damage):
    if damage == "llm2vec_config":
        (folder / "llm2vec_config.json").unlink()
    elif damage == "adapter_config":
        (folder / "adapter_config.json").unlink()
    elif damage == "adapter_weights":
        (folder / "adapter_model.safetensors").unlink()
    elif damage == "pooling":
        (folder / "llm2vec_config.json").write_text(json.dumps({"pooling_mode": "mean", "doc_max_length": 96}))
    elif damage == "step_tokens":  # a tokenizer without MiniCPM's reserved tokens
        for path in folder.glob("tokenizer*"):
            path.unlink()
        train_tokenizer(demo_texts(), vocab_size=600).save_pretrained(folder)
    elif damage == "base":
        config = json.loads((folder / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = "/nowhere/MiniCPM"
        (folder / "adapter_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage, message", [
    ("llm2vec_config", "an adapter in no layout o1e knows: no o1e_config.json (o1e), no llm2vec_config.json "
                       "(DEBATER's release), no <query> </query> <thought> <emb> in its tokenizer"),
    ("adapter_config", "not a model folder: no adapter_config.json (an adapter) or config.json (a full model) "
                       "beside its llm2vec_config.json"),
    ("adapter_weights", "no adapter_model.safetensors beside adapter_config.json"),
    ("pooling", "llm2vec_config.json: pooling_mode 'mean', not DEBATER's 'M_token'"),
    ("step_tokens", "its tokenizer lacks or splits <reserved_12> <reserved_13>"),
    ("base", "its base /nowhere/MiniCPM is not reachable here"),
])
def test_a_release_with_a_missing_piece_is_named(debater_release, tmp_path, damage, message):
    folder = tmp_path / "release"
    shutil.copytree(debater_release, folder)
    _break(folder, damage)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_model(folder)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def padded_base(tmp_path_factory):
    return minicpm_like_base(tmp_path_factory.mktemp("qwen-like"), padded_rows=8)


@pytest.mark.parametrize("rows, padded", [("modules_to_save", False), ("trainable_tokens", False), ("merged", False),
                                          ("modules_to_save", True), ("none", True)])
def test_o1e_authors_checkpoints_with_their_rows_embed_as_theirs(release_base, padded_base, tmp_path, rows, padded):
    """Rows saved in the adapter, in the merged model, or (a base with more rows than its tokenizer, as
    Qwen2.5: their resize shrinks it) the base's own."""
    from o1e_pyserini.encoders.o1e import O1EDocumentEncoder, O1EQueryEncoder

    folder = tmp_path / "adapter"
    authors, tokenizer = save_o1e_authors_adapter(padded_base if padded else release_base, folder,
                                                  rows if rows != "merged" else "modules_to_save")
    passages = last_positions_encode(authors, tokenizer, [f"{p}<emb>" for p in PASSAGES], 1)[:, 0]
    queries = last_positions_encode(authors, tokenizer, [f"<query>{q}</query><thought><emb>" for q in QUERIES], 1)[:, 0]
    if rows == "merged":  # their save_merged_model: a full model and the tokenizer
        folder = tmp_path / "merged_model"
        authors.merge_and_unload().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    assert_close(O1EDocumentEncoder(str(folder)).encode(PASSAGES), passages)
    assert_close(O1EQueryEncoder(str(folder), mode="fast").encode_batch(QUERIES), queries)


def test_an_o1e_authors_adapter_without_its_rows_is_refused(release_base, tmp_path):
    save_o1e_authors_adapter(release_base, tmp_path / "adapter", "none")
    (tmp_path / "adapter" / "embedding").mkdir()
    (tmp_path / "adapter" / "embedding" / "emb.pth").write_bytes(b"")  # their pickled rows, never unpickled
    with pytest.raises(ValueError, match=r"no trained embedding rows for <query> </query> <thought> <emb>: the "
                                         r"tokenizer adds them beyond the \d+ rows of .* and the adapter saves none "
                                         r"\(embedding/emb.pth holds them as a pickle, which o1e does not load\)"):
        load_model(tmp_path / "adapter")
