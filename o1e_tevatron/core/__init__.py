"""Pieces both sides import: no Trainer, no Pyserini."""
