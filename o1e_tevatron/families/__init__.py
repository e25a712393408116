"""Retriever families on one base: O1E (``o1e_tevatron.modeling``) and DEBATER (``families.debater``)."""
