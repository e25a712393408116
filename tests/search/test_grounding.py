"""The chat layout and grounded thinking at search time: the layout round-trips through a checkpoint,
fused think-and-embed still equals re-encoding, the prompt holds the passages that Pyserini's
LuceneSearcher returns, and the thought cache's key changes with them."""
import json

import numpy as np
import pytest
import torch

from o1e_pyserini.encoders.o1e import O1EQueryEncoder
from o1e_pyserini.thinking.grounding import LuceneGrounder, ground_rows, stored_text
from o1e_pyserini.thinking.backends import HFThoughts, ThoughtSettings, prefill_plain_query
from o1e_tevatron.core.encoding import encode_sequences
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
from o1e_tevatron.families.o1e.prompts import cut_words
from o1e_tevatron.families.o1e.template import TemplateConfig

QUERIES = ["cancer cells mutate", "vitamin d deficiency and bone density", "x"]
K, WORDS = 2, 12


@pytest.fixture(scope="module")
def demo_lucene(demo_dir, tmp_path_factory):
    """A Lucene index of the demo corpus, built by Pyserini's indexer as the mining and hybrid paths do."""
    from o1e_pyserini.search.mine import corpus_index

    return corpus_index(demo_dir / "corpus.jsonl", tmp_path_factory.mktemp("lucene"))


@pytest.fixture(scope="module")
def chat_checkpoint(tiny_llama_dir, tmp_path_factory):
    config = O1EConfig(template=TemplateConfig(layout="chat", grounding_passages=K, grounding_max_words=WORDS,
                                               query_max_len=16, thought_max_len=12))
    out = tmp_path_factory.mktemp("chat-ckpt")
    O1EModel.build(str(tiny_llama_dir), config, lora=True, lora_r=4, lora_alpha=8).save(out)
    return out


def bm25_texts(index, query, k=K):
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(index))
    return [stored_text(searcher.doc(hit.docid).raw()) for hit in searcher.search(query, k)]


def test_chat_checkpoint_round_trips_its_layout(chat_checkpoint):
    saved = json.loads((chat_checkpoint / "o1e_config.json").read_text())["template"]
    assert saved["layout"] == "chat" and saved["grounding_passages"] == K and saved["grounding_max_words"] == WORDS
    assert saved["prompt"]["task"].startswith("Think about a plausible response")
    model = O1EModel.load(chat_checkpoint)
    assert model.template.config == TemplateConfig.from_dict(saved)
    assert model.template.config.layout == "chat" and model.template.chat_prompt


def test_grounder_returns_lucene_searchers_top_passages(demo_lucene):
    grounder = LuceneGrounder(str(demo_lucene), K)
    grounder.prefetch(QUERIES)
    for query in QUERIES[:2]:
        assert grounder(query) == bm25_texts(demo_lucene, query) and len(grounder(query)) == K
    assert grounder.seconds > 0
    with pytest.raises(FileNotFoundError, match="not a Lucene index"):
        LuceneGrounder(str(demo_lucene.parent), K)


def test_grounded_fused_think_equals_reencoding_and_the_prompt_holds_the_passages(chat_checkpoint, demo_lucene):
    model = O1EModel.load(chat_checkpoint).eval()
    t = model.template
    t.grounder = LuceneGrounder(str(demo_lucene), K)
    tokenizer = t.tokenizer
    prompt = tokenizer.decode(t.query_prefix(t.tokenize_queries(QUERIES[:1])[0]))
    for rank, text in enumerate(bm25_texts(demo_lucene, QUERIES[0]), 1):
        assert f"[{rank}] {cut_words(text, WORDS)}" in prompt
    assert prompt.rstrip().endswith("assistant") and QUERIES[0] in prompt

    settings = ThoughtSettings(num_thoughts=3, temperature=1.0, max_new_tokens=8, seed=3)
    thoughts, fused = HFThoughts(model, settings, sequence_bias={(t.eos_id,): 4.0}).think_and_embed(QUERIES)
    lengths = {len(th) for ths in thoughts for th in ths}
    assert len(lengths) >= 2 and min(lengths) < 8, f"want thoughts that stop early (a masked </s>), got {lengths}"
    sequences = [t.thought_query(q, th)[0] for q, ths in zip(t.tokenize_queries(QUERIES), thoughts) for th in ths]
    reencoded = torch.from_numpy(encode_sequences(model, sequences, batch_size=4))
    torch.testing.assert_close(fused.reshape(len(sequences), -1), reencoded, atol=1e-5, rtol=0)
    # fast mode: the prefill's vector is the plain query's (the empty assistant turn), read at its <emb>
    fast = prefill_plain_query(model, QUERIES).vectors
    plain = encode_sequences(model, [t.plain_query(q) for q in t.tokenize_queries(QUERIES)], 2, query=True)
    torch.testing.assert_close(fast, torch.from_numpy(plain), atol=1e-5, rtol=0)


def test_a_grounded_checkpoint_needs_an_index_and_a_plain_one_refuses_it(chat_checkpoint, llama_checkpoint,
                                                                          demo_lucene):
    with pytest.raises(ValueError, match="Lucene index"):
        O1EQueryEncoder(str(chat_checkpoint), mode="fast")
    with pytest.raises(ValueError, match="not trained with grounding"):
        O1EQueryEncoder(str(llama_checkpoint), mode="fast", grounding_index=str(demo_lucene))


def test_thought_cache_key_holds_the_grounding_passages(chat_checkpoint, demo_lucene, tmp_path):
    def encoder():
        return O1EQueryEncoder(str(chat_checkpoint), mode="think", num_thoughts=2, temperature=1.0, max_new_tokens=4,
                               seed=5, thought_cache=str(tmp_path), grounding_index=str(demo_lucene), batch_size=4)

    first = encoder()
    vectors = first.encode_batch(QUERIES)
    again = encoder()
    np.testing.assert_allclose(again.encode_batch(QUERIES), vectors, atol=1e-5)
    assert again.cache_hits == len(QUERIES)
    moved = encoder()  # the index now returns other passages for the first query: its thoughts are not reused
    moved.grounder.memo[QUERIES[0]] = ["an unrelated passage about rodents"]
    moved.encode_batch(QUERIES)
    assert moved.cache_hits == len(QUERIES) - 1
    assert moved.prompt_tokens > 0


def test_ground_rows_adds_bm25_passages_to_training_rows(demo_lucene, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"query_id": str(i), "query": q, "positive_passages": []}) + "\n"
                            for i, q in enumerate(QUERIES[:2])))
    report = ground_rows(rows, tmp_path / "grounded.jsonl", LuceneGrounder(str(demo_lucene), 3))
    grounded = [json.loads(line) for line in (tmp_path / "grounded.jsonl").read_text().splitlines()]
    assert report["rows"] == 2 and [r["grounding"] for r in grounded] == [bm25_texts(demo_lucene, q, 3)
                                                                          for q in QUERIES[:2]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok"}\n{"text": "no query"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: 'query' is missing \(the object has: 'text'\)"):
        ground_rows(bad, tmp_path / "out.jsonl", LuceneGrounder(str(demo_lucene), 1))


def test_search_cli_grounds_a_chat_checkpoint(cli, encoded_corpus, chat_checkpoint, demo_lucene, topics_tsv, tmp_path):
    common = ["--encoder", chat_checkpoint, "--index", encoded_corpus / "index", "--topics", topics_tsv,
              "--hits", 5, "--o1e-mode", "fast"]
    proc = cli("o1e_pyserini.search.faiss", *common, "--output", tmp_path / "run.txt", check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1].startswith("error: this checkpoint thinks")
    cli("o1e_pyserini.search.faiss", *common, "--output", tmp_path / "run.txt", "--o1e-grounding-index", demo_lucene)
    assert len((tmp_path / "run.txt").read_text().splitlines()) == 5 * 8


def test_search_cli_help_lists_o1e_flags_then_pyserinis(cli):
    out = cli("o1e_pyserini.search.faiss", "--help").stdout
    assert "--o1e-grounding-index" in out and "--o1e-mode" in out and "--topics" in out
    assert out.index("--o1e-grounding-index") < out.index("Pyserini's flags (pyserini.search.faiss):")
