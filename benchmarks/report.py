"""Markdown rows for BENCHMARKS.md from a results file of benchmarks/run_all (one JSON object per line).

    .venv/bin/python -m benchmarks.report benchmarks/results/cpu.jsonl
"""
from __future__ import annotations

import json
import sys

# corpus_encoding baselines: (label, whether the >= 1.5 target is measured against it)
CORPUS_BASELINES = {"pyserini_inference_mode": ("Pyserini Auto in inference mode, as o1e's harness runs it", True),
                    "pyserini_cli": ("Pyserini Auto as pyserini.encode runs it (autograd on)", False),
                    "pyserini_o1e": ("Pyserini's loop with o1e's encoder", True),
                    "pyserini_auto": ("Pyserini Auto, mean pooling, inference mode", False)}

def verdict(value: float, target: str) -> str:
    op, bound = target.split()
    ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return "met" if ok else f"missed by {abs(value - float(bound)):.2f}"


def model_tag(settings: dict) -> str:
    """A real model by its name, a random backbone by its vocabulary."""
    return str(settings["model"]).split("/")[-1] if settings.get("model") else f"vocab {settings['vocab']}"


def rows(record: dict) -> list[tuple[str, str, str, str]]:
    r, s, name = record["results"], record["settings"], record["benchmark"]
    if name == "train_memory":
        runs = r["runs"]
        detail = ", ".join(f"{v} {runs[v]['peak_mib']:.0f} MiB (step {runs[v]['step_mib']:.0f})" for v in runs)
        tag = model_tag(s)
        return [(f"Training memory (b)/(a), {tag}", f"{r['peak_ratios']['shared/contrastive']:.3f} "
                 f"(step-only {r['step_ratios']['shared/contrastive']:.3f})", "<= 1.10",
                 verdict(r['peak_ratios']['shared/contrastive'], "<= 1.10") + "; " + detail),
                (f"Training memory (b)/(c), {tag}", f"{r['peak_ratios']['shared/naive']:.3f} "
                 f"(step-only {r['step_ratios']['shared/naive']:.3f})", "<= 0.70",
                 verdict(r['peak_ratios']['shared/naive'], "<= 0.70"))]
    if name == "train_speed":
        sp = r["steps_per_s"]
        return [(f"Training steps/s (b)/(c), {model_tag(s)}", f"{r['speedup']['shared/naive']:.3f}", ">= 1.2",
                 verdict(r['speedup']['shared/naive'], ">= 1.2") + "; steps/s " +
                 ", ".join(f"{k} {v:.3f}" for k, v in sp.items()) +
                 (f"; (b)/(d) two-pass {r['speedup']['shared/two_pass']:.3f}" if "shared/two_pass" in r["speedup"] else ""))]
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
    if name == "corpus_encoding":
        d, t, rows = r["docs_per_s"], r["tokens"], []
        for baseline, x in r["o1e_over"].items():
            label, targeted = CORPUS_BASELINES[baseline]
            rows.append((f"Corpus encoding docs/s o1e / {label}, {s['model']}",
                         f"{x['median']:.3f} (min {x['min']:.3f}, max {x['max']:.3f}, {x['repeats']} repeats)",
                         ">= 1.5" if targeted else "report",
                         (verdict(x["min"], ">= 1.5") + " at the worst repeat; " if targeted else "") +
                         f"median docs/s {d['o1e_inference']['median']} vs {d[baseline]['median']}; padding "
                         f"{t['o1e_inference']['padding_fraction']:.0%} vs {t[baseline]['padding_fraction']:.0%} of the "
                         f"tokens run; {r['texts']} {r['source']} texts, {s['dtype']}" +
                         (f"; max vector diff {r['max_abs_vector_diff']:.1e}" if baseline != "pyserini_auto"
                          else "; other vectors (mean pooling)")))
        return rows
    if name == "real_think":
        q, tokens, split = r["queries_per_s"], r["generated_tokens_per_query"], r["authors_seconds_split"]
        return [(f"Think qps o1e / the authors' pipeline (k={s['num_thoughts']}, T={s['temperature']}, "
                 f"{s['max_new_tokens']} tokens), {s['checkpoint']}", f"{r['o1e_think_over_authors']:.2f}", ">= 3",
                 verdict(r["o1e_think_over_authors"], ">= 3") + f"; qps authors {q['authors']}, o1e think "
                 f"{q['o1e_think']}, o1e fast {q['o1e_fast']}; generated tokens/query {tokens['authors']} vs "
                 f"{tokens['o1e_think']}; authors per batch: generate {split['generate']} s, embed {split['embed']} s" +
                 ("; o1e think by part: " + ", ".join(f"{k} {v} s" for k, v in r["o1e_think_seconds_split"].items())
                  if "o1e_think_seconds_split" in r else ""))]
    if name == "cpu_options":
        rows = []
        for option, x in r["options"].items():
            ndcg = (f"; over the slice: min cosine {x.get('min_cosine_to_float32_slice', 1.0)}, "
                    f"nDCG@10 {x['ndcg@10_slice']}" if "ndcg@10_slice" in x else "")
            rows.append((f"CPU option {option}, {s['checkpoint']}", f"{x['speed_over_float32']:.2f}x float32 passages/s",
                         "report", f"passages/s {x['passages_per_s']}, queries/s {x['queries_per_s']}; min cosine to "
                         f"float32 on the timed sample {x['min_cosine_to_float32']}{ndcg}"))
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
