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


def test_the_dev_curve_ends_at_each_arms_reference_mode(tmp_path):
    """DEBATER has no fast mode: its curve points score the last step, and so does its final point (c-last)."""
    dev = tmp_path / "dev"
    for name, score in (("curve/a-step87", 0.4), ("a-fast", 0.5), ("curve/c-step87", 0.2), ("c-last", 0.3),
                        ("c-max-steps", 0.9)):
        run = dev / name / "o1e__scifact__dev"
        run.mkdir(parents=True)
        (run / "x.metrics.json").write_text(f'{{"metrics": {{"nDCG@10": {score}}}}}')
    index = {"dataset": "o1e/scifact/dev", "arms": {
        "a": {"label": "(a)", "steps": 261, "results": {"fast": "a-fast"}},
        "c": {"label": "(c)", "steps": 261, "reference": "last", "results": {"last": "c-last", "max-steps": "c-max-steps"}}}}
    table = load("dev_report").curve(dev / "index.yaml", index, tmp_path)
    assert "| (a) | 0.4000 | 0.5000 |" in table and "| (c) | 0.2000 | 0.3000 |" in table
    assert (tmp_path / "dev-curve.png").stat().st_size > 0
