"""Markdown rows for BENCHMARKS.md from a results file of benchmarks/run_all (one JSON object per line).

    .venv/bin/python -m benchmarks.report benchmarks/results/cpu.jsonl
"""
from __future__ import annotations

import json
import sys


def verdict(value: float, target: str) -> str:
    op, bound = target.split()
    ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return "met" if ok else f"missed by {abs(value - float(bound)):.2f}"


def rows(record: dict) -> list[tuple[str, str, str, str]]:
    r, s, name = record["results"], record["settings"], record["benchmark"]
    if name == "train_memory":
        runs = r["runs"]
        detail = ", ".join(f"{v} {runs[v]['peak_mib']:.0f} MiB (step {runs[v]['step_mib']:.0f})" for v in runs)
        tag = f"vocab {s['vocab']}"
        return [(f"Training memory (b)/(a), {tag}", f"{r['peak_ratios']['shared/contrastive']:.3f} "
                 f"(step-only {r['step_ratios']['shared/contrastive']:.3f})", "<= 1.10",
                 verdict(r['peak_ratios']['shared/contrastive'], "<= 1.10") + "; " + detail),
                (f"Training memory (b)/(c), {tag}", f"{r['peak_ratios']['shared/naive']:.3f} "
                 f"(step-only {r['step_ratios']['shared/naive']:.3f})", "<= 0.70",
                 verdict(r['peak_ratios']['shared/naive'], "<= 0.70"))]
    if name == "train_speed":
        sp = r["steps_per_s"]
        return [(f"Training steps/s (b)/(c), vocab {s['vocab']}", f"{r['speedup']['shared/naive']:.3f}", ">= 1.2",
                 verdict(r['speedup']['shared/naive'], ">= 1.2") + "; steps/s " +
                 ", ".join(f"{k} {v:.3f}" for k, v in sp.items()))]
    if name == "grad_cache_memory":
        gc = {x["batch"]: x["peak_mib"] for x in r["runs"] if x["variant"] == "grad_cache"}
        plain = {x["batch"]: x["peak_mib"] for x in r["runs"] if x["variant"] == "shared"}
        return [("Grad cache peak, largest / smallest batch", f"{r['grad_cache_peak_growth']:.3f}", "flat (~1.0)",
                 "grad cache MiB by batch " + ", ".join(f"{b}: {m:.0f}" for b, m in gc.items()) +
                 "; without: " + ", ".join(f"{b}: {m:.0f}" for b, m in plain.items()))]
    if name == "think_qps":
        q, e, sm = r["queries_per_s"], r["next_token_entropy_nats"], r["sampling_ms_per_step"]
        shape = f"hidden {s['hidden']} x {s['layers']} layers, entropy {e['at_temperature_1']} nats at T=1"
        return [(f"Think qps fused / re-encode (k=3), {shape}", f"{r['fused_over_reencode']:.3f}", ">= 1.3",
                 verdict(r['fused_over_reencode'], ">= 1.3") + f"; qps fused {q['think_fused']}, re-encode "
                 f"{q['think_reencode']}, fast {q['fast']}; max vector diff {r['max_abs_vector_diff_fused_vs_reencode']:.1e}; "
                 f"one prefill for k thoughts: {r['prefill']['k_thoughts_share_one_prefill']}; sampling step "
                 f"{sm['nucleus_sampler']} ms vs HF top-p {sm['hf_top_p_multinomial']} ms ({sm['speedup']}x)")]
    if name == "corpus_encoding" and "o1e_over" not in r:  # an older record: one median ratio, autograd on
        d = r["docs_per_s"]
        return [("Corpus encoding docs/s o1e / Pyserini Auto (older measurement: autograd on, no spread)",
                 f"{r['o1e_over_pyserini']:.3f}", ">= 1.5",
                 f"docs/s {d['o1e_inference']} vs {d['pyserini_auto']}; max vector diff {r['max_abs_vector_diff']:.1e}; "
                 f"{r['texts']} {r['source']} texts")]
    if name == "corpus_encoding":
        d, rows = r["docs_per_s"], []
        for baseline, label in (("pyserini_inference_mode", "as o1e's harness runs it, inference mode"),
                                ("pyserini_cli", "as pyserini.encode runs it, autograd on")):
            x = r["o1e_over"][baseline]
            rows.append((f"Corpus encoding docs/s o1e / Pyserini Auto ({label})",
                         f"{x['median']:.3f} (min {x['min']:.3f}, max {x['max']:.3f}, {x['repeats']} repeats)",
                         ">= 1.5" if baseline == "pyserini_inference_mode" else "report",
                         (verdict(x["min"], ">= 1.5") + " at the worst repeat; " if baseline == "pyserini_inference_mode"
                          else "") + f"median docs/s {d['o1e_inference']['median']} vs {d[baseline]['median']}; "
                         f"max vector diff {r['max_abs_vector_diff']:.1e}; {r['texts']} {r['source']} texts"))
        return rows
    if name == "search":
        h = r["hnsw"]
        return [("Search qps, exact IndexFlatIP", f"{r['exact_flat_ip_queries_per_s']}", "report", f"{r['docs']} x {r['dim']}")] + [
            (f"Search HNSW {ef}", f"{v['queries_per_s']} qps ({v['speedup_over_exact']}x exact)", "report",
             f"recall@10 vs exact {v['recall@10_vs_exact']}") for ef, v in h.items()]
    if name == "scale":
        search = r["measured_cpu"]["search"]
        return [(f"Sharded exact search qps, {s['num_docs']} x {s['dim']}, 4 shards, k=1000",
                 f"float16 {search['float16']['queries_per_s']:.1f}, float32 {search['float32']['queries_per_s']:.1f}",
                 "report", "MS MARCO projections: BENCHMARKS.md, Scale")]
    return []


def main(path: str) -> None:
    print("| Measure | Value | Target | Verdict / details | Command |")
    print("|---|---|---|---|---|")
    for line in open(path):
        record = json.loads(line)
        for measure, value, target, detail in rows(record):
            print(f"| {measure} | {value} | {target} | {detail} | `{record['command']}` |")


if __name__ == "__main__":
    main(sys.argv[1])
