"""DEBATER encoders on Pyserini's interfaces.

``DebaterQueryEncoder`` embeds ``{instruction} {query}</s>`` at ``</s>``; the instruction is the
checkpoint's, or the task's (``instruction``, or Pyserini's ``--query-prefix``; :data:`INSTRUCTIONS`
has DEBATER's per-task ones). ``DebaterDocumentEncoder`` embeds ``passage + step prompt + M step
tokens`` and returns the last step's vector (``scoring='last'``, the default index); ``encode_steps``
returns all M, which a ``max-steps`` index holds (see ``o1e_tevatron.families.debater.model.index_rows``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from pyserini.encode import QueryEncoder

from o1e_tevatron.families.debater.model import DebaterModel
from o1e_tevatron.core.encoding import encode_sequences

from .base import FamilyDocumentEncoder, load_family_model, report_ignored
from .o1e import check_queries

#: Per-task query instructions (E5-Mistral's, as DEBATER's llm2vec-based code uses them, ending with ':'),
#: keyed by the ir_datasets id's dataset name.
INSTRUCTIONS = {
    "arguana": "Given a claim, find documents that refute the claim:",
    "climate-fever": "Given a claim about climate change, retrieve documents that support or refute the claim:",
    "dbpedia-entity": "Given a query, retrieve relevant entity descriptions from DBPedia:",
    "fever": "Given a claim, retrieve documents that support or refute the claim:",
    "fiqa": "Given a financial question, retrieve user replies that best answer the question:",
    "hotpotqa": "Given a multi-hop question, retrieve documents that can help answer the question:",
    "msmarco-passage": "Given a web search query, retrieve relevant passages that answer the query:",
    "nfcorpus": "Given a question, retrieve relevant documents that best answer the question:",
    "nq": "Given a question, retrieve Wikipedia passages that answer the question:",
    "quora": "Given a question, retrieve questions that are semantically equivalent to the given question:",
    "scidocs": "Given a scientific paper title, retrieve paper abstracts that are cited by the given paper:",
    "scifact": "Given a scientific claim, retrieve documents that support or refute the claim:",
    "trec-covid": "Given a query on COVID-19, retrieve documents that answer the query:",
    "webis-touche2020": "Given a question, retrieve detailed and persuasive arguments that answer the question:",
    # o1e's, in the same form: DEBATER's table has no code task, and a checkpoint's own (a SciFact-trained
    # one's "scientific claim") would misdescribe web queries for code
    "cosqa": "Given a web search query, retrieve code that answers the query:",
}


def task_instruction(dataset_id: str) -> Optional[str]:
    """DEBATER's instruction for an ir_datasets id such as ``beir/scifact/test`` (None when unknown)."""
    parts = dataset_id.lower().split("/")
    return next((INSTRUCTIONS[p] for p in parts if p in INSTRUCTIONS), None)


class DebaterQueryEncoder(QueryEncoder):
    """Query vectors from a DEBATER checkpoint: ``[bos] instruction query </s>``, pooled at ``</s>``."""

    def __init__(self, encoder_dir: str, instruction: Optional[str] = None, device: str = "cpu",
                 dtype: str = "float32", fp16: bool = False, batch_size: int = 16,
                 base_model_name_or_path: Optional[str] = None, prefix: Optional[str] = None,
                 trust_remote_code: bool = False, **pyserini_options):
        super().__init__()
        report_ignored(type(self).__name__, pyserini_options)
        self.has_model = True
        self.model = load_family_model(DebaterModel, encoder_dir, device, dtype, fp16, base_model_name_or_path,
                                       trust_remote_code)
        instruction = instruction if instruction is not None else prefix
        self.template = self.model.template if instruction is None else self.model.template.with_instruction(instruction)
        self.batch_size = batch_size

    @property
    def dimension(self) -> int:
        return self.model.causal_lm.config.hidden_size

    def encode(self, query: str, **kwargs) -> np.ndarray:
        return self.encode_batch([query])[0]

    def encode_batch(self, queries: Sequence[str], ids: Optional[Sequence[str]] = None, **kwargs) -> np.ndarray:
        queries = list(queries)
        check_queries(queries, ids)
        t = self.template
        return encode_sequences(self.model, [t.plain_query(q) for q in t.tokenize_queries(queries)],
                                self.batch_size, query=True)


class DebaterDocumentEncoder(FamilyDocumentEncoder):
    """Passage vectors: the last step's (``encode``), or all M steps' (``encode_steps``)."""

    family = DebaterModel

    @property
    def num_steps(self) -> int:
        return len(self.model.template.step_ids)

    def encode_steps(self, texts: Sequence[str], titles: Optional[Sequence[str]] = None, **kwargs) -> np.ndarray:
        """(n, M, d) float32: one unit vector per step token."""
        return self.passage_vectors(texts, titles)

    def encode(self, texts: Sequence[str], titles: Optional[Sequence[str]] = None, **kwargs) -> np.ndarray:
        """(n, d) float32: the last step's vector, the one self-distillation trains for search."""
        return np.ascontiguousarray(self.encode_steps(texts, titles)[:, -1])
