"""The layout: special tokens survive truncation, labels cover exactly the thought and </s>."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from o1e_tevatron.collator import O1ECollator
from o1e_tevatron.families.base import IGNORE_INDEX
from o1e_tevatron.families.o1e.template import (EMB_TOKEN, QUERY_TOKEN, SPECIAL_TOKENS, THOUGHT_TOKEN, Template,
                                                TemplateConfig, add_special_tokens)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    add_special_tokens(tok)
    return tok


def names(tokenizer, ids):
    return tokenizer.convert_ids_to_tokens(ids)


def test_authors_layout(tokenizer):
    t = Template(tokenizer)
    q, th = t.tokenize("cancer risk"), t.tokenize("cells mutate")
    ids, start, end = t.thought_query(q, th)
    assert ids == t.bos + [t.query_id] + q + [t.query_end_id, t.thought_id] + th + [t.eos_id, t.emb_id]
    assert ids[start:end] == th + [t.eos_id]
    assert t.plain_query(q) == t.bos + [t.query_id] + q + [t.query_end_id, t.thought_id, t.emb_id]
    assert names(tokenizer, ids)[1:3] == [QUERY_TOKEN, names(tokenizer, q)[0]]


def test_paper_layout_has_no_query_end(tokenizer):
    t = Template(tokenizer, TemplateConfig(layout="paper"))
    ids, _, _ = t.thought_query(t.tokenize("a query"), t.tokenize("a thought"))
    assert t.query_end_id not in ids
    assert names(tokenizer, ids).count(THOUGHT_TOKEN) == 1


def test_passage_prefix_and_emb(tokenizer):
    t = Template(tokenizer, TemplateConfig(passage_prefix="passage: "))
    p = t.tokenize("some text")
    assert t.passage(p) == t.bos + t.tokenize("passage: ") + p + [t.emb_id]


def test_no_emb_for_pooling_ablations(tokenizer):
    t = Template(tokenizer, TemplateConfig(append_emb=False))
    ids, _, end = t.thought_query(t.tokenize("q"), t.tokenize("t"))
    assert ids[-1] == t.eos_id and end == len(ids)


def test_missing_special_tokens_are_added_and_model_resized(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    before = len(tok)
    with pytest.raises(ValueError, match="add_special_tokens"):
        Template(tok)
    ids = add_special_tokens(tok, model)
    assert len(tok) == before + len(SPECIAL_TOKENS) and ids == list(range(before, before + 4))
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert add_special_tokens(tok, model) == ids  # idempotent
    # added tokens are atomic: no spaces or sub-pieces around them
    assert tok("x<emb>y", add_special_tokens=False)["input_ids"][1] == tok.convert_tokens_to_ids(EMB_TOKEN)


def test_close_and_strip_thought(tokenizer):
    t = Template(tokenizer, TemplateConfig(thought_max_len=3))
    assert t.close_thought([5, 6]) == [t.eos_id, t.emb_id]
    assert t.close_thought([5, t.eos_id]) == [t.emb_id]
    assert t.strip_thought([5, 6, t.eos_id, 7]) == [5, 6]
    assert t.strip_thought([5, 6, 7, 8, 9]) == [5, 6, 7]


ids_strategy = st.lists(st.integers(min_value=10, max_value=900), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(query=ids_strategy, thought=ids_strategy, q_max=st.integers(1, 12), t_max=st.integers(1, 12),
       layout=st.sampled_from(["authors", "paper"]))
def test_truncation_keeps_special_tokens_and_labels_cover_thought_only(tokenizer, query, thought, q_max, t_max,
                                                                       layout):
    t = Template(tokenizer, TemplateConfig(layout=layout, query_max_len=q_max, thought_max_len=t_max))
    ids, start, end = t.thought_query(query, thought)
    kept = thought[:t_max]
    assert ids[-1] == t.emb_id and ids[end - 1] == t.eos_id and ids[start - 1] == t.thought_id
    assert ids[start:end] == kept + [t.eos_id]
    assert len(ids) == len(t.bos) + 1 + min(len(query), q_max) + (layout == "authors") + 1 + len(kept) + 2


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.tuples(st.text(min_size=1, max_size=30), st.one_of(st.none(), st.text(min_size=1, max_size=30))),
                      min_size=1, max_size=5),
       side=st.sampled_from(["left", "right"]))
def test_collator_labels_only_thought_and_eos(tokenizer, batch, side):
    t = Template(tokenizer, TemplateConfig(thought_max_len=8, query_max_len=8))
    collator = O1ECollator(t, side)
    ids, mask, labels = collator.queries([q for q, _ in batch], [th for _, th in batch])
    for row, (query, thought) in enumerate(batch):
        real = ids[row][mask[row].bool()].tolist()
        row_labels = labels[row][mask[row].bool()].tolist()
        assert labels[row][~mask[row].bool()].eq(IGNORE_INDEX).all()
        labelled = [tok for tok, lab in zip(real, row_labels) if lab != IGNORE_INDEX]
        if thought is None:
            assert labelled == [] and real == t.plain_query(t.tokenize(query))
        else:
            assert labelled == t.tokenize(thought)[:8] + [t.eos_id]
            assert [lab for lab in row_labels if lab != IGNORE_INDEX] == labelled
            first = row_labels.index(labelled[0])
            assert real[first - 1] == t.thought_id
        assert real[-1] == t.emb_id


# --- the chat layout: the backbone's own chat template around the teacher's prompt ------------------
CHAT_QUERY, CHAT_THOUGHT = "cancer risk of smokers", "cells mutate"


def chat_reference(tokenizer, query, passages=(), thought=None):
    """The literal layout: the teacher's messages through the tokenizer's own chat template, tokenized
    whole; then the thought (or nothing, fast mode) and <emb> in place of the end of turn."""
    from o1e_tevatron.families.o1e.prompts import TeacherPrompt

    rendered = tokenizer.apply_chat_template(TeacherPrompt().chat_messages(query, (), passages), tokenize=False,
                                             add_generation_prompt=True)
    prompt = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    thought_ids = tokenizer(thought, add_special_tokens=False)["input_ids"] if thought else []
    return prompt, prompt + thought_ids + [tokenizer.convert_tokens_to_ids(EMB_TOKEN)]


def test_chat_layout_is_the_chat_template_around_the_teachers_prompt(tokenizer):
    t = Template(tokenizer, TemplateConfig(layout="chat", thought_max_len=40))
    q = t.tokenize_queries([CHAT_QUERY])[0]
    prompt, expected = chat_reference(tokenizer, CHAT_QUERY, thought=CHAT_THOUGHT)
    assert t.query_prefix(q) == prompt
    ids, start, end = t.thought_query(q, t.tokenize(CHAT_THOUGHT))
    assert ids == expected
    # the generation loss: the thought, then the end of turn, which <emb> stands in for
    labels = t.generation_labels(ids, start, end)
    assert [x for x in labels if x != IGNORE_INDEX] == t.tokenize(CHAT_THOUGHT) + [t.eos_id]
    assert labels[-1] == t.eos_id and ids[-1] == t.emb_id and t.eos_id not in ids[start:]
    assert t.plain_query(q) == chat_reference(tokenizer, CHAT_QUERY)[1]  # fast: an empty turn closed by <emb>
    assert t.plain_suffix == [t.emb_id] and t.close_thought([5, t.eos_id]) == [t.emb_id] and not t.thought_keeps_eos
    assert t.query_id not in ids and t.thought_id not in ids  # no untrained markers in the chat layout


def test_chat_layout_grounding_passages_are_cut_and_counted(tokenizer):
    from o1e_tevatron.families.o1e.prompts import cut_words

    passages = ["alpha beta gamma delta epsilon", "one two three four five", "never shown"]
    t = Template(tokenizer, TemplateConfig(layout="chat", grounding_passages=2, grounding_max_words=3))
    q = t.tokenize_queries([CHAT_QUERY], passages=[passages])[0]
    shown = [cut_words(p, 3) for p in passages[:2]]
    assert shown == ["alpha beta gamma", "one two three"]
    assert t.query_prefix(q) == chat_reference(tokenizer, CHAT_QUERY, shown)[0]
    # at search time the grounder retrieves them; without one, a grounded checkpoint refuses to guess
    with pytest.raises(ValueError, match="Lucene index"):
        t.tokenize_queries([CHAT_QUERY])
    t.grounder = lambda query: passages if query == CHAT_QUERY else []
    assert t.tokenize_queries([CHAT_QUERY]) == [q]
    # the query is cut to query_max_len tokens inside the prompt; the turn structure stays
    short = Template(tokenizer, TemplateConfig(layout="chat", query_max_len=2))
    query = "alpha beta gamma delta epsilon"
    cut = tokenizer.decode(short.tokenize(query)[:2])
    assert short.query_prefix(short.tokenize_queries([query])[0]) == chat_reference(tokenizer, cut)[0]


def test_chat_layout_errors(tokenizer, tiny_llama_dir):
    with pytest.raises(ValueError, match="use layout 'chat'"):
        TemplateConfig(layout="authors", grounding_passages=2)
    with pytest.raises(ValueError, match="chat layout"):
        Template(tokenizer).tokenize_queries(["q"], passages=[["p"]])
    plain = AutoTokenizer.from_pretrained(tiny_llama_dir)
    plain.chat_template = None
    add_special_tokens(plain)
    with pytest.raises(ValueError, match="chat template"):
        Template(plain, TemplateConfig(layout="chat"))
    # the thought must end with the turn's own closing token, which the chat layout takes to be eos
    other = AutoTokenizer.from_pretrained(tiny_llama_dir)
    other.chat_template = "{% for m in messages %}<s>{{ m['content'] }}<pad>{% endfor %}"
    add_special_tokens(other)
    with pytest.raises(ValueError, match="closes an assistant turn with another token"):
        Template(other, TemplateConfig(layout="chat"))
    # the prompt is stored resolved, so later changes of o1e's default prompt leave a checkpoint alone
    config = TemplateConfig.from_dict(TemplateConfig(layout="chat", prompt={"task": "Explain."}).to_dict())
    assert config.prompt["task"] == "Explain." and config.prompt["system"].startswith("You are a helpful")


def test_collator_feeds_training_rows_grounding_to_the_chat_layout(tokenizer):
    t = Template(tokenizer, TemplateConfig(layout="chat", grounding_passages=1, grounding_max_words=2))
    collator = O1ECollator(t, "left")
    features = [{"query": CHAT_QUERY, "thought": CHAT_THOUGHT, "passages": ["p"], "teacher_scores": None,
                 "grounding": ["smoking damages dna badly"]}]
    batch = collator(features)
    expected = chat_reference(tokenizer, CHAT_QUERY, ["smoking damages"], CHAT_THOUGHT)[1]
    assert batch["query_input_ids"][0].tolist() == expected
    labels = [x for x in batch["gen_labels"][0].tolist() if x != IGNORE_INDEX]
    assert labels == t.tokenize(CHAT_THOUGHT) + [t.eos_id]  # <emb>'s label is the end of turn
