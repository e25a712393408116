"""Retriever families, each whole in its own package, on one base.

``base`` is the interface (text layout pieces every template shares, build/load/save, the training
forward and the objective); ``o1e/`` is O1 Embedder (template, teacher prompt, model, thought-generation
loss), ``debater/`` is DEBATER (step-token template and model, max-step loss parts); ``registry`` is the
family table (name -> model class; a checkpoint names its family and ``load_model`` dispatches on it),
and ``release`` recognises checkpoints in their authors' layouts. The search side may import this
package (and ``core``, ``models``); nothing here imports the trainer or Pyserini."""
