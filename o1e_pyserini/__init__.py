"""o1e's search side: thought-augmented query encoders for Pyserini.

Importing this package prepares Java for Pyserini 1.6.0 (see ``o1e_pyserini._java``).
"""
from ._java import prepare_java

prepare_java()
