"""Fixtures for synthesis: loopback OpenAI-compatible teachers backed by the session's tiny Llama."""
import contextlib

import pytest

from o1e_tevatron.synthesis.loopback_server import LoopbackServerArguments, serve_in_thread


@pytest.fixture(scope="session")
def loopback_teacher(tiny_llama_dir):
    """Base URL of a fault-free loopback teacher, shared by the session."""
    with serve_in_thread(LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir))) as url:
        yield url


@pytest.fixture
def serve_teacher(tiny_llama_dir):
    """Start a loopback teacher with the given options (faults, latency); returns its base URL."""
    with contextlib.ExitStack() as stack:
        yield lambda **options: stack.enter_context(serve_in_thread(
            LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir), **options)))
