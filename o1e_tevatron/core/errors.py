"""One input error type and one error boundary for every ``python -m`` command.

Every command runs its ``main`` through :func:`run_command`: an error o1e knows (bad input, a missing or
mismatched checkpoint, a full disk, an answer of a thought or teacher server) ends the command in one
redacted line ``error: ...`` on stderr and the exit code of its kind (:data:`EXIT_CODES`); any other
error keeps its traceback, redacted too (``core/redact.py``), with exit code 1. The codes are documented
in docs/reliability.md.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from typing import Any, Callable, Iterator, Optional

from .redact import redact, redacted_traceback, register_secret

EXIT_UNEXPECTED = 1  # a bug: the traceback is printed (redacted)
EXIT_INPUT = 2  # a file, flag or dataset o1e refuses (argparse's usage errors exit 2 too)
EXIT_PARTIAL = 3  # synthesis.generate: some rows failed; run the same command again to retry them
EXIT_CHECKPOINT = 4  # a model or checkpoint that is missing, damaged or of another base
EXIT_DISK_FULL = 5  # no space left on device
EXIT_SERVER = 6  # a thought or teacher server refused or could not be reached
EXIT_CODES = {EXIT_UNEXPECTED: "unexpected error (redacted traceback)", EXIT_INPUT: "bad input",
              EXIT_PARTIAL: "some rows failed (rerun to retry them)", EXIT_CHECKPOINT: "bad model or checkpoint",
              EXIT_DISK_FULL: "disk full", EXIT_SERVER: "server error"}
#: Environment variables whose values are secrets wherever they appear (a server may echo them back).
SECRET_ENVIRONMENT = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "ANTHROPIC_API_KEY")


class InputError(ValueError):
    """Input o1e refuses. The message starts with where (``file:line``, ``file`` or a record id) and ends
    with what to do, so that one line is enough; ``path`` / ``line`` let tests and callers check where."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: Optional[int] = None,
                 hint: Optional[str] = None):
        self.path = None if path is None else str(path)
        self.line, self.hint = line, hint
        where = "" if self.path is None else f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        text = where + message + (f": {hint}" if hint else "")
        super().__init__(" ".join(part.strip() for part in text.splitlines()))  # one line, whatever a library said


class CheckpointError(InputError):
    """A model folder or checkpoint that is missing, damaged or made for another base or shape."""

    exit_code = EXIT_CHECKPOINT


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC, also when a library reports it in words only (torch's writer, safetensors' "os error 28"),
    here or in the error it was raised from."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        if getattr(error, "errno", None) == errno.ENOSPC or "no space left on device" in text.lower() \
                or "os error 28" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def _is_server_error(error: BaseException) -> bool:
    """openai's and httpx's errors, without importing either (the training side may run without them)."""
    return any(cls.__module__.split(".")[0] in ("openai", "httpx") and cls.__name__.endswith(("Error", "Exception"))
               for cls in type(error).__mro__)


def exit_code_of(error: BaseException) -> Optional[int]:
    """The exit code of an error o1e knows; None for one it does not (a bug: keep its traceback)."""
    if isinstance(error, InputError):
        return error.exit_code
    if is_disk_full(error):
        return EXIT_DISK_FULL
    if _is_server_error(error):
        return EXIT_SERVER
    if isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError)):
        return EXIT_INPUT  # o1e's own checks raise these with the file and line in the message
    return None


def one_line(error: BaseException) -> str:
    """The error as one redacted line (a KeyError's message without its quotes; a full disk said as such)."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if _is_server_error(error):
        message = f"{type(error).__name__}: {message}"
    if is_disk_full(error) and "no space left on device" not in message.lower():
        message = f"no space left on device ({message}): free space and run the same command again"
    return " | ".join(part.strip() for part in redact(message).splitlines() if part.strip())


def register_environment_secrets() -> None:
    """Blank the API keys and tokens of the environment in every line o1e prints or writes."""
    for name in SECRET_ENVIRONMENT:
        register_secret(os.environ.get(name))


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """The error boundary: a known error ends the command with one redacted line and its exit code,
    an unknown one with its redacted traceback and exit code 1. A ``SystemExit`` with a message (a
    flag check) is redacted and exits 2."""
    register_environment_secrets()
    try:
        with _usage_errors_through_the_boundary():
            yield
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            raise
        message = str(e.code)
        print(redact(message if message.startswith("error: ") else f"error: {message}"), file=sys.stderr)
        raise SystemExit(EXIT_INPUT) from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001  (the boundary: everything ends here, redacted)
        code = exit_code_of(e)
        if code is None:
            sys.stderr.write(redacted_traceback(e))
            raise SystemExit(EXIT_UNEXPECTED) from None
        print(f"error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(code) from None


@contextlib.contextmanager
def _usage_errors_through_the_boundary() -> Iterator[None]:
    """argparse prints a usage error itself, the offending value in it (a key given to the wrong flag), and
    exits 2: here its usage is printed, and its message raised to the boundary, which redacts it."""
    original = argparse.ArgumentParser.error

    def error(parser: argparse.ArgumentParser, message: str):
        parser.print_usage(sys.stderr)
        raise SystemExit(f"error: {parser.prog}: {message}")

    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original


def run_command(main: Callable[..., Any], *args: Any) -> None:
    """Run a command's ``main`` inside :func:`one_line_errors` and exit: with its return value when it is
    an int (an exit code), else 0."""
    with one_line_errors():
        result = main(*args)
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)

