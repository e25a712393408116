"""What both sides share, with no Trainer and no Pyserini in it: tensor helpers (``tensors``: padding,
positions from masks), the batched encode loop, shard slicing and faiss index folders (``encoding``),
text readers with file:line errors (``readers``, ``textfile``) and the training-row format (``rows``),
vector files (``vectors``), fingerprints, redaction, one-line errors, safe checkpoint saves and base
checks (``checkpoint``), the Java set-up for Pyserini (``java``) and the one-release aliases of moved
names (``deprecation``). Imports nothing of o1e outside ``core``."""
