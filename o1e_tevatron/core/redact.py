"""Secrets never reach a log line, an error message or a file o1e writes.

One function, :func:`redact`, is applied to everything o1e writes or logs that could carry one: it
blanks every secret registered with :func:`register_secret` (API keys read from the environment),
and anything shaped like one: ``Authorization`` / ``api-key`` header values, ``Bearer`` tokens,
``user:password@`` in URLs, and the values of query parameters such as ``key``, ``token`` or
``password``. :class:`RedactingFilter` applies it to log records; :func:`redacted_traceback` to a
traceback before it is printed.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
from typing import Any, Iterator

MASK = "***"
_SECRETS: set[str] = set()
_PATTERNS = [
    # header values (a server echoing the request, a repr of the headers)
    (re.compile(r"(?i)((?:proxy-)?authorization|x-api-key|api-key|cookie)(['\"]?\s*[:=]\s*['\"]?)"
                r"(?:(bearer|basic|token)\s+)?[^\s'\",;}\]]+"), lambda m: f"{m[1]}{m[2]}{m[3] + ' ' if m[3] else ''}{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), lambda m: f"{m[1]} {MASK}"),
    # URL credentials and secret-looking query parameters
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+(?::[^/\s@'\"]*)?@"), lambda m: f"{m[1]}{MASK}@"),
    (re.compile(r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|auth|password|passwd|secret|sig|signature)=)"
                r"[^&\s'\"#]+"), lambda m: f"{m[1]}{MASK}"),
    # well-known key shapes
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"), lambda m: MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), lambda m: MASK),
]


def register_secret(value: str | None) -> None:
    """Blank ``value`` wherever it appears from now on (short placeholders such as 'EMPTY' are left)."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


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


def redacted_traceback(error: BaseException) -> str:
    return redact("".join(traceback.format_exception(error)))


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input (a ValueError or a missing file, whose message names the file and line or id) ends a
    command with that one line, redacted, and exit status 2, instead of a traceback."""
    try:
        yield
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        raise SystemExit(2) from None


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
