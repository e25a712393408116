"""Helpers shared by the synthesis tests (rows on disk, generate arguments for the tiny teacher)."""
import asyncio
import json
import sys
from pathlib import Path

from o1e_tevatron.synthesis.generate import GenerateArguments, generate

DEMO_TRAIN = Path(__file__).resolve().parents[2] / "o1e_tevatron" / "resources" / "demo" / "train.jsonl"


def demo_rows(n=None):
    rows = [json.loads(line) for line in DEMO_TRAIN.read_text().splitlines()]
    return rows[:n]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path):
    """JSON lines end at "\n" only: str.splitlines would also split at U+2028, U+0085 and the like,
    which a sampled thought may hold (written raw, ensure_ascii=False)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line]


def generate_args(input_path, output_path, base_url, **overrides):
    """Small, fast settings for the tiny teacher (which serves one request at a time)."""
    kwargs = dict(input_path=str(input_path), output_path=str(output_path), base_url=base_url, model="loopback",
                  max_tokens=24, concurrency=4, request_timeout=60.0, retry_backoff=0.01, max_retries=3)
    kwargs.update(overrides)
    return GenerateArguments(**kwargs)


def generate_cli(args: GenerateArguments) -> list[str]:
    """The same arguments as a command line of the module."""
    cli = [sys.executable, "-m", "o1e_tevatron.synthesis.generate"]
    for name, value in vars(args).items():
        if value is not None:
            cli += [f"--{name}", str(value)]
    return cli


def run_until_complete(args, max_runs=3):
    """A random tiny teacher may sample a blank candidate (a recorded failure); a rerun retries it."""
    summaries = [asyncio.run(generate(args))]
    while summaries[-1].failed and len(summaries) < max_runs:
        summaries.append(asyncio.run(generate(args)))
    return summaries
