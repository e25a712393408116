"""The import paths the layout of issue 23 moved keep working for one release, each with a
DeprecationWarning that names the new place; the commands keep their names."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MOVED_MODULES = {
    "o1e_tevatron.modeling": ("O1EModel", "o1e_tevatron.families.o1e.model"),
    "o1e_tevatron.template": ("Template", "o1e_tevatron.families.o1e.template"),
    "o1e_tevatron.checkpoint": ("load_model", "o1e_tevatron.families.registry"),
    "o1e_tevatron.release": ("recognise", "o1e_tevatron.families.release"),
    "o1e_tevatron.inference": ("encode_sequences", "o1e_tevatron.core.encoding"),
    "o1e_tevatron.synthesis.prompts": ("TeacherPrompt", "o1e_tevatron.families.o1e.prompts"),
    "o1e_pyserini.encoder": ("O1EQueryEncoder", "o1e_pyserini.encoders.o1e"),
    "o1e_pyserini.debater": ("DebaterQueryEncoder", "o1e_pyserini.encoders.debater"),
    "o1e_pyserini.repllama": ("RepLlamaQueryEncoder", "o1e_pyserini.encoders.repllama"),
    "o1e_pyserini.augmented": ("ThoughtAugmentedQueryEncoder", "o1e_pyserini.encoders.augmented"),
    "o1e_pyserini.base": ("FamilyDocumentEncoder", "o1e_pyserini.encoders.base"),
    "o1e_pyserini.registry": ("ENCODERS", "o1e_pyserini.encoders.registry"),
    "o1e_pyserini.thought_cache": ("ThoughtCache", "o1e_pyserini.thinking.cache"),
    "o1e_pyserini.adaptive": ("AdaptivePolicy", "o1e_pyserini.thinking.adaptive"),
    "o1e_pyserini.fusion": ("fuse", "o1e_pyserini.search.fusion"),
    "o1e_pyserini.datasets": ("load", "o1e_pyserini.evaluation.datasets"),
}
MOVED_NAMES = [  # (old module, name, new module, new name)
    ("o1e_tevatron.loss", "ThoughtGenerationLoss", "o1e_tevatron.families.o1e.loss", "ThoughtGenerationLoss"),
    ("o1e_tevatron.loss", "MaxStepSelfDistillationLoss", "o1e_tevatron.families.debater.loss",
     "MaxStepSelfDistillationLoss"),
    ("o1e_tevatron.families.debater", "DebaterModel", "o1e_tevatron.families.debater.model", "DebaterModel"),
    ("o1e_tevatron.synthesis.rows", "parse_row", "o1e_tevatron.core.rows", "training_row"),
    ("o1e_pyserini.thinking", "HFThoughts", "o1e_pyserini.thinking.backends", "HFThoughts"),
    ("o1e_pyserini.eval", "EvalConfig", "o1e_pyserini.evaluation.harness", "EvalConfig"),
    ("o1e_pyserini.eval", "compare", "o1e_pyserini.evaluation.regressions", "compare"),
    ("o1e_pyserini.eval", "main", "o1e_pyserini.evaluation.cli", "main"),
    ("o1e_pyserini.grounding", "LuceneGrounder", "o1e_pyserini.thinking.grounding", "LuceneGrounder"),
    ("o1e_pyserini.mine", "corpus_index", "o1e_pyserini.search.mine", "corpus_index"),
    ("o1e_pyserini.think", "part_path", "o1e_pyserini.thinking.parts", "part_path"),
    ("o1e_pyserini.encode", "check_corpus", "o1e_pyserini.search.encode", "check_corpus"),
]


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_warns_and_holds_the_new_ones_names(old):
    name, new = MOVED_MODULES[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize("old, name, new, new_name", MOVED_NAMES)
def test_an_old_name_warns_and_is_the_moved_object(old, name, new, new_name):
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to {new}.{new_name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), new_name)


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError):
        importlib.import_module("o1e_pyserini.thinking").no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from o1e_pyserini.eval import no_such_name")


def test_the_old_command_paths_run_the_new_commands_without_a_warning():
    for command in ("o1e_pyserini.think", "o1e_pyserini.mine"):
        proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-m", command, "--help"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"python -m {command}" in proc.stdout


def test_an_old_module_also_holds_the_names_that_left_it_for_core():
    from o1e_tevatron.core import rows, tensors
    with pytest.warns(DeprecationWarning):
        modeling = importlib.reload(importlib.import_module("o1e_tevatron.modeling"))
        template = importlib.reload(importlib.import_module("o1e_tevatron.template"))
    assert modeling.position_ids_from_mask is tensors.position_ids_from_mask
    assert template.passage_text is rows.passage_text
