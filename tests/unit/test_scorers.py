"""The scorer registry: score() dispatches through it, a new method is one class, and the explorer and the
CLI list the methods from it."""

import ast
from pathlib import Path

import numpy as np
import pytest

from headlab import scorers
from headlab.scorers import Scorer, TaskResult, register
from headlab.scorers.base import REGISTRY
from headlab.scoring import score
from headlab.tasks import Task


@pytest.fixture
def constant_scorer():
    """A method added the way a contributor would: one Scorer subclass, registered."""

    @register
    class Constant(Scorer):
        name = "constant"
        summary = "every head gets the item's index plus an offset"
        order = 99
        variants = {"offset 1": {"offset": 1.0}}
        options = {"offset": 0.0}
        uses_ablation = uses_metric = False
        pools = True

        def check(self, options):
            unknown = set(options) - set(self.options)
            if unknown:
                raise ValueError(f"unknown constant option(s) {sorted(unknown)}")
            return {**self.options, **options}

        def run(self, model, jobs, options, batch_size, progress):
            L, H = len(model.blocks), model.cfg.n_heads
            return [
                TaskResult(
                    np.arange(len(j.task))[:, None, None] + options["offset"] + np.zeros((1, L, H), np.float32),
                    np.zeros(len(j.task)),
                )
                for j in jobs
            ]

    yield REGISTRY["constant"]
    del REGISTRY["constant"]


def test_a_new_method_needs_no_change_to_score(constant_scorer, tiny_model, tmp_path):
    tasks = [
        Task.from_records("A", [{"prompt": "ab", "answer": " c"}] * 1 + [{"prompt": "de", "answer": " f"}]),
        Task.from_records("B", [{"prompt": "xy", "answer": " z"}]),
    ]
    s = score(tiny_model, tasks, method="constant", offset=2.0, cache=tmp_path, progress=False)
    assert s.method == "constant" and s.params["offset"] == 2.0 and s.params["ablation"] is None
    np.testing.assert_array_equal(s.values[:, 0, 0], [2.5, 2.0])  # mean of (0, 1) + 2; 0 + 2
    assert len(list(tmp_path.glob("*.npz"))) == 2  # cached per task, like any method
    with pytest.raises(ValueError, match="unknown constant option"):
        score(tiny_model, tasks, method="constant", depth=3, cache=False, progress=False)
    assert "constant" in scorers.names() and scorers.names()[-1] == "constant"
    assert scorers.variants()["constant · offset 1"] == ("constant", {"offset": 1.0})


def test_unknown_method_names_the_registered_ones(tiny_model, toy_task):
    with pytest.raises(
        ValueError, match=r"unknown method 'magic': choose from \('attribution', 'ablation', 'verified'"
    ):
        score(tiny_model, toy_task, method="magic", cache=False, progress=False)


def test_score_has_no_method_specific_branch():
    """scoring.py never compares anything with a method's name: what differs is declared by the scorers."""
    tree = ast.parse((Path(__file__).resolve().parents[2] / "headlab" / "scoring.py").read_text())
    names = set(scorers.names())
    compared = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        for part in [node.left, *node.comparators]
        if isinstance(part, ast.Constant) and part.value in names
    ]
    assert not compared, f"scoring.py compares with a method name at lines {compared}"


def test_explorer_and_cli_list_the_registry():
    from headlab import cli
    from headlab.viz.explorer.menus import method_choices

    assert method_choices(None) == scorers.variants()
    assert list(scorers.variants())[0] == "attribution · resample"  # the explorer's default
    with pytest.raises(SystemExit):
        cli.main(["score", "--method", "nonsense"])


def test_every_scorer_declares_itself():
    for name in scorers.names():
        s = scorers.get(name)
        assert s.name == name and s.summary and s.variants, name
        assert s.check({k: v for k, v in s.options.items()}) == s.check({})  # defaults validate


def test_cli_passes_the_method_options_and_the_item_count(tiny_model, tmp_path, monkeypatch, capsys):
    """``score --method verified --steps 1,3 --k 4 --items 2`` (zero ablation: the byte tokenizer's
    counterfactuals differ in length) scores each task's first 2 items with both screens, as ``score()`` called
    with those options would; its table marks the exact values and lists the screen's disagreements, the
    ``--top`` largest per task."""
    from headlab import cli, models
    from headlab.results import HeadScores
    from headlab.tasks import builtin

    monkeypatch.setattr(models, "load_model", lambda *a, **k: tiny_model)
    names = ["Retrieval", "Logical Reasoning"]
    argv = ["score", "--method", "verified", "--steps", "1,3", "--items", "2", "--tasks", ",".join(names)]
    argv += ["--ablation", "zero", "--k", "4", "--top", "1", "--quiet"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 0
    assert "verified/zero (steps=[1, 3], k=4) scores, metric logit_diff, 2 tasks" in capsys.readouterr().out
    saved = HeadScores.load(tmp_path / "scores.npz")
    assert saved.params["steps"] == [1, 3] and saved.params["k"] == 4 and saved.n_examples.tolist() == [2, 2]
    tasks = {name: builtin()[name].subset(2) for name in names}
    direct = score(tiny_model, tasks, method="verified", steps=[1, 3], k=4, ablation="zero", cache=False)
    np.testing.assert_array_equal(saved.values, direct.values)
    np.testing.assert_array_equal(saved.verified, direct.verified)
    text = (tmp_path / "top_heads.txt").read_text()
    assert "  exact" in text
    found = direct.disagreements()
    assert f"screen disagreements: {len(found)} of {int(direct.verified.sum())} verified heads" in text
    listed = text.split("why\n")[1].splitlines()
    expected = found.groupby("task", sort=False).head(1)  # --top 1 per task
    assert len(found) > len(expected) == len(listed) == 2, "the tiny model's screens should be wrong 3 times"
    for line, row in zip(listed, expected.itertuples()):
        layer, head, screened, rank, exact, exact_rank, *why = line[24:].split()  # after the task column
        assert line[:24].strip() == row.task
        assert (int(layer), int(head), int(rank), int(exact_rank), " ".join(why)) == (
            row.layer,
            row.head,
            row.attribution_rank,
            row.exact_rank,
            row.why,
        ), line
        np.testing.assert_allclose([float(screened), float(exact)], [row.attribution, row.exact], atol=5e-5)
    assert cli.main(["score", "--method", "attribution", "--k", "4", "--out", str(tmp_path / "b")]) == 2
    assert "unknown attribution option(s) ['k']" in capsys.readouterr().err
    fixed = ["score", "--method", "verified", "--candidates", "3", "--ablation", "zero", "--items", "2", "--quiet"]
    assert cli.main([*fixed, "--out", str(tmp_path / "c")]) == 0
    assert HeadScores.load(tmp_path / "c" / "scores.npz").verified.sum((1, 2)).tolist() == [3] * 8  # top 3 by |score|


def test_a_new_method_is_one_file_and_its_options_reach_the_cli(tiny_model, tmp_path, monkeypatch, capsys):
    """A toy scorer registered here, with one option of its own: the CLI's help lists ``--width`` with its
    line and default, ``--width 7`` reaches the scorer (its map is 7 everywhere), and another method refuses the
    flag in one line — with no change to the CLI or the explorer (its menu lists the toy's variant)."""
    from headlab import cli, models
    from headlab.results import HeadScores
    from headlab.scorers import REGISTRY, Scorer, TaskResult, register

    @register
    class Toy(Scorer):
        name = "toy"
        summary = "every head scores its width"
        variants = {"plain": {}}
        options = {"width": 3}
        option_help = {"width": "the value every head gets"}
        uses_ablation = uses_metric = False

        def check(self, options):
            unknown = sorted(set(options) - set(self.options))
            if unknown:
                raise ValueError(f"unknown toy option(s) {unknown}")
            out = {**self.options, **options}
            if not isinstance(out["width"], int):
                raise ValueError(f"toy option width must be an int, got {out['width']!r}")
            return out

        def run(self, model, jobs, options, batch_size, progress):
            shape = (model.cfg.n_layers, model.cfg.n_heads)
            return [
                TaskResult(np.full((len(j.task), *shape), float(options["width"])), np.zeros(len(j.task))) for j in jobs
            ]

    try:
        with pytest.raises(SystemExit):
            cli.main(["score", "-h"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--width VALUE toy: the value every head gets (default 3)" in help_text
        from headlab.viz.explorer.menus import method_choices

        assert method_choices(None)["toy · plain"] == ("toy", {})  # the explorer's Method menu lists it
        monkeypatch.setattr(models, "load_model", lambda *a, **k: tiny_model)
        argv = ["score", "--method", "toy", "--width", "7", "--items", "2", "--tasks", "Retrieval", "--quiet"]
        assert cli.main([*argv, "--out", str(tmp_path)]) == 0
        saved = HeadScores.load(tmp_path / "scores.npz")
        assert saved.params["width"] == 7 and np.all(saved.values == 7.0)
        assert cli.main(["score", "--method", "attribution", "--width", "7", "--out", str(tmp_path / "b")]) == 2
        assert "unknown attribution option(s) ['width']" in capsys.readouterr().err
    finally:
        REGISTRY.pop("toy", None)


@pytest.mark.filterwarnings("ignore:.*counterfactual prompts differ in token length")
def test_cli_eval_and_demo_on_the_first_items(tiny_model, tmp_path, monkeypatch, capsys):
    """``eval --items 2`` prints the behaviour table of each task's first 2 items; ``demo`` scores all eight
    tasks by resample attribution, as ``score()`` does."""
    from headlab import cli, models
    from headlab.metrics import evaluate, summary_table
    from headlab.results import HeadScores
    from headlab.tasks import builtin

    monkeypatch.setattr(models, "load_model", lambda *a, **k: tiny_model)
    assert cli.main(["eval", "--items", "2", "--tasks", "Retrieval,Inference"]) == 0
    tasks = builtin()
    expected = summary_table([evaluate(tiny_model, tasks[n].subset(2)).summary() for n in ("Retrieval", "Inference")])
    assert capsys.readouterr().out.strip() == expected.strip()

    assert cli.main(["demo", "--quiet", "--out", str(tmp_path)]) == 0
    saved = HeadScores.load(tmp_path / "scores.npz")
    direct = score(tiny_model, tasks, method="attribution", ablation="resample", metric="logit_diff", cache=False)
    assert saved.tasks == direct.tasks and saved.n_examples.tolist() == direct.n_examples.tolist()
    np.testing.assert_allclose(saved.values, direct.values, atol=1e-6)
