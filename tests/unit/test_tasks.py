import json
import warnings

import pandas as pd
import pytest

from headlab.metrics import encode
from headlab.scoring import score
from headlab.tasks import TASK_NAMES, Task, TaskError, as_task_list, builtin, load_cogqa

GOOD = {"prompt": "2 + 2 =", "answer": " 4", "counterfactual": "2 + 3 =", "counterfactual_answer": " 5"}


def test_builtin_has_the_eight_functions_in_grid_order():
    tasks = builtin()
    assert (
        list(tasks)
        == list(TASK_NAMES)
        == [
            "Knowledge Recall",
            "Retrieval",
            "Logical Reasoning",
            "Decision-making",
            "Semantic Understanding",
            "Syntactic Understanding",
            "Inference",
            "Math Calculation",
        ]
    )
    for task in tasks.values():
        assert len(task) >= 40, task
        assert task.has_counterfactuals and task.source == "builtin"
        for item in task:
            assert item.answer.startswith(" ") and item.answer != item.counterfactual_answer


def test_builtin_subset_and_unknown():
    assert list(builtin(["Retrieval"])) == ["Retrieval"]
    with pytest.raises(TaskError, match="unknown built-in task"):
        builtin(["Telepathy"])


@pytest.mark.parametrize(
    "records, match",
    [
        ([], "has no items"),
        ([{"answer": " 4"}], "missing a non-empty 'prompt'"),
        ([{"prompt": "2 + 2 =", "answer": ""}], "missing a non-empty 'answer'"),
        ([GOOD, GOOD], "item 1 duplicates item 0"),
        ([{"prompt": "a", "answer": " b", "counterfactual": "c"}], "only one of"),
        ([{**GOOD, "counterfactual_answer": " 4"}], "equal to answer"),
        ([{**GOOD, "colour": "red"}], "unknown field"),
        (["2 + 2 = 4"], "not a dict"),
    ],
)
def test_validation_errors(records, match):
    with pytest.raises(TaskError, match=match):
        Task.from_records("Bad", records)


def test_from_jsonl_and_dataframe(tmp_path):
    path = tmp_path / "my_task.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [GOOD, {"prompt": "1 + 1 =", "answer": " 2"}]) + "\n")
    task = Task.from_jsonl(path)
    assert task.name == "My Task" and len(task) == 2 and not task.has_counterfactuals
    df = pd.DataFrame([GOOD, {"prompt": "1 + 1 =", "answer": " 2"}])
    assert Task.from_dataframe(df, "My Task").items == task.items
    with pytest.raises(TaskError, match="lacks column"):
        Task.from_dataframe(df.drop(columns=["answer"]), "x")
    path.write_text("{not json}\n")
    with pytest.raises(TaskError, match=r"my_task.jsonl:1: not valid JSON"):
        Task.from_jsonl(path)


def test_content_hash_tracks_content():
    a = Task.from_records("A", [GOOD])
    assert a.content_hash() == Task.from_records("A", [GOOD]).content_hash()
    assert (
        a.content_hash()
        != Task.from_records("A", [{**GOOD, "answer": " 5", "counterfactual_answer": " 6"}]).content_hash()
    )


def test_as_task_list():
    a = Task.from_records("A", [GOOD])
    assert as_task_list(a) == [a] and as_task_list({"A": a}) == [a]
    with pytest.raises(TaskError, match="unique"):
        as_task_list([a, a])
    with pytest.raises(TaskError):
        as_task_list("Retrieval")


def test_counterfactual_length_policy(tiny_model):
    task = Task.from_records(
        "T",
        [GOOD, {"prompt": "2 + 2 =", "answer": " 4x", "counterfactual": "20 + 30 =", "counterfactual_answer": " 5x"}],
    )
    with pytest.warns(UserWarning, match="1 of 2 counterfactual prompts differ in token length"):
        enc = encode(task, tiny_model.tokenizer, "logit_diff")
    assert enc.cf_ok.tolist() == [True, False]
    # only resampling skips the item, so only it warns; zero ablation keeps both items, quietly
    with pytest.warns(UserWarning, match="resample ablation skips those items"):
        resampled = score(tiny_model, task, method="attribution", ablation="resample", cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zeroed = score(tiny_model, task, method="attribution", ablation="zero", cache=False)
    assert resampled.n_examples.tolist() == [1] and zeroed.n_examples.tolist() == [2]


def test_answer_that_tokenizes_to_nothing(tiny_model):
    class Silent:
        """A tokenizer wrapper that maps one string to no tokens."""

        def __init__(self, tok):
            self.tok, self.pad_token_id = tok, tok.pad_token_id

        def __call__(self, text, **kw):
            out = self.tok(text, **kw)
            if text == " \u2060":
                out["input_ids"] = []
            return out

    task = Task.from_records("T", [{"prompt": "x", "answer": " \u2060"}])
    with pytest.raises(TaskError, match="tokenizes to nothing"):
        encode(task, Silent(tiny_model.tokenizer), "logprob")


def test_logit_diff_needs_counterfactuals(tiny_model):
    with pytest.raises(TaskError, match="use metric='logprob'"):
        encode(Task.from_records("T", [{"prompt": "x", "answer": " y"}]), tiny_model.tokenizer, "logit_diff")


def test_load_cogqa(cogqa_path):
    with pytest.warns(UserWarning, match="dropped") as rec:
        tasks = load_cogqa(cogqa_path)
    assert list(tasks) == list(TASK_NAMES)
    raw = json.loads(cogqa_path.read_text())
    labels = [g["cognitive_skill"] for q in raw for g in q["generated"]]
    for name, task in tasks.items():
        assert len(task) <= labels.count(name)
        assert len(task) >= 0.95 * labels.count(name)
        assert not task.has_counterfactuals
    assert sum(tasks.dropped[k] for k in tasks.dropped if not k.startswith("<")) == sum(
        1 for l in labels if l not in TASK_NAMES
    )
    item = tasks["Math Calculation"].items[0]
    assert item.prompt.startswith("Question: ") and "\nSubquestion: " in item.prompt and item.answer.startswith(" ")
    assert "Self-Evaluation" in str(rec[0].message)


def test_load_cogqa_errors(tmp_path):
    with pytest.raises(TaskError, match="CogQA file not found"):
        load_cogqa(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(TaskError, match="expected a JSON list"):
        load_cogqa(tmp_path / "x.json")
