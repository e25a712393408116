"""recipes/mini's report helpers: the training log as the loss plots read it."""
import importlib.util
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "mini"


def load(name):
    spec = importlib.util.spec_from_file_location(name, RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_resumed_run_counts_each_step_once(tmp_path):
    """Stopped after logging step 3 with its last checkpoint at step 2, the run resumed and logged step 3 again."""
    log = tmp_path / "train.log"
    line = "{{'loss': '{}', 'ctr_loss': '{}', 'epoch': '{}'}}\n"
    log.write_text(line.format(4, 4, 0.25) + line.format(3, 3, 0.5) + line.format(2.5, 2.5, 0.75)
                   + "INFO loading the checkpoint\n" + line.format(2, 2, 0.75) + line.format(1, 1, 1.0)
                   + "{'train_runtime': '9', 'epoch': '1'}\n")
    assert [row["loss"] for row in load("report").read_losses(log)] == [4, 3, 2, 1]
