"""Secrets never reach a log line, an error message or a file o1e writes.

One function, :func:`redact`, is applied to everything o1e writes or logs that could carry one: it
blanks every secret registered with :func:`register_secret` (API keys read from the environment),
and anything shaped like one: ``Authorization`` / ``api-key`` header values, ``Bearer`` tokens,
``user:password@`` in URLs, and the values of query parameters such as ``key``, ``token`` or
``password``. :class:`RedactingFilter` applies it to log records; :func:`redacted_traceback` to a
traceback before it is printed; :func:`json_line` to the generated text of every row o1e writes (a
server may echo the request's ``Authorization`` header into a successful answer too).
"""
from __future__ import annotations

import base64
import json
import logging
import re
import traceback
import urllib.parse
from typing import Any

MASK = "***"
_SECRETS: set[str] = set()
_SECRET_PARAMETER = r"(?:api[_-]?key|key|token|access[_-]?token|auth|password|passwd|secret|sig|signature)"
#: Fields of the rows o1e writes that hold generated text: a teacher's candidates, the voted thought, a
#: thought server's thoughts. The user's own fields (query, passages) are written as read: code-search
#: passages are full of header- and URL-shaped text, and a row's id is computed from them.
GENERATED_FIELDS = ("thought_candidates", "thought", "thoughts")
_PATTERNS = [
    # header values (a server echoing the request, a repr of the headers)
    (re.compile(r"(?i)((?:proxy-)?authorization|x-api-key|api-key|cookie)(['\"]?\s*[:=]\s*['\"]?)"
                r"(?:(bearer|basic|token)\s+)?[^\s'\",;}\]]+"), lambda m: f"{m[1]}{m[2]}{m[3] + ' ' if m[3] else ''}{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), lambda m: f"{m[1]} {MASK}"),
    # URL credentials and secret-looking query parameters
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+(?::[^/\s@'\"]*)?@"), lambda m: f"{m[1]}{MASK}@"),
    (re.compile(rf"(?i)([?&;]{_SECRET_PARAMETER}=)[^&\s'\"#]+"), lambda m: f"{m[1]}{MASK}"),
    # well-known key shapes
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"), lambda m: MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), lambda m: MASK),
]


def register_secret(value: str | None) -> None:
    """Blank ``value`` wherever it appears from now on (short placeholders such as 'EMPTY' are left)."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def register_url_secrets(url: str | None) -> None:
    """Register the credentials ``url`` carries: the password of ``user:password@`` (as written, decoded, and
    as the ``Basic`` header an HTTP client sends for it, which a server can echo) and secret query values."""
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        user, password = urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password)
        for value in (parts.password, password, base64.b64encode(f"{user}:{password}".encode()).decode()):
            register_secret(value)
    for name, value in urllib.parse.parse_qsl(parts.query):
        if re.fullmatch(rf"(?i){_SECRET_PARAMETER}", name):
            register_secret(value)


def redact(value: Any) -> Any:
    """``value`` with every secret blanked: strings, and strings inside dicts, lists and tuples."""
    if isinstance(value, str):
        for secret in sorted(_SECRETS, key=len, reverse=True):
            value = value.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    return value


def json_line(record: dict) -> str:
    """``record`` as one JSONL line with its :data:`GENERATED_FIELDS` redacted: every writer of candidates,
    voted rows and thoughts writes through here, so a server that echoes the key into an answer puts it
    on no disk."""
    return json.dumps({key: redact(value) if key in GENERATED_FIELDS else value for key, value in record.items()},
                      ensure_ascii=False) + "\n"


def redacted_traceback(error: BaseException) -> str:
    return redact("".join(traceback.format_exception(error)))


class RedactingFilter(logging.Filter):
    """Formats each record's message, redacted, before any handler sees it (tracebacks included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = redacted_traceback(record.exc_info[1]).rstrip("\n")
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Redact every record that reaches the root logger's handlers (call after ``logging.basicConfig``)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
