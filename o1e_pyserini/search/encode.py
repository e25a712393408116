"""python -m o1e_pyserini.encode: Pyserini's own ``pyserini.encode`` (sub-commands input / output / encoder,
every flag unchanged) with o1e's document encoders registered, for corpora laid out the Pyserini way.

    python -m o1e_pyserini.encode input --corpus corpus.jsonl --fields title text \\
        output --embeddings index-dir --to-faiss \\
        encoder --encoder ckpt --fields title text --device cpu --dimension 4096 --batch-size 32

A family's encoder is used when ``--encoder`` is its checkpoint (o1e_config.json names the family),
when its path contains "o1e" / "debater", or with ``--encoder-class o1e|debater`` (DEBATER: the last
step's vector; a max-steps index comes from ``o1e_tevatron.driver.encode``); a release in its authors'
layout is recognised as its family (``o1e_tevatron.families.release``). ``--o1e-trust-remote-code`` (taken out
before Pyserini parses the rest) runs the model folder's code, as MiniCPM needs. Mind Pyserini's defaults:
``--device cuda:0`` and ``--dimension 768`` (set it to the model's hidden size).
``python -m o1e_tevatron.driver.encode`` does the same job with Tevatron's flags, sharding and resuming.
"""
import functools
import runpy
import sys
from pathlib import Path

import o1e_pyserini  # noqa: F401  (prepares Java before Pyserini starts it)

from o1e_tevatron.core.errors import InputError, run_command
from o1e_tevatron.core.readers import json_records

from ..encoders.registry import ENCODERS, register, registry_keys

TRUST_REMOTE_CODE = "--o1e-trust-remote-code"


def check_corpus(argv: list[str]) -> None:
    """Read every file of ``--corpus`` (a file, or a folder's files, as Pyserini reads them) through o1e's
    reader layer first: Pyserini ends a torn line in a bare JSON error that names neither file nor line."""
    if "--corpus" not in argv[:-1]:
        return
    path = Path(argv[argv.index("--corpus") + 1])
    if not path.exists():
        raise InputError("no such corpus file or folder", path)
    for file in [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file()):
        for _ in json_records(file):
            pass


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    check_corpus(argv)
    trusted = TRUST_REMOTE_CODE in argv
    argv, keys = registry_keys([arg for arg in argv if arg != TRUST_REMOTE_CODE])
    register(keys, document_encoders={family: functools.partial(classes[1], trust_remote_code=True)
                                      for family, classes in ENCODERS.items()} if trusted else None)
    sys.argv = ["pyserini.encode"] + argv
    runpy.run_module("pyserini.encode", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    run_command(main)
