"""The workshop's checks (headlab.workshop) on a tiny model: a right answer prints ✓, each kind of wrong
answer raises NotYet with its own hint, and every check recomputes its answer from what it is given."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import headlab
from headlab import workshop
from headlab.analysis.interventions import mask_heads
from headlab.metrics import evaluate
from headlab.testing import tiny
from headlab.workshop import NotYet

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def scores(tiny_model, toy_task):
    return headlab.score(tiny_model, toy_task, method="attribution", cache=False, progress=False)


@pytest.fixture(scope="module")
def clean(tiny_model, toy_task):
    return evaluate(tiny_model, toy_task).logit_diff


@pytest.fixture(scope="module")
def margin(clean):
    """A margin between the tiny model's logit differences (its second largest), so that every share hint is
    reachable: one item above it, more above 0."""
    return float(clean.sort().values[-2])


def crafted(scores, values):
    """``scores`` with its one map replaced by ``values`` (L, H)."""
    return dataclasses.replace(scores, values=np.asarray(values, dtype=float)[None])


def test_a_wrong_answer_reads_as_one_line_in_jupyter():
    hint = "Exercise 2, top_head: layer and head are swapped: give (layer, head)"
    err = NotYet(hint)
    assert isinstance(err, AssertionError)
    assert err._render_traceback_() == [f"\x1b[31m✗ {hint}\x1b[0m"]


def test_behaviour_right_answer_prints_a_tick(tiny_model, toy_task, clean, margin, capsys):
    share = (clean > margin).float().mean().item()
    assert 0 < share < (clean > 0).float().mean() < 1 and clean.mean() != clean.abs().mean()  # every hint reachable
    workshop.check_behaviour(clean.mean(), share, tiny_model, toy_task, margin=margin)
    mean, right = clean.mean().item(), int((clean > 0).sum())
    assert capsys.readouterr().out == (
        f"✓ Exercise 1: mean logit difference {mean:.2f}; {share:.0%} of 6 items prefer the right answer by more than "
        f"{margin:g} logits ({right} prefer it at all)\n"
    )


def test_behaviour_share_is_not_trivial_on_the_workshop_task():
    """On the notebook's task every item prefers the right answer, so a share of logit_diff > 0 would be 1.0 for
    any answer that counts positives (>= 0 too): the exercise asks for the confident ones, above MARGIN."""
    assert workshop.MARGIN == 2.0
    path = NOTEBOOKS / "03_workshop_solutions.ipynb"
    outputs = ["".join(o.get("text", "")) for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]
    tick = next(t for t in outputs if t.startswith("✓ Exercise 1"))
    share = int(tick.split("; ")[1].split("%")[0])
    assert 0 < share < 100, tick


@pytest.mark.parametrize(
    "answer, hint",
    [
        (lambda ld: ..., "mean_logit_diff: replace the ... with your answer"),
        (lambda ld: ld, "holds 6 values (one per item: 6 items): reduce it to one number"),
        (lambda ld: "3.0", "give a number, not str '3.0'"),
        (lambda ld: True, "True is a yes/no: give a number"),
        (lambda ld: -ld.mean(), "wrong sign"),
        (lambda ld: ld.sum(), "that is the sum over the items"),
        (lambda ld: ld.abs().mean(), "that is the mean of |logit difference|: keep the sign"),
        (lambda ld: ld.mean() + 1, "is not the mean logit difference"),
    ],
)
def test_behaviour_mean_hints(tiny_model, toy_task, clean, answer, hint):
    with pytest.raises(NotYet, match=r"^Exercise 1, mean_logit_diff: ") as err:
        workshop.check_behaviour(answer(clean), 0.5, tiny_model, toy_task)
    assert hint in str(err.value)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (lambda ld, m: ..., "share_confident: replace the ... with your answer"),
        (lambda ld, m: int((ld > m).sum()), "is a count: divide by the number of items (6)"),
        (lambda ld, m: 100 * (ld > m).float().mean().item(), "is a percentage: give a share from 0 to 1"),
        (lambda ld, m: (ld > 0).float().mean().item(), "that is every item with logit_diff > 0: count only the"),
        (lambda ld, m: (ld >= 0).float().mean().item(), "that is every item with logit_diff > 0: count only the"),
        (lambda ld, m: (ld <= m).float().mean().item(), "that is the share at or below"),
        (lambda ld, m: 0.01, "0.01 is not the share of items with logit_diff > "),
    ],
)
def test_behaviour_share_hints(tiny_model, toy_task, clean, margin, answer, hint):
    with pytest.raises(NotYet, match=r"^Exercise 1, share_confident: ") as err:
        workshop.check_behaviour(clean.mean(), answer(clean, margin), tiny_model, toy_task, margin=margin)
    assert hint in str(err.value)


def test_top_head_from_the_scores(scores, capsys):
    m = scores["Toy"]
    layer, head = np.unravel_index(m.argmax(), m.shape)
    workshop.check_top_head((layer, head), scores, "Toy")  # numpy ints are fine
    assert capsys.readouterr().out == f"✓ Exercise 2: L{layer}.H{head} is the top head of Toy (score {m.max():+.2f})\n"


# a 3 × 4 map: top head (1, 2) = 0.5, bottom (2, 0) = −0.9 (the largest |score|), smallest |score| (0, 3)
MAP = [[0.1, 0.2, 0.3, 0.01], [0.05, -0.1, 0.5, 0.2], [-0.9, 0.4, -0.2, 0.15]]


@pytest.mark.parametrize(
    "answer, hint",
    [
        (..., "replace the ... with your answer, a pair (layer, head)"),
        (6, "6 is one number (a flat index?): give (layer, head), e.g. divmod(i, 4)"),
        ("L1.H2", "give a pair (layer, head) of ints, not str 'L1.H2'"),
        ((1, 2, 0.5), "has three entries, (layer, head, score)?: keep (layer, head)"),
        ((1.0, 2.0), "layer and head must be ints, got (1.0, 2.0)"),
        ((3, 4), "(3, 4) is outside the model: layers 0–2, heads 0–3 (they count from 0)"),
        ((2, 1), "layer and head are swapped"),
        ((8, 2), "(8, 2) is outside the model: layers 0–2, heads 0–3"),
        ((2, 2), "off by one: layers and heads count from 0"),
        ((1, 3), "off by one: layers and heads count from 0"),
        ((0, 2), "off by one: look again at the row (layer) and column (head)"),
        ((2, 0), "that head has the largest |score|, and its score is negative"),
        ((0, 0), "L0.H0 ranks 7 of 12 (score +0.100): look for the largest value of the map"),
    ],
)
def test_top_head_hints(scores, answer, hint):
    with pytest.raises(NotYet, match=r"^Exercise 2, top_head: ") as err:
        workshop.check_top_head(answer, crafted(scores, MAP), "Toy")
    assert hint in str(err.value)


def test_top_head_hint_for_the_lowest_score(scores):
    positive_bottom = np.array(MAP) + 1.0  # now the lowest score is not the largest |score|
    with pytest.raises(NotYet, match="that is the lowest score .the bottom of the ranking.: you want the highest"):
        workshop.check_top_head((2, 0), crafted(scores, positive_bottom), "Toy")


@pytest.mark.parametrize(
    "answer, hint",
    [
        ((2, 0), None),
        ((0, 2), "layer and head are swapped"),
        ((1, 2), "that is the top head: the bottom of the ranking is the lowest score"),
        ((0, 3), "that head has the smallest |score| (it barely matters)"),
        ((3, 0), "(3, 0) is outside the model: layers 0–2, heads 0–3 (they count from 0)"),
        ((3, 1), "(3, 1) is outside the model: layers 0–2, heads 0–3 (they count from 0)"),
        ((0, 1), "L0.H1 ranks 4 of 12 (score +0.200): look for the smallest (most negative) value"),
    ],
)
def test_bottom_head_hints(scores, answer, hint, capsys):
    if hint is None:
        workshop.check_bottom_head(answer, crafted(scores, MAP), "Toy")
        assert capsys.readouterr().out == "✓ Exercise 3: L2.H0 is the bottom head of Toy (score -0.90)\n"
        return
    with pytest.raises(NotYet, match=r"^Exercise 3, bottom_head: ") as err:
        workshop.check_bottom_head(answer, crafted(scores, MAP), "Toy")
    assert hint in str(err.value)


def ablated(model, task, head):
    with mask_heads(model, [head]):
        return evaluate(model, task).logit_diff.mean().item()


def test_ablation_right_answers(tiny_model, toy_task, scores, clean, capsys):
    m = scores["Toy"]
    top, bottom = np.unravel_index(m.argmax(), m.shape), np.unravel_index(m.argmin(), m.shape)
    a_top, a_bottom = ablated(tiny_model, toy_task, top), ablated(tiny_model, toy_task, bottom)
    assert a_top != clean.mean().item() != a_bottom
    workshop.check_ablation(a_top, torch.tensor(a_bottom), tiny_model, toy_task, scores)
    want = f"✓ Exercise 3: clean {clean.mean().item():.2f}; top head L{top[0]}.H{top[1]} ablated {a_top:.2f}"
    assert capsys.readouterr().out.startswith(want)


@pytest.mark.parametrize(
    "which, wrong, hint",
    [
        ("top", lambda c, t, b: ..., "ablated_top: replace the ... with your answer"),
        ("bottom", lambda c, t, b: c, "ablated_bottom: that is the clean metric: evaluate inside the `with mask_heads"),
        ("top", lambda c, t, b: c - t, "ablated_top: that is the change (clean − ablated)"),
        ("top", lambda c, t, b: t - c, "ablated_top: that is the change (ablated − clean)"),
        ("top", lambda c, t, b: b, "ablated_top: that is the metric with the other head ablated"),
        ("bottom", lambda c, t, b: -b, "ablated_bottom: wrong sign"),
        ("bottom", lambda c, t, b: b + 1, "is not the mean logit difference with L"),
    ],
)
def test_ablation_hints(tiny_model, toy_task, scores, clean, which, wrong, hint):
    m = scores["Toy"]
    top, bottom = np.unravel_index(m.argmax(), m.shape), np.unravel_index(m.argmin(), m.shape)
    c, t, b = clean.mean().item(), ablated(tiny_model, toy_task, top), ablated(tiny_model, toy_task, bottom)
    answers = {"top": t, "bottom": b}
    answers[which] = wrong(c, t, b)
    with pytest.raises(NotYet, match=r"^Exercise 3, ") as err:
        workshop.check_ablation(answers["top"], answers["bottom"], tiny_model, toy_task, scores)
    assert hint in str(err.value)


def test_checks_refuse_to_run_inside_mask_heads(tiny_model, toy_task, clean):
    with mask_heads(tiny_model, [(0, 0)]), pytest.raises(NotYet, match="run the check outside the `with mask_heads"):
        workshop.check_behaviour(clean.mean(), 0.5, tiny_model, toy_task)


def test_checks_recompute_from_the_model(toy_task):
    """A right answer stops being right when the model changes: nothing is stored or hard-coded."""
    model = tiny(n_layers=2, n_heads=4, d_model=64, seed=1)
    ld = evaluate(model, toy_task).logit_diff
    workshop.check_behaviour(ld.mean(), (ld > workshop.MARGIN).float().mean(), model, toy_task)
    with torch.no_grad():
        model.blocks[1].attn.o.weight.mul_(3.0)  # a weight edit the fingerprint sees
    with pytest.raises(NotYet, match="mean_logit_diff"):
        workshop.check_behaviour(ld.mean(), (ld > workshop.MARGIN).float().mean(), model, toy_task)


def test_attention_is_the_heads_pattern(tiny_model, toy_task):
    pattern, tokens = workshop.attention(tiny_model, toy_task.items[0].prompt, 1, 2)
    n = len(tokens)
    assert tokens[0] == "<|bos|>" and "".join(tokens[1:]).replace("Ġ", " ") == toy_task.items[0].prompt
    assert pattern.shape == (n, n)
    np.testing.assert_allclose(pattern.sum(1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(pattern, 1), 0.0)  # causal: no query looks ahead
    with pytest.raises(ValueError, match=r"head \(3, 0\) is outside this 3 × 4 model"):
        workshop.attention(tiny_model, "x", 3, 0)


def test_attended_hints(tiny_model, toy_task, scores, capsys):
    prompt = toy_task.items[0].prompt
    m = scores["Toy"]
    pattern, tokens = workshop.attention(tiny_model, prompt, *np.unravel_index(m.argmax(), m.shape))
    right = tokens[pattern[-1].argmax()]
    workshop.check_attended(right, tiny_model, prompt, scores, "Toy")
    assert capsys.readouterr().out.startswith("✓ Exercise 4: from 's', L0.H2 attends most to")
    hints = {
        ...: "replace the ... with your answer (a token",
        int(pattern[-1].argmax()): f"is a position: give the token there, tokens[{int(pattern[-1].argmax())}]",
        2.0: "give a token (a str such as tokens[3]), not float",
        "dog": "'dog' is not a token of this prompt",
        tokens[-1]: "that is the last token itself",
    }
    for answer, hint in hints.items():
        with pytest.raises(NotYet, match=r"^Exercise 4, attended: ") as err:
            workshop.check_attended(answer, tiny_model, prompt, scores, "Toy")
        assert hint in str(err.value), (answer, str(err.value))


def test_checks_name_a_bad_argument():
    with pytest.raises(TypeError, match="task must be a Task"):
        workshop.check_behaviour(1.0, 0.5, None, "Toy")
    with pytest.raises(TypeError, match="scores must be the HeadScores from headlab.score"):
        workshop.check_top_head((0, 0), {"Toy": np.zeros((3, 4))}, "Toy")


def cells(name):
    return json.loads((NOTEBOOKS / name).read_text())["cells"]


def test_blank_and_solutions_notebooks_stay_in_step():
    """Cell for cell the same, but for the answer cells (blanks with `...` vs code without), the title and the
    closing discussion (questions in the blanks, so that no text under an exercise gives its answer away)."""
    blank, solved = cells("03_workshop.ipynb"), cells("03_workshop_solutions.ipynb")
    assert len(blank) == len(solved)
    answers = 0
    for b, s in zip(blank[1:], solved[1:]):
        assert b["cell_type"] == s["cell_type"] and b["metadata"].get("tags") == s["metadata"].get("tags")
        if "answer" in b["metadata"].get("tags", []):
            answers += 1
            assert "..." in "".join(b["source"]) and "..." not in "".join(s["source"]), "".join(b["source"])
        elif "discussion" in b["metadata"].get("tags", []):
            assert "".join(b["source"]).startswith("## What you found") and "".join(s["source"]).startswith(
                "## What you found"
            )
            assert '" keys"' not in "".join(b["source"]) and '" keys"' in "".join(s["source"])
        else:
            assert b["source"] == s["source"]
    assert answers == 5
    assert not any(c.get("outputs") for c in blank), "the blank notebook is stored without outputs"
    checks = [c for c in blank if "check" in c["metadata"].get("tags", [])]
    assert [("".join(c["source"])).split("(")[0] for c in checks] == [
        "workshop.check_behaviour",
        "workshop.check_top_head",
        "workshop.check_bottom_head",
        "workshop.check_ablation",
        "workshop.check_attended",
    ]
    assert "03_workshop_solutions.ipynb" in "".join(blank[0]["source"])
