"""A test/dev stand-in for a vLLM teacher: an OpenAI-compatible HTTP server on loopback, backed by
any local Hugging Face causal LM (in tests, a tiny random one from :mod:`o1e_tevatron.tiny`).

It serves ``/v1/chat/completions``, ``/v1/completions`` (with ``n``, ``temperature``, ``top_p``,
``max_tokens``) and ``/v1/models``, and can inject faults so that clients' retry and failure paths
run for real: a plan such as ``500,429,timeout,malformed,empty`` is served to the first requests,
in order, after which every request succeeds. ``echo400`` / ``echo401`` answer an error whose body
echoes the request's headers, Authorization included, as careless servers and proxies do; ``echo200``
answers successfully, with the Authorization header appended to every choice. ``GET /loopback/stats``
counts what was served.

    python -m o1e_tevatron.synthesis.loopback_server --model_name_or_path DIR --port 8000

Requests that arrive together with the same sampling settings are generated as one left-padded batch
(up to ``--max_batch_sequences`` sequences, waiting at most ``--batch_wait_s`` for company): on a CPU,
where a decode step of a small model costs about the same for 1 or 48 sequences, that is what makes a
real teacher (SmolLM2) usable. Not for production.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from transformers import AutoModelForCausalLM, AutoTokenizer, HfArgumentParser

from o1e_tevatron.models import resolve_model_path

FAULTS = ("timeout", "500", "429", "malformed", "empty", "echo400", "echo401", "echo200")


@dataclass
class LoopbackServerArguments:
    model_name_or_path: str = field(metadata={"help": "Local causal LM folder."})
    host: str = field(default="127.0.0.1")
    port: int = field(default=8000)
    served_model_name: str = field(default="loopback")
    max_prompt_tokens: int = field(default=256, metadata={"help": "Keep only the last tokens of a long prompt."})
    eos_bias: float = field(default=2.0, metadata={"help": "Logit bias on eos so a random model stops."})
    latency_s: float = field(default=0.0, metadata={"help": "Extra delay per request (a slower teacher)."})
    faults: str = field(default="", metadata={"help": f"Comma-separated plan from {FAULTS} for the first requests."})
    fault_delay_s: float = field(default=5.0, metadata={"help": "How long a 'timeout' fault hangs."})
    max_batch_sequences: int = field(default=48, metadata={"help": "Most sequences (requests x n) per generate call."})
    batch_wait_s: float = field(default=0.05, metadata={"help": "How long a request waits for others to batch with."})
    dtype: str = field(default="float32", metadata={
        "help": "float32 | bfloat16 | float16 (bfloat16 is ~3x faster on CPUs with AMX)."})
    ignore_n: bool = field(default=False, metadata={
        "help": "Answer one choice per request whatever n asks, as `transformers serve` does."})

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"--dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        unknown = [f for f in self.fault_plan() if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")

    def fault_plan(self) -> list[str]:
        return [f.strip() for f in self.faults.split(",") if f.strip()]


class LocalTeacher:
    """Samples n continuations of each prompt of a batch; one generate call at a time (the model is not
    thread-safe)."""

    def __init__(self, args: LoopbackServerArguments):
        self.args = args
        path = resolve_model_path(args.model_name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).eval()
        self.lock = threading.Lock()

    def render_chat(self, messages: list[dict]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def sample(self, prompts: list[str], n: int, max_tokens: int, temperature: float,
               top_p: float) -> list[list[tuple[str, str, int]]]:
        """For each prompt, n samples as (text, finish_reason, completion tokens)."""
        tok, eos = self.tokenizer, self.tokenizer.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        ids = [row[-self.args.max_prompt_tokens:] for row in tok(prompts, add_special_tokens=False).input_ids]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in ids])
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
        greedy = temperature <= 0  # n identical answers: generated once, repeated
        sampling = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p)
        bias = {"sequence_bias": {(eos,): self.args.eos_bias}} if self.args.eos_bias else {}
        with self.lock, torch.inference_mode():
            out = self.model.generate(
                input_ids, attention_mask=mask, num_return_sequences=1 if greedy else n, max_new_tokens=max_tokens,
                min_new_tokens=min(4, max_tokens), pad_token_id=pad, eos_token_id=eos, **bias, **sampling)
        results = []
        for seq in out[:, width:].tolist():
            stopped = eos in seq
            seq = seq[:seq.index(eos)] if stopped else seq
            results.append((tok.decode(seq, skip_special_tokens=True), "stop" if stopped else "length", len(seq)))
        if greedy:
            return [[answer] * n for answer in results]
        return [results[i * n:(i + 1) * n] for i in range(len(prompts))]


class Batcher:
    """Collects concurrent requests with equal sampling settings into one :meth:`LocalTeacher.sample` call."""

    def __init__(self, teacher: LocalTeacher, stats: collections.Counter):
        self.teacher, self.stats = teacher, stats
        self.queue: asyncio.Queue | None = None

    async def sample(self, prompt: str, settings: tuple) -> list[tuple[str, str, int]]:
        if self.queue is None:  # created in the server's own event loop
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((prompt, settings, future))
        return await future

    async def _run(self) -> None:
        args, held = self.teacher.args, []
        while True:
            if not held:
                held.append(await self.queue.get())
                await asyncio.sleep(args.batch_wait_s)  # let the requests that arrive together gather
            while not self.queue.empty():
                held.append(self.queue.get_nowait())
            settings = held[0][1]
            same = [item for item in held if item[1] == settings]
            batch = same[: max(1, args.max_batch_sequences // settings[0])]
            held = [item for item in held if not any(item is chosen for chosen in batch)]
            self.stats["batches"] += 1
            try:
                answers = await asyncio.to_thread(self.teacher.sample, [p for p, _, _ in batch], *settings)
            except Exception as error:  # noqa: BLE001 (every request of the batch gets the error)
                answers = [error] * len(batch)
            for (_, _, future), answer in zip(batch, answers):
                if not future.done():
                    future.set_exception(answer) if isinstance(answer, Exception) else future.set_result(answer)


def build_app(args: LoopbackServerArguments) -> FastAPI:
    teacher = LocalTeacher(args)
    plan = collections.deque(args.fault_plan())
    stats = collections.Counter()
    sampling_seen = collections.deque(maxlen=10_000)  # each request's n and seed, for tests of the client
    batcher = Batcher(teacher, stats)
    app = FastAPI(title="o1e loopback teacher (test/dev only)")

    async def answer(request: Request, chat: bool):
        body = await request.json()
        stats["requests"] += 1
        sampling_seen.append({"n": body.get("n"), "seed": body.get("seed")})  # seed: recorded, not honoured
        fault = plan.popleft() if plan else None
        if fault:
            stats[f"fault_{fault}"] += 1
        if args.latency_s:
            await asyncio.sleep(args.latency_s)
        if fault == "timeout":  # hang until the client gives up (or fault_delay_s); the answer is never read
            deadline = time.monotonic() + args.fault_delay_s
            while time.monotonic() < deadline and not await request.is_disconnected():
                await asyncio.sleep(0.05)
        elif fault in ("500", "429"):
            return JSONResponse({"error": {"message": f"injected {fault}", "type": "loopback_fault"}},
                                status_code=int(fault), headers={"retry-after": "0"} if fault == "429" else None)
        elif fault in ("echo400", "echo401"):
            return JSONResponse({"error": {"message": f"bad request, headers: {dict(request.headers)}",
                                           "type": "loopback_fault"}}, status_code=int(fault[-3:]))
        elif fault == "malformed":
            return Response('{"id": "cmpl-broken", "choices": [{"index": 0, "mess', media_type="application/json")
        prompt = teacher.render_chat(body["messages"]) if chat else body["prompt"]
        n = 1 if args.ignore_n else int(body.get("n") or 1)
        samples = await batcher.sample(prompt, (n, int(body.get("max_tokens") or 16),
                                                float(body.get("temperature", 1.0)), float(body.get("top_p", 1.0))))
        if fault == "empty":
            samples = [("", reason, 0) for _, reason, _ in samples]
        elif fault == "echo200":
            echo = f" (authorization: {request.headers.get('authorization')})"
            samples = [(text + echo, reason, tokens) for text, reason, tokens in samples]
        stats["ok"] += 1
        choices = [
            {"index": i, "finish_reason": reason, "logprobs": None,
             **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
            for i, (text, reason, _) in enumerate(samples)]
        completion_tokens = sum(t for _, _, t in samples)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": args.served_model_name, "choices": choices,
                "usage": {"prompt_tokens": 0, "completion_tokens": completion_tokens,
                          "total_tokens": completion_tokens}}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await answer(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, chat=False)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": args.served_model_name, "object": "model", "owned_by": "o1e"}]}

    @app.get("/loopback/stats")
    async def served():
        return dict(stats)

    @app.get("/loopback/sampling")
    async def sampling():
        return list(sampling_seen)

    return app


@contextlib.contextmanager
def serve_in_thread(args: LoopbackServerArguments) -> Iterator[str]:
    """Run the server on a free loopback port (args.port is ignored) in a thread; yield its /v1 base URL."""
    import uvicorn

    app = build_app(args)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("loopback server failed to start")
        time.sleep(0.02)
    try:
        yield f"http://{args.host}:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: Optional[list[str]] = None) -> None:
    import uvicorn

    (args,) = HfArgumentParser(LoopbackServerArguments).parse_args_into_dataclasses(argv)
    uvicorn.run(build_app(args), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    from o1e_tevatron.core.errors import run_command

    run_command(main)
