"""vLLM on this CPU beside o1e's own paths, side by side in one run (in the vLLM venv, recipes/vllm/install.sh):

- ``think``: o1e's HF backend (one generate for k thoughts, its nucleus sampler) against ``VLLMThoughts`` on
  one merged checkpoint, with the same queries, k, length, temperature, top-p and seed: queries/s,
  generated tokens/s, and each as a fraction of this CPU's float32 GEMM rate (2 x parameters FLOPs per
  generated token: the decode's roofline in practice);
- ``teacher``: ``synthesis.generate`` against o1e's loopback server and against ``vllm serve``, the same
  rows, k, max_tokens and sampling: rows/s and generated tokens/s.

    .venv-vllm/bin/python -m benchmarks.vllm_cpu --part think   >> benchmarks/results/vllm_cpu.jsonl
    .venv-vllm/bin/python -m benchmarks.vllm_cpu --part teacher >> benchmarks/results/vllm_cpu.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import REPO, emit, median
from benchmarks.scale import gemm_flops

ADAPTER = REPO / "recipes" / "mini" / "adapters" / "b-chat"
DEMO = REPO / "o1e_tevatron" / "resources" / "demo"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def interleaved(variants: dict, repeats: int) -> dict:
    """{name: [seconds, ...]}: every variant once per round, the order reversed every other round."""
    times = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return times


def think(args) -> None:
    import torch

    from o1e_pyserini.encoders.base import load_family_model
    from o1e_pyserini.encoders.o1e import merged_for_vllm
    from o1e_pyserini.thinking.backends import HFThoughts, ThoughtSettings, VLLMThoughts
    from o1e_tevatron.families.o1e.model import O1EModel

    queries = [line.split("\t", 1)[1].strip() for line in (DEMO / "topics.tsv").read_text().splitlines()][:args.queries]
    settings = ThoughtSettings(args.k, args.temperature, args.top_p, args.max_new_tokens, 0)
    model = load_family_model(O1EModel, str(ADAPTER), "cpu", "float32", False, None)
    merged = merged_for_vllm(model, str(ADAPTER))
    started = time.perf_counter()
    backends = {"hf": HFThoughts(model, settings), "vllm": VLLMThoughts(merged, model.template, settings, dtype="float32",
                                                                       max_model_len=1024, seed=0)}
    engine_start = time.perf_counter() - started  # vLLM's engine runs in its own process: its thread binding
    # (1 torch thread for "serving" on this CPU) does not reach the HF side, which keeps torch's threads
    tokens = {name: 0 for name in backends}

    def run(name):
        def go():
            tokens[name] = sum(len(t) for per_query in backends[name].think(queries) for t in per_query)  # eos not counted
        return go

    for name in backends:  # warm-up (vLLM compiles its graphs on first use)
        run(name)()
    times = interleaved({name: run(name) for name in backends}, args.repeats)
    params = sum(p.numel() for p in model.causal_lm.parameters())
    peak = gemm_flops()
    results = {"engine_start_s": round(engine_start, 1), "gemm_gflops": round(peak / 1e9, 1), "parameters": params}
    for name, seconds in times.items():
        s = median(seconds)
        results[name] = {"seconds": round(s, 2), "queries_per_s": round(len(queries) / s, 3),
                         "generated_tokens_per_s": round(tokens[name] / s, 1), "generated_tokens": tokens[name],
                         "roofline_fraction": round(tokens[name] / s * 2 * params / peak, 4)}
    results["vllm_over_hf_qps"] = round(results["vllm"]["queries_per_s"] / results["hf"]["queries_per_s"], 2)
    emit("vllm_cpu.think", results, queries=len(queries), k=args.k, max_new_tokens=args.max_new_tokens,
         vllm_multiprocessing=os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1"),
         temperature=args.temperature, top_p=args.top_p, dtype="float32", repeats=args.repeats, torch_threads=torch.get_num_threads())


def wait_for(url: str, server: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no server at {url} after {seconds} s")
            time.sleep(2)


def teacher(args) -> None:
    from transformers import AutoTokenizer

    from o1e_tevatron.models import resolve_model_path

    model = resolve_model_path(SMOLLM2)
    work = Path(tempfile.mkdtemp(prefix="vllm-teacher-"))
    rows = work / "rows.jsonl"
    rows.write_text("".join((DEMO / "train.jsonl").read_text().splitlines(keepends=True)[:args.rows]))
    servers = {
        "loopback": [sys.executable, "-m", "o1e_tevatron.synthesis.loopback_server", "--model_name_or_path", model,
                     "--port", "{port}", "--served_model_name", "teacher", "--dtype", "float32", "--eos_bias", "0",
                     "--max_prompt_tokens", "4096"],
        "vllm_serve": ["bash", str(REPO / "recipes" / "synthesis" / "serve_teacher.sh")],
    }
    urls, procs = {}, []
    try:
        for i, (name, command) in enumerate(servers.items()):
            port = 18100 + i
            log = work / f"{name}.log"
            env = {**os.environ, "DEVICE": "cpu", "PORT": str(port), "SERVED_NAME": "teacher", "MODEL": model,
                   "VENV": str(Path(sys.executable).parents[1])}
            procs.append(subprocess.Popen([c.format(port=port) for c in command], stdout=open(log, "w"),
                                          stderr=subprocess.STDOUT, env=env))
            urls[name] = f"http://127.0.0.1:{port}/v1"
            wait_for(urls[name], procs[-1], log)
        tokenizer = AutoTokenizer.from_pretrained(model)
        generated = {}

        def run(name):
            def go():
                out = work / f"{name}-{time.monotonic_ns()}.jsonl"
                subprocess.run([sys.executable, "-m", "o1e_tevatron.synthesis.generate", "--input_path", str(rows),
                                "--output_path", str(out), "--base_url", urls[name], "--model", "teacher",
                                "--num_candidates", str(args.k), "--max_tokens", str(args.max_new_tokens),
                                "--temperature", str(args.temperature), "--top_p", str(args.top_p),
                                "--concurrency", "16", "--request_timeout", "900"], check=True, capture_output=True)
                texts = [t for line in out.read_text().splitlines() for t in json.loads(line)["thought_candidates"]]
                generated[name] = sum(len(tokenizer(t).input_ids) for t in texts)
            return go

        times = interleaved({name: run(name) for name in servers}, args.repeats)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    results = {}
    for name, seconds in times.items():
        s = median(seconds)
        results[name] = {"seconds": round(s, 1), "rows_per_s": round(args.rows / s, 3),
                         "generated_tokens_per_s": round(generated[name] / s, 1)}
    results["vllm_serve_over_loopback_rows_per_s"] = round(results["vllm_serve"]["rows_per_s"] /
                                                           results["loopback"]["rows_per_s"], 2)
    emit("vllm_cpu.teacher", results, rows=args.rows, k=args.k, max_tokens=args.max_new_tokens,
         temperature=args.temperature, top_p=args.top_p, dtype="float32", repeats=args.repeats, concurrency=16)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["think", "teacher"], required=True)
    p.add_argument("--queries", type=int, default=16, help="think: demo topics")
    p.add_argument("--rows", type=int, default=16, help="teacher: demo training rows")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    think(args) if args.part == "think" else teacher(args)


if __name__ == "__main__":
    main()
