"""An mteb model wrapper (mteb's EncoderProtocol) for every family, over the same Pyserini encoders as
the search CLI and the evaluation harness, so mteb scores what o1e searches.

    import mteb
    from o1e_pyserini.mteb import FamilyEncoder
    model = FamilyEncoder("ckpt/o1e-llama2", mode="think", num_thoughts=3)    # or mode="fast"
    model = FamilyEncoder("ckpt/debater")                                      # per-task instructions
    mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]))

The family comes from the checkpoint (``o1e_config.json``, or a release's layout: DEBATER's llm2vec
adapter, the O1 Embedder authors'; ``trust_remote_code=True`` for MiniCPM bases). O1E queries think
(``mode='think'``) or not (``'fast'``); DEBATER queries carry the task's instruction (mteb's query prompt
for the task, ending with ':' as DEBATER's do), and passages are the last step's vector (the default
index; a max-steps index is the harness's ``--debater-scoring max-steps``). Vectors are unit length:
scores are dot products.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.similarity_functions import dot_score, pairwise_dot_score
from mteb.types import PromptType

from o1e_tevatron.families.base import DEFAULT_FAMILY
from o1e_tevatron.families.release import recognise

from .encoders.registry import ENCODERS


class FamilyEncoder(AbsEncoder):
    """``query_options`` go to the family's query encoder (O1E: mode, num_thoughts, seed, ...);
    ``trust_remote_code`` (opt-in) runs the model folder's code, for both sides."""

    def __init__(self, model_name: str, revision: str | None = None, *, device: str = "cpu", batch_size: int = 32,
                 trust_remote_code: bool = False, **query_options: Any):
        self.family = recognise(model_name).family or DEFAULT_FAMILY
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self.query_options = {**query_options, "trust_remote_code": trust_remote_code}
        query_class, document_class = ENCODERS[self.family]
        self.query_class = query_class
        self.documents = document_class(model_name, device=device, batch_size=batch_size,
                                        trust_remote_code=trust_remote_code)
        self.query_encoders: dict[str, Any] = {}  # by instruction (DEBATER) or one (O1E)

    def query_encoder(self, task_metadata, prompt_type):
        instruction = ""
        if self.family == "debater":
            instruction = self.get_instruction(task_metadata, prompt_type).strip()
            if instruction and not instruction.endswith(":"):
                instruction += ":"
        if instruction not in self.query_encoders:
            options = {"instruction": instruction, "batch_size": self.batch_size} if self.family == "debater" else {}
            self.query_encoders[instruction] = self.query_class(self.model_name, device=self.device,
                                                                **options, **self.query_options)
        return self.query_encoders[instruction]

    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type: PromptType | None = None,
               **kwargs: Any) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        if prompt_type == PromptType.query:
            return self.query_encoder(task_metadata, prompt_type).encode_batch(texts)
        return self.documents.encode(texts)

    def similarity(self, embeddings1, embeddings2):
        return dot_score(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        return pairwise_dot_score(embeddings1, embeddings2)
