"""Thought synthesis (paper sec. 2.2): a teacher LLM proposes k thoughts per query (generate), a
retrieval committee keeps the one closest to the positive passage (vote); the trainer reads the result."""
