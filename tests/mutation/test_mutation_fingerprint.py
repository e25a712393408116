"""Content fingerprints checked by value (issue 24's mutation campaign): the digests are BLAKE2b of the
bytes, folders hash names and contents of their relevant files, remembered digests are keyed by the
file's identity and used, and a damaged or unwritable digest cache only costs a re-hash."""
import hashlib
import json
import os

import pytest

from o1e_tevatron.core import fingerprint as fp


def blake(data: bytes) -> str:
    return hashlib.blake2b(data).hexdigest()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setattr(fp, "O1E_CACHE", folder)
    return folder


def test_settings_fingerprint_is_a_pinned_20_byte_digest_of_the_sorted_parts(tmp_path):
    assert fp.fingerprint(b=2, a="x") == fp.fingerprint(a="x", b=2) == "fa68d5adee218164302c0f8106b7182cef81f0dc"
    assert fp.fingerprint() == "a22cbfd1a6f7d67d65014b57b47a96408c8f58b5"
    assert len(fp.fingerprint(a=1)) == 40
    assert fp.fingerprint(path=tmp_path) == fp.fingerprint(path=str(tmp_path))  # anything else by its str
    assert fp.fingerprint(a=1) != fp.fingerprint(a=2) != fp.fingerprint(b=2)


def test_the_stat_key_names_path_size_times_and_inode(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"12345")
    st = path.stat()
    assert fp._stat_key(path) == f"{path.resolve()}|5|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def test_a_file_digest_is_blake2b_of_its_bytes_and_is_remembered_on_disk(tmp_path, cache_dir):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    assert fp.file_digest(path) == fp.file_digest(str(path)) == blake(b"weights")
    remembered = json.loads((cache_dir / fp.DIGESTS_NAME).read_text())
    assert remembered == {fp._stat_key(path): blake(b"weights")}
    assert [p.name for p in cache_dir.iterdir()] == [fp.DIGESTS_NAME]  # no temporary file left


def test_the_digest_cache_is_written_under_folders_that_do_not_exist_yet(tmp_path, monkeypatch):
    nested = tmp_path / "fresh" / "home" / "cache"
    monkeypatch.setattr(fp, "O1E_CACHE", nested)
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    fp.file_digest(path)
    assert json.loads((nested / fp.DIGESTS_NAME).read_text()) == {fp._stat_key(path): blake(b"weights")}


def test_a_remembered_digest_is_used_without_reading_the_file(tmp_path, cache_dir):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    cache_dir.mkdir()
    (cache_dir / fp.DIGESTS_NAME).write_text(json.dumps({fp._stat_key(path): "remembered"}))
    assert fp.file_digest(path) == "remembered"
    assert fp.path_fingerprint(path) == "remembered"


def test_new_digests_are_added_to_the_remembered_ones(tmp_path, cache_dir):
    cache_dir.mkdir()
    (cache_dir / fp.DIGESTS_NAME).write_text(json.dumps({"other|1|2|3|4": "kept"}))
    path = tmp_path / "a"
    path.write_bytes(b"a")
    fp.file_digest(path)
    assert json.loads((cache_dir / fp.DIGESTS_NAME).read_text()) == {"other|1|2|3|4": "kept",
                                                                    fp._stat_key(path): blake(b"a")}


@pytest.mark.parametrize("damage", ["not json", "", "[1, 2", "null", "[1, 2]", "\"text\"", "3"])
def test_a_damaged_digest_cache_only_costs_a_rehash(tmp_path, cache_dir, damage):
    cache_dir.mkdir()
    (cache_dir / fp.DIGESTS_NAME).write_text(damage)
    path = tmp_path / "a"
    path.write_bytes(b"a")
    assert fp.file_digest(path) == blake(b"a")
    assert json.loads((cache_dir / fp.DIGESTS_NAME).read_text()) == {fp._stat_key(path): blake(b"a")}


def test_an_unwritable_digest_cache_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(fp, "O1E_CACHE", blocker / "cache")  # its parent is a file: mkdir fails
    path = tmp_path / "a"
    path.write_bytes(b"a")
    assert fp.file_digest(path) == blake(b"a")


def test_the_cache_is_written_through_a_temporary_file_of_this_process(tmp_path, cache_dir, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(fp.os, "replace", spy)
    path = tmp_path / "a"
    path.write_bytes(b"a")
    fp.file_digest(path)
    assert replaced == [(f"{fp.DIGESTS_NAME}.{os.getpid()}.tmp", fp.DIGESTS_NAME)]


@pytest.mark.parametrize("name, relevant", [
    ("model.safetensors", True), ("config.json", True), ("trainer_state.json", False), ("optimizer.pt", False),
    ("training_args.bin", False), ("scheduler.pt", False), ("README.md", False), ("merged", False),
    ("runs", False), (".git", False), ("checkpoint-10", False), ("rng_state_0.pth", False), ("train.log", False),
    ("log.txt", True), ("my-checkpoint-10", True),
])
def test_which_names_are_relevant(tmp_path, name, relevant):
    assert fp._relevant(tmp_path / name) is relevant


def test_a_folder_fingerprint_hashes_relative_names_and_contents_of_relevant_files(tmp_path):
    model = tmp_path / "model"
    (model / "sub" / "deeper").mkdir(parents=True)
    (model / "config.json").write_bytes(b"{}")
    (model / "sub" / "w.bin").write_bytes(b"w")
    (model / "sub" / "deeper" / "x.bin").write_bytes(b"x")
    (model / "checkpoint-5").mkdir()
    (model / "checkpoint-5" / "w.bin").write_bytes(b"old")
    (model / "trainer_state.json").write_text("{}")
    expected = hashlib.blake2b(json.dumps(sorted([
        ("config.json", blake(b"{}")), ("sub/deeper/x.bin", blake(b"x")), ("sub/w.bin", blake(b"w"))])).encode()).hexdigest()
    assert fp.path_fingerprint(model) == fp.path_fingerprint(str(model)) == expected
    (model / "trainer_state.json").write_text('{"step": 2}')  # irrelevant: same fingerprint
    assert fp.path_fingerprint(model) == expected
    (model / "sub" / "deeper" / "x.bin").write_bytes(b"y")  # relevant, nested two deep
    assert fp.path_fingerprint(model) != expected


def test_the_same_files_under_another_name_are_another_fingerprint(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "w1.bin").write_bytes(b"w")
    (tmp_path / "b" / "w2.bin").write_bytes(b"w")
    assert fp.path_fingerprint(tmp_path / "a") != fp.path_fingerprint(tmp_path / "b")


def test_an_empty_folder_has_the_fingerprint_of_no_entries(tmp_path):
    assert fp.path_fingerprint(tmp_path) == hashlib.blake2b(b"[]").hexdigest()


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'gone'}: no such file or folder to fingerprint$"):
        fp.path_fingerprint(tmp_path / "gone")


def test_model_fingerprints_of_a_hub_name_a_folder_and_an_adapter_with_its_base(tmp_path):
    assert fp.model_fingerprint("org/model") == "name:org/model"
    base = tmp_path / "base"
    base.mkdir()
    (base / "w.bin").write_bytes(b"base")
    assert fp.model_fingerprint(str(base)) == fp.path_fingerprint(base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert fp.model_fingerprint(str(adapter)) == f"{fp.path_fingerprint(adapter)}+{fp.path_fingerprint(base)}"
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    assert fp.model_fingerprint(str(adapter)) == f"{fp.path_fingerprint(adapter)}+name:org/base"
    for config in ({}, {"base_model_name_or_path": None}, {"base_model_name_or_path": ""}):
        (adapter / "adapter_config.json").write_text(json.dumps(config))
        assert fp.model_fingerprint(str(adapter)) == fp.path_fingerprint(adapter)
