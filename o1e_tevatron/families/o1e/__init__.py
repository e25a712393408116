"""O1 Embedder: one decoder LM that thinks (LM head) and embeds (the hidden state at ``<emb>``).

``template`` lays out token ids (special tokens, the paper / authors' / chat layouts), ``prompts`` is
the teacher prompt the chat layout shares with synthesis, ``model`` pools and computes the vector loss
parts, ``loss`` is the thought-generation loss (eq. 7) read from the same hidden states."""
