"""Teacher thoughts for training rows: ``python -m o1e_tevatron.synthesis.generate``.

Each row gets one request to an OpenAI-compatible chat or completions endpoint (vLLM, or any
other) asking for ``n = num_candidates`` samples of the paper's prompt (Table 7) with
``num_examples`` random in-context examples. The row is written back with ``thought_candidates``.

Nothing lost, nothing twice: each result is appended and flushed as one line; a restart reads the
output, drops a torn last line, and skips every row already there. Timeouts, connection errors,
429 and 5xx are retried with exponential backoff; a malformed or empty answer, or a row that ran
out of retries, goes to the failures file with its row id and is tried again by the next run.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import openai
from tqdm import tqdm
from transformers import HfArgumentParser

from o1e_tevatron.core.errors import EXIT_PARTIAL, run_command
from o1e_tevatron.core.redact import install_log_redaction, json_line, redact, register_secret, register_url_secrets
from o1e_tevatron.core.rows import TrainingRow
from o1e_tevatron.families.o1e.prompts import TeacherPrompt, cut_words
from o1e_tevatron.synthesis.rows import iter_rows, refuse_writing_into_input, resume_output

logger = logging.getLogger(__name__)


@dataclass
class GenerateArguments:
    input_path: str = field(metadata={"help": "Training rows: a JSONL file, a folder of *.jsonl (Tevatron or "
                                              "authors' format), or a BEIR folder with qrels/<qrels_split>.tsv."})
    output_path: str = field(metadata={"help": "JSONL the rows are appended to, each with thought_candidates."})
    failures_path: Optional[str] = field(default=None, metadata={
        "help": "JSONL of the rows that failed in this run (default: <output_path>.failures.jsonl)."})
    qrels_split: str = field(default="train", metadata={"help": "Qrels split of a BEIR input folder."})
    base_url: str = field(default="http://localhost:8000/v1", metadata={"help": "OpenAI-compatible endpoint."})
    model: str = field(default="meta-llama/Llama-3.1-70B-Instruct", metadata={"help": "Served model name."})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "Environment variable holding the API key (the key itself is never a flag and never logged)."})
    endpoint: str = field(default="chat", metadata={"choices": ["chat", "completions"],
                                                    "help": "/v1/chat/completions or /v1/completions."})
    prompts_file: Optional[str] = field(default=None, metadata={
        "help": "JSON object overriding system / task / user_template / example_template of the prompt."})
    num_candidates: int = field(default=3, metadata={"help": "k thoughts per query, asked for as n=k in one request."})
    num_examples: int = field(default=3, metadata={"help": "m in-context examples (never the row's own positive)."})
    example_max_chars: int = field(default=2048, metadata={"help": "Cut each example response to this length."})
    grounding_passages: int = field(default=0, metadata={
        "help": "Show the row's first K 'grounding' passages (python -m o1e_pyserini.grounding) before the query; "
                "0: none. Train the student with the same --grounding_passages."})
    grounding_max_words: int = field(default=48, metadata={"help": "Words kept of each grounding passage."})
    temperature: float = field(default=1.0)
    top_p: float = field(default=1.0)
    max_tokens: int = field(default=512)
    concurrency: int = field(default=64, metadata={"help": "Requests in flight at once."})
    request_timeout: float = field(default=120.0, metadata={"help": "Seconds before a request counts as timed out."})
    max_retries: int = field(default=5, metadata={"help": "Retries of a row on timeouts, connection errors, 429, 5xx."})
    retry_backoff: float = field(default=1.0, metadata={"help": "First backoff in seconds; doubles, with jitter."})
    retry_backoff_max: float = field(default=60.0)
    seed: int = field(default=42, metadata={"help": "Seeds the example draw per row (stable across restarts)."})
    server_seed: bool = field(default=True, metadata={
        "help": "Send a per-row sampling seed (from --seed and the row id) so that servers that honour it (vLLM) "
                "answer a row the same way on a rerun; --server_seed false for servers that refuse the field."})

    def __post_init__(self):
        if self.failures_path is None:
            self.failures_path = self.output_path + ".failures.jsonl"
        if self.num_candidates < 1 or self.num_examples < 0 or self.concurrency < 1 or self.max_retries < 0:
            raise ValueError("num_candidates and concurrency must be >= 1; num_examples and max_retries >= 0")
        if self.grounding_passages < 0 or self.grounding_max_words < 1:
            raise ValueError("grounding_passages must be >= 0 and grounding_max_words >= 1")
        refuse_writing_into_input(self.input_path, output_path=self.output_path, failures_path=self.failures_path)


class MalformedResponse(Exception):
    """The server answered, but not with num_candidates non-empty texts."""


RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)  # timeouts included
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)  # would fail every row


def retry_after(error: Exception, longest: float) -> float:
    """Seconds a 429/503 answer asked us to wait (Retry-After), else 0; capped at ``longest``
    (``--retry_backoff_max``) with a warning: a server asking for a day would otherwise hold the run."""
    response = getattr(error, "response", None)
    try:
        asked = float(response.headers.get("retry-after", 0)) if response is not None else 0.0
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0
    if not math.isfinite(asked) or asked > longest:
        logger.warning("the server asked to retry after %s s; waiting --retry_backoff_max %g s instead", asked, longest)
        return longest
    return max(asked, 0.0)


def row_seed(seed: int, row_id: str) -> int:
    """A row's sampling seed for the server: stable across restarts and distinct per row (31 bits: servers
    take a signed 32- or 64-bit integer)."""
    digest = hashlib.blake2b(f"{seed}:{row_id}".encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little") % (2 ** 31 - 64)  # room for the +len(texts) of a re-ask


def pick_examples(pool: list[tuple[str, str]], row: TrainingRow, m: int, seed: int,
                  max_chars: int) -> list[tuple[str, str]]:
    """m distinct (query, positive) pairs of the pool (every row's query and first positive), never one
    whose positive is this row's; drawn per row id, so a restart gives a row the same examples."""
    rng = random.Random(f"{seed}:{row.row_id}")
    own, chosen, used = set(row.positives), [], set()
    for _ in range(50 * m):
        if len(chosen) == m:
            break
        i = rng.randrange(len(pool))
        if i not in used and pool[i][1] not in own:
            used.add(i)
            chosen.append((pool[i][0], pool[i][1][:max_chars]))
    if len(chosen) < m:
        raise ValueError(f"row {row.row_id} ({row.source}): could not draw {m} in-context examples "
                         f"with a different positive from {len(pool)} rows")
    return chosen


class Teacher:
    """One OpenAI-compatible endpoint; retries are ours (the client's own are off) so they are counted."""

    def __init__(self, args: GenerateArguments, prompt: TeacherPrompt):
        self.args, self.prompt = args, prompt
        api_key = os.environ.get(args.api_key_env)
        register_secret(api_key)
        register_url_secrets(args.base_url)
        self.client = openai.AsyncOpenAI(base_url=args.base_url, api_key=api_key or "EMPTY",
                                         timeout=args.request_timeout, max_retries=0)
        self.retries = 0
        self.partial_n_seen = False

    async def _request(self, query: str, examples: list[tuple[str, str]], passages: Sequence[str] = (),
                       seed: int | None = None) -> list[str]:
        """k candidates. Servers that ignore ``n`` (``transformers serve`` answers one choice) are asked
        again for the rest, with the same prompt (and the seed moved on, lest a seeded server repeat
        itself), until k texts are in."""
        texts: list[str] = []
        while len(texts) < self.args.num_candidates:
            more = await self._ask(query, examples, self.args.num_candidates - len(texts), passages,
                                   None if seed is None else seed + len(texts))
            if not more:
                raise MalformedResponse("the server answered with no choices")
            if len(more) < self.args.num_candidates - len(texts) and not self.partial_n_seen:
                self.partial_n_seen = True
                logger.info("the server answered %d of n=%d choices: asking again for the rest",
                            len(more), self.args.num_candidates - len(texts))
            texts += more
        texts = texts[: self.args.num_candidates]
        if not all(texts):
            raise MalformedResponse(f"expected {self.args.num_candidates} non-empty candidates, got "
                                    f"{sum(map(bool, texts))} non-empty of {len(texts)}")
        return texts

    async def _ask(self, query: str, examples: list[tuple[str, str]], n: int, passages: Sequence[str] = (),
                   seed: int | None = None) -> list[str]:
        a = self.args
        sampling = dict(model=a.model, n=n, temperature=a.temperature, top_p=a.top_p, max_tokens=a.max_tokens)
        if seed is not None:
            sampling["seed"] = seed
        try:
            if a.endpoint == "chat":
                response = await self.client.chat.completions.create(
                    messages=self.prompt.chat_messages(query, examples, passages), **sampling)
                texts = [choice.message.content for choice in response.choices]
            else:
                response = await self.client.completions.create(
                    prompt=self.prompt.completion_prompt(query, examples, passages), **sampling)
                texts = [choice.text for choice in response.choices]
        except (ValueError, AttributeError, TypeError, openai.APIResponseValidationError) as e:  # JSON / shape
            raise MalformedResponse(f"unparsable response: {e!r:.300}") from e
        return [t.strip() if isinstance(t, str) else "" for t in texts]

    async def candidates(self, query: str, examples: list[tuple[str, str]], passages: Sequence[str] = (),
                         seed: int | None = None) -> list[str]:
        """k thoughts, retrying transient errors with exponential backoff and full jitter."""
        for attempt in range(self.args.max_retries + 1):
            try:
                return await self._request(query, examples, passages, seed)
            except FATAL:
                raise
            except RETRYABLE as e:
                if attempt == self.args.max_retries:
                    raise
                self.retries += 1
                backoff = random.uniform(0, min(self.args.retry_backoff_max, self.args.retry_backoff * 2 ** attempt))
                await asyncio.sleep(max(backoff, retry_after(e, self.args.retry_backoff_max)))
        raise AssertionError("unreachable")


def grounding_of(row: TrainingRow, args: GenerateArguments) -> list[str]:
    """The passages the teacher reads before the query: the row's first ``grounding_passages``, each cut
    to ``grounding_max_words`` words, exactly as the chat layout shows them to the student."""
    if not args.grounding_passages:
        return []
    if row.grounding is None:
        raise ValueError(f"{row.source}: --grounding_passages {args.grounding_passages} but the row has no "
                         "'grounding' passages (python -m o1e_pyserini.grounding adds them)")
    return [cut_words(p, args.grounding_max_words) for p in row.grounding[: args.grounding_passages]]


@dataclass
class GenerateSummary:
    rows: int
    already_done: int
    written: int
    failed: int
    retries: int
    seconds: float
    rows_per_second: float
    candidates_per_second: float


async def generate(args: GenerateArguments) -> GenerateSummary:
    prompt = TeacherPrompt.from_file(args.prompts_file) if args.prompts_file else TeacherPrompt()
    output = Path(args.output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = resume_output(output)
    pool, already_done = [], 0  # a first pass keeps only (query, positive) per row, for the examples
    for row in iter_rows(args.input_path, args.qrels_split):
        grounding_of(row, args)  # a row without its passages fails now, naming its line, not mid-run
        pool.append((row.query, row.positives[0]))
        already_done += row.row_id in done
    pending = len(pool) - already_done
    logger.info("%d rows, %d already done, %d to generate", len(pool), already_done, pending)

    teacher = Teacher(args, prompt)
    written = failed = 0
    started = time.monotonic()
    # the second pass streams the rows, shared by the workers (asyncio runs one at a time: no lock needed)
    queue = (row for row in iter_rows(args.input_path, args.qrels_split) if row.row_id not in done)
    with open(output, "a", encoding="utf-8") as out, open(args.failures_path, "w", encoding="utf-8") as failures, \
            tqdm(total=len(pool), initial=already_done, unit="row", desc="thoughts",
                 dynamic_ncols=True) as bar:

        async def worker():
            nonlocal written, failed
            for row in queue:
                try:
                    examples = pick_examples(pool, row, args.num_examples, args.seed, args.example_max_chars)
                    thoughts = await teacher.candidates(row.query, examples, grounding_of(row, args),
                                                        row_seed(args.seed, row.row_id) if args.server_seed else None)
                except FATAL:
                    raise
                except (MalformedResponse, openai.OpenAIError) as e:
                    failed += 1
                    failures.write(json.dumps({"row_id": row.row_id, "source": row.source,
                                               "error": redact(f"{type(e).__name__}: {e}")[:1000]}) + "\n")
                    failures.flush()
                else:
                    out.write(json_line({**row.record, "thought_candidates": thoughts}))
                    out.flush()
                    written += 1
                bar.update()
                bar.set_postfix(failed=failed, retries=teacher.retries, refresh=False)

        await asyncio.gather(*(worker() for _ in range(min(args.concurrency, max(1, pending)))))
    await teacher.client.close()
    seconds = time.monotonic() - started
    return GenerateSummary(rows=len(pool), already_done=already_done, written=written, failed=failed,
                           retries=teacher.retries, seconds=round(seconds, 3),
                           rows_per_second=round(written / seconds, 3) if seconds else 0.0,
                           candidates_per_second=round(written * args.num_candidates / seconds, 3) if seconds else 0.0)


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    install_log_redaction()
    for chatty in ("httpx", "httpx2"):  # one line per request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    (args,) = HfArgumentParser(GenerateArguments).parse_args_into_dataclasses(argv)
    logger.info("arguments: %s", args)
    summary = asyncio.run(generate(args))  # a wrong key or model (every row would fail) ends in the boundary
    print(json.dumps(asdict(summary)))
    if summary.failed:
        logger.warning("%d rows failed (see %s); run the same command again to retry them",
                       summary.failed, args.failures_path)
    return 0 if summary.failed == 0 else EXIT_PARTIAL


if __name__ == "__main__":
    run_command(main)
