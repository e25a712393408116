"""The teacher prompt of the paper (Table 7), kept in one place and overridable from a JSON file.

The user prompt follows the authors' layout: the task, m in-context examples "Query: q_i /
Response: d_i" whose responses are training positives, then the query and an open "Response:".
With grounding, the query's retrieved passages ("[1] ...", each cut to a word budget) stand before
the query. The ``chat`` template layout of o1e's student renders the same prompt (without examples)
through the backbone's chat template, so teacher and student read one prompt.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from o1e_tevatron.core import readers
from o1e_tevatron.core.errors import InputError

SYSTEM_PROMPT = (
    "You are a helpful assistant. Your answer should follow the task description. Do not ask the user "
    "for further clarification. Don't repeat the query, just give the response."
)
TASK = "Think about a plausible response to address the query."
USER_TEMPLATE = "Task: \n{task}\n\n{examples}{passages}Query: \n{query}\nResponse: "
EXAMPLES_TEMPLATE = "Examples: \n{examples}\n\n"
EXAMPLE_TEMPLATE = "Query: {query}\nResponse: {response}"
PASSAGES_TEMPLATE = "Passages retrieved for the query: \n{passages}\n\n"
PASSAGE_TEMPLATE = "[{rank}] {text}"


def cut_words(text: str, max_words: int) -> str:
    """A grounding passage cut to its first ``max_words`` whitespace-separated words: one budget for
    the teacher and the student, whatever their tokenizers."""
    return " ".join(text.split()[:max_words])


@dataclass(frozen=True)
class TeacherPrompt:
    system: str = SYSTEM_PROMPT
    task: str = TASK
    user_template: str = USER_TEMPLATE
    examples_template: str = EXAMPLES_TEMPLATE
    example_template: str = EXAMPLE_TEMPLATE
    passages_template: str = PASSAGES_TEMPLATE
    passage_template: str = PASSAGE_TEMPLATE

    @classmethod
    def from_file(cls, path: str | Path) -> "TeacherPrompt":
        """Override any of the fields (system, task, user_template, example_template) from a JSON object whose
        values are strings (``core.readers.json_object``: null or a number is refused, naming the key)."""
        overrides = readers.json_object(path, {f.name: readers.text for f in fields(cls)})
        prompt = cls(**overrides)
        try:  # fail now, naming the file, rather than mid-run
            prompt.user(query="q", examples=[("q", "d")], passages=["p"])
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(f"a template uses an unknown placeholder or bad braces: {e!r}", path,
                             hint="use {task}, {examples}, {passages}, {query}, {response}, {rank}, {text}") from None
        return prompt

    def examples_block(self, examples: Sequence[tuple[str, str]]) -> str:
        if not examples:
            return ""
        shown = "\n".join(self.example_template.format(query=q, response=d) for q, d in examples)
        return self.examples_template.format(examples=shown)

    def passages_block(self, passages: Sequence[str]) -> str:
        """The grounding passages (already cut), ranked from 1; empty without passages."""
        if not passages:
            return ""
        shown = "\n".join(self.passage_template.format(rank=i, text=p) for i, p in enumerate(passages, 1))
        return self.passages_template.format(passages=shown)

    def user(self, query: str, examples: Sequence[tuple[str, str]], passages: Sequence[str] = ()) -> str:
        return self.user_template.format(task=self.task, examples=self.examples_block(examples),
                                         passages=self.passages_block(passages), query=query)

    def chat_messages(self, query: str, examples: Sequence[tuple[str, str]], passages: Sequence[str] = ()) -> list[dict]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user(query, examples, passages)}]

    def completion_prompt(self, query: str, examples: Sequence[tuple[str, str]], passages: Sequence[str] = ()) -> str:
        """For plain completions endpoints (no chat template on the server side)."""
        return f"{self.system}\n\n{self.user(query, examples, passages)}"
