"""The layering rule of the layout (issue 23), read from the sources with ``ast``: the training side
(``o1e_tevatron``) never imports the search side (``o1e_pyserini``), and the search side imports only
``o1e_tevatron.core``, ``o1e_tevatron.families`` and ``o1e_tevatron.models`` of the training side.
Lazy imports inside functions count as much as top-level ones."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEARCH_MAY_IMPORT = ("o1e_tevatron.core", "o1e_tevatron.families", "o1e_tevatron.models")
# one-release aliases of moved modules (o1e_tevatron/core/deprecation.py) re-export their new place
ALIASES = {"o1e_tevatron/modeling.py", "o1e_tevatron/template.py", "o1e_tevatron/checkpoint.py",
           "o1e_tevatron/release.py", "o1e_tevatron/inference.py", "o1e_tevatron/synthesis/prompts.py"}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved against ``package``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from o1e_tevatron import core` imports o1e_tevatron.core
            found += [(node.lineno, f"{module}.{alias.name}" if node.module is None or module.count(".") == 0
                       else module) for alias in node.names]
    return found


def violations(root: Path = REPO) -> list[str]:
    problems = []
    for side in ("o1e_tevatron", "o1e_pyserini"):
        for path in sorted((root / side).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            parts = list(path.relative_to(root).with_suffix("").parts)
            package = ".".join(parts if parts[-1] == "__init__" and parts.pop() else parts[:-1])
            for line, module in imported_modules(path, package):
                if side == "o1e_tevatron" and (module == "o1e_pyserini" or module.startswith("o1e_pyserini.")):
                    problems.append(f"{relative}:{line}: the training side imports {module}")
                if side == "o1e_pyserini" and module.startswith("o1e_tevatron") and relative not in ALIASES and not (
                        module in SEARCH_MAY_IMPORT or module.startswith(tuple(p + "." for p in SEARCH_MAY_IMPORT))):
                    problems.append(f"{relative}:{line}: the search side imports {module} (only core, families, models)")
    return problems


def test_each_side_imports_only_what_the_layering_allows():
    assert violations() == []


@pytest.mark.parametrize("side, line, expected", [
    ("o1e_tevatron", "import o1e_pyserini\n", "the training side imports o1e_pyserini"),
    ("o1e_tevatron", "from o1e_pyserini.search import fusion\n", "the training side imports o1e_pyserini.search"),
    ("o1e_pyserini", "from o1e_tevatron.trainer import O1ETrainer\n", "the search side imports o1e_tevatron.trainer"),
    ("o1e_pyserini", "def f():\n    from o1e_tevatron import data\n", "the search side imports o1e_tevatron.data"),
])
def test_a_planted_import_is_caught(tmp_path, side, line, expected):
    """The check fails on a violating import planted in a copy of a package (relative ones too)."""
    for package in ("o1e_tevatron", "o1e_pyserini"):
        (tmp_path / package).mkdir()
    (tmp_path / side / "planted.py").write_text(line)
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_relative_imports_resolve_against_the_package(tmp_path):
    (tmp_path / "o1e_tevatron").mkdir()
    (tmp_path / "o1e_pyserini" / "search").mkdir(parents=True)
    (tmp_path / "o1e_pyserini" / "search" / "planted.py").write_text("from .. import eval\n")
    (tmp_path / "o1e_tevatron" / "planted.py").write_text("from .core import tensors\nfrom .trainer import x\n")
    assert violations(tmp_path) == []
