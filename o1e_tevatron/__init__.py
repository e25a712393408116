"""o1e's training side: O1 Embedder as a Tevatron driver extension."""
