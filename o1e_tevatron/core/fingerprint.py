"""Content fingerprints: what a cached index or an encoded shard was made from.

A cache keyed by a path goes stale without a word when the file behind the path changes (a model
retrained into the same folder, another model copied there, a corpus edited in place), so o1e keys
its caches by content: the bytes of the model's weights, config and tokenizer files, the corpus
files, and every setting that changes a vector.

Hashing a multi-GB checkpoint costs seconds, so each file's digest (BLAKE2b) is remembered in
``$O1E_CACHE/file-digests.json`` under (path, size, mtime_ns, ctime_ns, inode). Any write to a file
moves its ctime, which no tool can set back, so a remembered digest is never used for changed bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

O1E_CACHE = Path(os.environ.get("O1E_CACHE", Path.home() / ".cache" / "o1e"))
DIGESTS_NAME = "file-digests.json"
#: Files and folders of a model folder that do not change its vectors (training state, other checkpoints).
IGNORED_NAMES = {"trainer_state.json", "training_args.bin", "optimizer.pt", "scheduler.pt", "README.md", "merged",
                 "runs"}
IGNORED_PREFIXES = (".", "checkpoint-", "rng_state")


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


class _DigestCache:
    """Remembered file digests; a damaged or unwritable cache file only costs a re-hash."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.digests = json.loads(path.read_text())
        except (OSError, ValueError):
            self.digests = {}
        if not isinstance(self.digests, dict):  # valid JSON but not a digest map (`null`, a list): re-hash
            self.digests = {}

    def digest(self, path: Path) -> str:
        key = _stat_key(path)
        if key not in self.digests:
            with open(path, "rb") as f:
                self.digests[key] = hashlib.file_digest(f, "blake2b").hexdigest()
            self._save()
        return self.digests[key]

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.digests))
            os.replace(tmp, self.path)
        except OSError:
            pass


def file_digest(path: str | Path) -> str:
    return _DigestCache(O1E_CACHE / DIGESTS_NAME).digest(Path(path))


def _relevant(path: Path) -> bool:
    return path.name not in IGNORED_NAMES and not path.name.startswith(IGNORED_PREFIXES) and path.suffix != ".log"


def path_fingerprint(path: str | Path) -> str:
    """Digest of a file, or of a folder's files (names and contents, training state and nested
    checkpoints left out)."""
    path = Path(path)
    cache = _DigestCache(O1E_CACHE / DIGESTS_NAME)
    if path.is_file():
        return cache.digest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder to fingerprint")
    entries = []
    pending = [path]
    while pending:
        folder = pending.pop()
        for child in sorted(folder.iterdir()):
            if not _relevant(child):
                continue
            if child.is_dir():
                pending.append(child)
            elif child.is_file():
                entries.append((child.relative_to(path).as_posix(), cache.digest(child)))
    return hashlib.blake2b(json.dumps(sorted(entries)).encode()).hexdigest()


def model_fingerprint(name_or_path: str) -> str:
    """A local model folder by content (an adapter together with the base it names, when that base is
    a local folder); a hub name by its name (the hub's revision is the hub's business)."""
    path = Path(name_or_path)
    if not path.exists():
        return f"name:{name_or_path}"
    parts = [path_fingerprint(path)]
    adapter_config = path / "adapter_config.json"
    if adapter_config.is_file():
        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if base:
            parts.append(model_fingerprint(base))
    return "+".join(parts)


def fingerprint(**parts) -> str:
    """One digest of named parts (fingerprints and settings); changing any part changes it."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=20).hexdigest()
