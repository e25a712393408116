"""The template checked by value (issue 24's mutation campaign): error messages in full, the edge cases of
labels and closing a thought, a query exactly at its length limit, passages as text, and tokenization that
never adds the tokenizer's own special tokens."""
import re

import pytest
from tokenizers import decoders
from transformers import AutoTokenizer

from o1e_tevatron.core.rows import passage_text
from o1e_tevatron.families.base import IGNORE_INDEX
from o1e_tevatron.families.debater.model import DebaterConfig, DebaterTemplate
from o1e_tevatron.families.o1e.prompts import TeacherPrompt
from o1e_tevatron.families.o1e.template import Template, TemplateConfig, add_special_tokens


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    add_special_tokens(tok)
    return tok


def full(message):
    return f"^{re.escape(message)}$"


def test_passage_text_joins_title_and_text_with_a_space_and_drops_an_empty_title():
    assert passage_text("Smoking", "raises cancer risk") == "Smoking raises cancer risk"
    assert passage_text("Smoking", "raises", separator=" | ") == "Smoking | raises"
    assert passage_text(None, "raises cancer risk") == "raises cancer risk"
    assert passage_text("", "raises cancer risk") == "raises cancer risk"


def test_config_errors_name_the_field_and_the_value():
    with pytest.raises(ValueError, match=full("layout must be one of ('authors', 'paper', 'chat'), not 'papers'")):
        TemplateConfig(layout="papers")
    with pytest.raises(ValueError, match=full("thought_max_len must be >= 1, got 0")):
        TemplateConfig(thought_max_len=0)
    with pytest.raises(ValueError, match=full("grounding_max_words must be >= 1, got -3")):
        TemplateConfig(grounding_max_words=-3)
    with pytest.raises(ValueError, match=full("grounding_passages must be >= 0, got -1")):
        TemplateConfig(grounding_passages=-1)
    with pytest.raises(ValueError, match=full("grounding passages go into the chat layout's prompt: use layout 'chat'")):
        TemplateConfig(layout="paper", grounding_passages=1)


def test_a_tokenizer_without_eos_is_refused_in_words(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    add_special_tokens(tok)
    tok.eos_token = None
    with pytest.raises(ValueError, match=full("the tokenizer has no eos token; O1E ends every thought with it")):
        Template(tok)


def test_tokenize_never_adds_the_tokenizers_own_bos(tiny_llama_dir):
    """A tokenizer that adds bos by default (Llama's): the template places bos itself, once."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir, add_bos_token=True)
    add_special_tokens(tok)
    assert tok("cancer risk")["input_ids"][0] == tok.bos_token_id  # the tokenizer would add it
    t = Template(tok)
    ids = t.tokenize("cancer risk")
    assert ids == tok("cancer risk", add_special_tokens=False)["input_ids"] and tok.bos_token_id not in ids
    assert t.tokenize_batch(["cancer risk", "a b"]) == [ids, t.tokenize("a b")]
    assert t.passage(ids).count(tok.bos_token_id) == 1
    # DEBATER's template uses the shared query tokenization (no instruction: the texts as they are)
    debater_tok = AutoTokenizer.from_pretrained(tiny_llama_dir, add_bos_token=True)
    config = DebaterConfig(num_steps=2)
    add_special_tokens(debater_tok, tokens=config.tokens())
    debater = DebaterTemplate(debater_tok, config)
    assert debater.tokenize_queries(["cancer risk", "a b"]) == [ids, t.tokenize("a b")]
    assert debater.tokenize_queries([]) == []


def test_an_empty_generation_is_closed_with_eos_and_emb(tokenizer):
    t = Template(tokenizer, TemplateConfig(layout="paper"))
    assert t.close_thought([]) == [t.eos_id, t.emb_id]


def test_generation_labels_replace_nothing_outside_the_chat_layout(tokenizer):
    t = Template(tokenizer)
    assert t.generation_labels([11, 12, 13, 14], 1, 3) == [IGNORE_INDEX, 12, 13, IGNORE_INDEX]


def test_an_empty_span_is_labelled_nowhere_in_the_chat_layout(tokenizer):
    t = Template(tokenizer, TemplateConfig(layout="chat"))
    assert t.generation_labels([11, 12, 13], 2, 2) == [IGNORE_INDEX] * 3
    assert t.generation_labels([11, 12, 13], 0, 0) == [IGNORE_INDEX] * 3
    assert t.generation_labels([11, 12, 13], 1, 3) == [IGNORE_INDEX, 12, t.eos_id]


def test_chat_layout_error_messages_in_full(tokenizer, tiny_llama_dir):
    plain = AutoTokenizer.from_pretrained(tiny_llama_dir)
    plain.chat_template = None
    add_special_tokens(plain)
    with pytest.raises(ValueError, match=full("template layout 'chat' needs a tokenizer with a chat template "
                                              "(an instruct model)")):
        Template(plain, TemplateConfig(layout="chat"))
    other = AutoTokenizer.from_pretrained(tiny_llama_dir)
    other.chat_template = "{% for m in messages %}<s>{{ m['content'] }}<pad>{% endfor %}"
    add_special_tokens(other)
    with pytest.raises(ValueError, match=full("the chat layout ends the thought with eos ('</s>'), but this chat "
                                              "template closes an assistant turn with another token: not supported yet")):
        Template(other, TemplateConfig(layout="chat"))
    grounded = Template(tokenizer, TemplateConfig(layout="chat", grounding_passages=2))
    with pytest.raises(ValueError, match=full("this checkpoint thinks with 2 retrieved passages per query: give a "
                                              "Lucene index of the corpus (--o1e-grounding-index / --grounding-index)")):
        grounded.tokenize_queries(["q"])


@pytest.mark.parametrize("user_template", ["{task}\n{query}", "{task}\n{passages}", "{passages}{query}{query}"])
def test_a_user_template_without_one_of_its_slots_is_refused(tokenizer, user_template):
    """Each slot is checked on its own: missing (or doubling) either one is enough to refuse."""
    with pytest.raises(ValueError, match=full("the prompt's user_template must hold {passages} and {query} once "
                                              "each for the chat layout")):
        Template(tokenizer, TemplateConfig(layout="chat", prompt={"user_template": user_template}))


class _NoChatTemplate:
    """A tokenizer that has no ``chat_template`` attribute at all (not even None)."""

    def __init__(self, tok):
        self._tok = tok

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        if name == "chat_template":
            raise AttributeError(name)
        return getattr(self._tok, name)


def test_a_tokenizer_without_the_chat_template_attribute_gets_the_same_refusal(tokenizer):
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        Template(_NoChatTemplate(tokenizer), TemplateConfig(layout="chat"))


STRICT_ROLES = ("{% for m in messages %}"
                "{% if m['content'] is not defined %}{{ raise_exception('a message without content') }}{% endif %}"
                "{% if m['role'] == 'system' %}<s>system\n{{ m['content'] }}</s>\n"
                "{% elif m['role'] == 'user' %}<s>user\n{{ m['content'] }}</s>\n"
                "{% elif m['role'] == 'assistant' %}<s>assistant\n{{ m['content'] }}</s>\n"
                "{% else %}{{ raise_exception('unknown role ' + m['role']) }}{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}<s>assistant\n{% endif %}")


def test_the_end_of_turn_probe_is_a_user_then_an_assistant_message(tiny_llama_dir):
    """A chat template that knows only system/user/assistant messages with content (as real ones do)."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = STRICT_ROLES
    add_special_tokens(tok)
    t = Template(tok, TemplateConfig(layout="chat"))
    prompt = TeacherPrompt()
    assert t.chat_prompt.startswith(f"<s>system\n{prompt.system}</s>\n<s>user\n")
    assert t.chat_prompt.endswith("</s>\n<s>assistant\n")


def test_a_query_exactly_at_the_length_limit_is_written_as_given(tiny_llama_dir):
    """Only a longer query is cut (and decoded back); one at the limit keeps its own text, which matters for
    a tokenizer whose decoding is not exact (here one that drops a leading space, as SentencePiece's does)."""
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    add_special_tokens(tok)
    tok.backend_tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    query = " cancer risk"
    ids = tok(query, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) != query  # the lossy decoding this test needs
    t = Template(tok, TemplateConfig(layout="chat", query_max_len=len(ids)))
    rendered = tok.apply_chat_template(TeacherPrompt().chat_messages(query, (), ()), tokenize=False,
                                       add_generation_prompt=True)
    assert t.tokenize_queries([query]) == [tok(rendered, add_special_tokens=False)["input_ids"]]


def test_pad_falls_back_to_eos_and_bos_to_nothing_only_when_absent(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    add_special_tokens(tok)
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    t = Template(tok)
    assert (t.pad_id, t.bos) == (tok.pad_token_id, [tok.bos_token_id])
    tok.pad_token, tok.bos_token = None, None
    t = Template(tok)
    assert (t.pad_id, t.bos) == (tok.eos_token_id, [])


def test_an_embedding_with_spare_rows_is_never_shrunk(tiny_llama_dir):
    """Models often pad their vocabulary (more embedding rows than the tokenizer has tokens): new special
    tokens that fit in the spare rows must not resize the matrix down to the tokenizer's length."""
    from transformers import AutoModelForCausalLM

    from o1e_tevatron.families.base import add_family_tokens

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model.resize_token_embeddings(len(tok) + 10, mean_resizing=False)
    ids = add_family_tokens(tok, model, ["<spare_a>", "<spare_b>"])
    assert model.get_input_embeddings().weight.shape[0] == len(tok) + 8  # the 2 new tokens took spare rows
    assert ids == [len(tok) - 2, len(tok) - 1]
