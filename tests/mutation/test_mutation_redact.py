"""Redaction checked by value (issue 24's mutation campaign: each test here kills mutants that the
end-to-end hardening tests let live). The registered secrets are a module-level set: every test
starts from an empty one and leaves the session's as it was."""
import base64
import json
import logging
import sys
import traceback

import pytest

from o1e_tevatron.core import redact as r


@pytest.fixture(autouse=True)
def no_secrets(monkeypatch):
    monkeypatch.setattr(r, "_SECRETS", set())


def test_a_secret_of_six_characters_is_registered_and_a_shorter_or_empty_one_is_not():
    r.register_secret("abcdef")
    r.register_secret("12345")
    r.register_secret("")
    r.register_secret(None)
    assert r._SECRETS == {"abcdef"}
    assert r.redact("abcdef 12345 EMPTY") == "*** 12345 EMPTY"


def test_the_longer_of_two_overlapping_secrets_is_blanked_whole():
    r.register_secret("secret-value")
    r.register_secret("secret-value-and-more")
    assert r.redact("x secret-value-and-more y secret-value z") == "x *** y *** z"


def test_a_secret_inside_a_longer_one_that_sorts_before_it_is_blanked_after_it():
    # longest first, not alphabetical: "x-..." sorts after "a-x-...", and replacing it first would leave "a-"
    r.register_secret("x-secret-value")
    r.register_secret("a-x-secret-value-b")
    assert r.redact("a-x-secret-value-b | x-secret-value") == "*** | ***"


def test_url_secrets_are_the_password_as_written_decoded_and_as_basic_and_secret_query_values():
    r.register_url_secrets("https://reader:pa%24%24word-42@host/v1?api_key=query-secret-7&n=333333&token=tok-value-9")
    basic = base64.b64encode(b"reader:pa$$word-42").decode()
    assert r._SECRETS == {"pa%24%24word-42", "pa$$word-42", basic, "query-secret-7", "tok-value-9"}


def test_a_url_without_password_or_with_a_user_only_registers_nothing_but_secret_parameters():
    r.register_url_secrets(None)
    r.register_url_secrets("")
    r.register_url_secrets("https://reader@host/v1?model=abcdefgh&signature=sig-value-1")
    assert r._SECRETS == {"sig-value-1"}


def test_a_url_password_without_user_is_encoded_with_an_empty_user():
    r.register_url_secrets("https://:password-only@host/")
    assert r._SECRETS == {"password-only", base64.b64encode(b":password-only").decode()}


def test_secret_parameter_names_are_matched_whole_and_in_any_case():
    r.register_url_secrets("https://host/?API-KEY=upper-case-1&monkey=not-a-secret&Access_Token=mixed-case-2")
    assert r._SECRETS == {"upper-case-1", "mixed-case-2"}


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer sk-abc123", "Authorization: Bearer ***"),
    ("{'Proxy-Authorization': 'Basic dXNlcjpwYXNz'}", "{'Proxy-Authorization': 'Basic ***'}"),
    ('"api-key": "k-1", "n": 3', '"api-key": "***", "n": 3'),
    ("cookie=session-1; path=/", "cookie=***; path=/"),
    ("got bearer abcdefgh12 back", "got bearer *** back"),
    ("got bearer short ok", "got bearer short ok"),
    ("see HTTPS://user:pw@host/x and ftp://anon@host/", "see HTTPS://***@host/x and ftp://***@host/"),
    ("https://host/v1?n=3&Token=t-1#frag;auth=a-2 x", "https://host/v1?n=3&Token=***#frag;auth=*** x"),
    ("key sk-abcdefghijklmnop0123 and pk-short", "key *** and pk-short"),
    ("hf_abcdefghijklmnopqrst hf_tooShort", "*** hf_tooShort"),
    ("nothing secret here", "nothing secret here"),
])
def test_every_secret_shape_is_blanked_and_the_rest_kept(text, expected):
    assert r.redact(text) == expected


def test_containers_are_redacted_inside_and_keep_their_type_and_keys():
    r.register_secret("the-secret")
    value = {"the-secret-key": ["a the-secret", ("the-secret", 3)], "n": 1.5, "none": None}
    assert r.redact(value) == {"the-secret-key": ["a ***", ("***", 3)], "n": 1.5, "none": None}
    assert type(r.redact(value)["the-secret-key"][1]) is tuple
    assert r.redact(7) == 7 and r.redact(b"the-secret") == b"the-secret"


def test_json_line_redacts_the_generated_fields_only_and_keeps_unicode():
    r.register_secret("the-secret")
    line = r.json_line({"query": "the-secret é", "thought": "the-secret é", "thoughts": ["the-secret"],
                        "thought_candidates": ["x the-secret"], "id": 1})
    assert line.endswith("}\n") and line.count("\n") == 1
    assert "é" in line  # not escaped
    assert json.loads(line) == {"query": "the-secret é", "thought": "*** é", "thoughts": ["***"],
                                "thought_candidates": ["x ***"], "id": 1}


def test_a_redacted_traceback_is_the_whole_traceback_with_the_secret_blanked():
    r.register_secret("the-secret")
    try:
        raise ValueError("near the-secret")
    except ValueError as error:
        text = r.redacted_traceback(error)
        whole = "".join(traceback.format_exception(error))
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("ValueError: near ***\n") and "the-secret" not in text
    assert text == whole.replace("the-secret", "***")


def test_the_log_filter_formats_redacts_and_renders_the_exception():
    r.register_secret("the-secret")
    try:
        raise KeyError("the-secret")
    except KeyError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("o1e", logging.ERROR, __file__, 1, "using %s for %d rows", ("the-secret", 3), exc_info)
    assert r.RedactingFilter().filter(record) is True
    assert record.msg == "using *** for 3 rows" and record.args is None and record.getMessage() == record.msg
    assert record.exc_info is None
    assert record.exc_text.startswith("Traceback") and record.exc_text.endswith("KeyError: '***'")
    try:  # only the traceback's final newline goes: a message ending in a space or an "X" keeps it
        raise ValueError("BOX ")
    except ValueError:
        record = logging.LogRecord("o1e", logging.ERROR, __file__, 1, "m", None, sys.exc_info())
    r.RedactingFilter().filter(record)
    assert record.exc_text.endswith("ValueError: BOX ")
    try:
        raise ValueError("BOX")
    except ValueError:
        record = logging.LogRecord("o1e", logging.ERROR, __file__, 1, "m", None, sys.exc_info())
    r.RedactingFilter().filter(record)
    assert record.exc_text.endswith("ValueError: BOX")
    plain = logging.LogRecord("o1e", logging.INFO, __file__, 1, "plain the-secret", None, None)
    assert r.RedactingFilter().filter(plain) is True
    assert plain.msg == "plain ***" and plain.exc_text is None and plain.exc_info is None


def test_log_redaction_is_installed_once_on_every_root_handler(monkeypatch):
    root = logging.getLogger()
    handlers = [logging.StreamHandler(), logging.StreamHandler()]
    monkeypatch.setattr(root, "handlers", handlers)
    r.install_log_redaction()
    r.install_log_redaction()
    assert [[type(f) for f in h.filters] for h in handlers] == [[r.RedactingFilter]] * 2
