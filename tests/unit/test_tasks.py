import json
import warnings

import pandas as pd
import pytest
from bad_inputs import PLAIN, Catalogue, cogqa, q, sub, write

from headlab.metrics import encode
from headlab.scoring import score
from headlab.tasks import TASK_NAMES, Item, Task, TaskError, as_task_list, builtin, load_cogqa

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


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

TASKS = Catalogue("api:tasks")

for records, match in [
    (None, "records must be a list of dicts .* not NoneType"),
    (42, "records must be a list of dicts .* not int"),
    ("prompt", "records must be a list of dicts .* not str"),
    (GOOD, r"records is one dict: pass a list of them"),
    ([], "has no items"),
    ([{"answer": " 4"}], "item 0 is missing a non-empty 'prompt' string"),
    ([{"prompt": "2 + 2 =", "answer": ""}], "item 0 is missing a non-empty 'answer' string"),
    ([{"prompt": "   ", "answer": " 4"}], "missing a non-empty 'prompt'"),
    ([{"prompt": 5, "answer": " 4"}], r"item 0 'prompt' is a int \(5\), not a string"),
    ([{"prompt": "x", "answer": 4}], r"item 0 'answer' is a int \(4\), not a string"),
    ([GOOD, GOOD], "item 1 duplicates item 0"),
    ([{"prompt": "a", "answer": " b", "counterfactual": "c"}], "only one of"),
    ([{**GOOD, "counterfactual_answer": " 4"}], "equal to answer"),
    ([{**GOOD, "colour": "red"}], r"unknown field\(s\) \['colour'\]"),
    ([{**PLAIN, "counterfactal": "1 + 2 =", "counterfactual_answer": " 3"}], r"unknown field\(s\) \['counterfactal'\]"),
    (["2 + 2 = 4"], "item 0 is a str, not a dict"),
    ([{**GOOD, "counterfactual": 7}], "item 0 'counterfactual' is a int"),
    ([{**GOOD, "counterfactual": " "}], "empty counterfactual"),
]:
    TASKS.bad(f"from_records {match[:40]}", lambda c, r=records: Task.from_records("t", r), TaskError, match)
TASKS.bad("from_records empty name", lambda c: Task.from_records("", [GOOD]), TaskError, "non-empty string name")
TASKS.bad("from_records None name", lambda c: Task.from_records(None, [GOOD]), TaskError, "got None")
TASKS.bad("Task with dicts", lambda c: Task("x", [GOOD]), TaskError, "items must be a tuple of Item")
TASKS.bad("Task source int", lambda c: Task("x", (Item("a", " b"),), 5), TaskError, "source must be a string")
for n in (0, -1, 1.5, True):
    TASKS.bad(
        f"subset({n!r})",
        lambda c, n=n: c.task.subset(n),
        TaskError,
        rf"subset\(n\) needs a positive int n, got {n!r}",
    )
TASKS.safe("subset beyond length", lambda c: c.task.subset(100), lambda t, c: len(t) == len(c.task))
TASKS.bad(
    "dataframe misspelled column",
    lambda c: Task.from_dataframe(
        pd.DataFrame([{**PLAIN, "counterfactual": "1 + 2 =", "counterfactual_anwser": " 3"}]), "t"
    ),
    TaskError,
    r"unknown column\(s\) \['counterfactual_anwser'\]",
)
TASKS.bad(
    "dataframe extra column",
    lambda c: Task.from_dataframe(pd.DataFrame([{**PLAIN, "notes": "?"}]), "t"),
    TaskError,
    r"unknown column\(s\) \['notes'\]",
)
TASKS.bad(
    "dataframe lacks answer",
    lambda c: Task.from_dataframe(pd.DataFrame([{"prompt": "x"}]), "t"),
    TaskError,
    r"lacks column\(s\) \['answer'\]",
)
TASKS.bad(
    "dataframe is a list",
    lambda c: Task.from_dataframe([PLAIN], "t"),
    TaskError,
    "takes a pandas DataFrame, not list",
)
TASKS.bad(
    "dataframe int prompts",
    lambda c: Task.from_dataframe(pd.DataFrame([{"prompt": 5, "answer": " 4"}]), "t"),
    TaskError,
    "'prompt' is a int",
)
TASKS.bad(
    "dataframe only cf prompt",
    lambda c: Task.from_dataframe(pd.DataFrame([{**PLAIN, "counterfactual": "1 + 2 ="}]), "t"),
    TaskError,
    "only one of",
)
TASKS.safe("builtin one name", lambda c: builtin("Retrieval"), lambda t, c: list(t) == ["Retrieval"])
TASKS.bad(
    "builtin unknown",
    lambda c: builtin(["Telepathy"]),
    TaskError,
    r"unknown built-in task\(s\) \['Telepathy'\]",
)
TASKS.bad("builtin wrong case", lambda c: builtin("retrieval"), TaskError, r"did you mean \['Retrieval'\]")
TASKS.bad("builtin int", lambda c: builtin(42), TaskError, "takes task names .* not int")
TASKS.bad("builtin empty", lambda c: builtin([]), TaskError, "got no names")
TASKS.bad("as_task_list int", lambda c: as_task_list(42), TaskError, "not int")
TASKS.bad("as_task_list string", lambda c: as_task_list("Retrieval"), TaskError, r"builtin\('Retrieval'\)")
TASKS.bad("as_task_list empty", lambda c: as_task_list([]), TaskError, "no tasks given")
TASKS.bad("as_task_list twice", lambda c: as_task_list([c.task, c.task]), TaskError, "must be unique")
TASKS.bad("as_task_list mixed", lambda c: as_task_list([c.task, "x"]), TaskError, "got str among them")
TASKS.bad("as_task_list dict of dicts", lambda c: as_task_list({"A": GOOD}), TaskError, "got dict among them")
TASKS.bad(
    "as_task_list wrong key",
    lambda c: as_task_list({"A": c.task}),
    TaskError,
    r"tasks\['A'\] is a task named 'Toy'",
)
TASKS.safe("as_task_list generator", lambda c: as_task_list(t for t in [c.task]), lambda t, c: t == [c.task])


LOADER = Catalogue("loader")

jsonl = "\n".join(json.dumps(r) for r in [GOOD, PLAIN])
LOADER.bad("jsonl missing", lambda c: Task.from_jsonl(c.tmp / "nope.jsonl"), TaskError, "no such task file")
LOADER.bad("jsonl folder", lambda c: Task.from_jsonl(c.tmp), TaskError, "is a folder: name a .jsonl file")
LOADER.bad("jsonl None", lambda c: Task.from_jsonl(None), TaskError, "path must be a file path, got None")
LOADER.bad(
    "jsonl latin-1",
    lambda c: Task.from_jsonl(
        write(c, "latin.jsonl", json.dumps({"prompt": "café", "answer": " x"}, ensure_ascii=False).encode("latin-1"))
    ),
    TaskError,
    r"latin\.jsonl is not UTF-8 \(byte 0xe9",
)
LOADER.bad(
    "jsonl bad line",
    lambda c: Task.from_jsonl(write(c, "bad.jsonl", jsonl + "\n{not json}\n")),
    TaskError,
    r"bad\.jsonl:3: not valid JSON",
)
LOADER.bad(
    "jsonl list line",
    lambda c: Task.from_jsonl(write(c, "list.jsonl", "[1, 2]\n")),
    TaskError,
    r"list\.jsonl:1: a list, not an object",
)
LOADER.bad("jsonl empty", lambda c: Task.from_jsonl(write(c, "empty.jsonl", "\n\n")), TaskError, "holds no records")
LOADER.bad(
    "jsonl item error names the line",
    lambda c: Task.from_jsonl(write(c, "gap.jsonl", jsonl + "\n\n" + json.dumps({"prompt": "x"}) + "\n")),
    TaskError,
    r"gap\.jsonl:4: task 'Gap': item 2 is missing a non-empty 'answer'",
)
LOADER.bad(
    "jsonl name int",
    lambda c: Task.from_jsonl(write(c, "ok.jsonl", jsonl), name=5),
    TaskError,
    "name must be a non-empty string, got 5",
)
LOADER.safe(
    "jsonl good",
    lambda c: Task.from_jsonl(write(c, "my_task.jsonl", jsonl)),
    lambda t, c: t.name == "My Task",
)

LOADER.bad("cogqa missing", lambda c: load_cogqa(c.tmp / "nope.json"), TaskError, "CogQA file not found")
LOADER.bad("cogqa folder", lambda c: load_cogqa(c.tmp), TaskError, "is a folder: pass the path to cogqa_train.json")
LOADER.bad("cogqa None", lambda c: load_cogqa(None), TaskError, "path must be a file path, got None")
LOADER.bad(
    "cogqa object",
    lambda c: load_cogqa(cogqa(c, "obj.json", {})),
    TaskError,
    "expected a JSON list of questions, got a dict",
)
LOADER.bad("cogqa invalid json", lambda c: load_cogqa(write(c, "broken.json", "[{")), TaskError, "is not valid JSON")
LOADER.bad(
    "cogqa latin-1",
    lambda c: load_cogqa(write(c, "latin.json", '[{"question": "caf\xe9"}]'.encode("latin-1"))),
    TaskError,
    r"latin\.json is not UTF-8",
)
LOADER.bad(
    "cogqa wrapped in a list",
    lambda c: load_cogqa(cogqa(c, "wrapped.json", [[q(sub())]])),
    TaskError,
    r"wrapped in a second list",
)
LOADER.bad(
    "cogqa question a string",
    lambda c: load_cogqa(cogqa(c, "strq.json", [q(sub()), "Who?"])),
    TaskError,
    "question 1 is a str, not an object",
)
LOADER.bad(
    "cogqa generated a dict",
    lambda c: load_cogqa(cogqa(c, "gendict.json", [{"question": "Q", "generated": sub()}])),
    TaskError,
    "question 0 'generated' is a dict, not a list",
)
LOADER.bad(
    "cogqa subquestion a list",
    lambda c: load_cogqa(cogqa(c, "sublist.json", [q([sub()])])),
    TaskError,
    "question 0 subquestion 0 is a list, not an object",
)
LOADER.bad(
    "cogqa no known label",
    lambda c: load_cogqa(cogqa(c, "nolabel.json", [q(sub("Telepathy"))]), report=False),
    TaskError,
    "no CogQA subquestion with one of the eight functions' labels",
)
LOADER.bad(
    "cogqa context not bool",
    lambda c: load_cogqa(cogqa(c, "ok.json", [q(sub())]), context="yes"),
    TaskError,
    "context must be True or False",
)
LOADER.safe(
    "cogqa question without generated is counted",
    lambda c: load_cogqa(cogqa(c, "nogen.json", [q(sub()), {"question": "Q2", "answer": "a"}])),
    lambda t, c: t.dropped["<question without generated subquestions>"] == 1 and len(t["Retrieval"]) == 1,
    warns=r"dropped 1 entries \(<question without generated subquestions>: 1\)",
)
LOADER.safe(
    "cogqa null subquestion is counted, never 'None'",
    lambda c: load_cogqa(cogqa(c, "nullq.json", [q(sub(), sub(subquestion=None), sub(answer=None))])),
    lambda t, c: len(t["Retrieval"]) == 1 and not any("None" in i.prompt + i.answer for i in t["Retrieval"]),
    warns=r"<null subquestion or answer>: 2",
)
LOADER.safe(
    "cogqa unknown labels are counted",
    lambda c: load_cogqa(cogqa(c, "labels.json", [q(sub(), sub("Induction"), sub(None))])),
    lambda t, c: t.dropped == {"Induction": 1, "<no label>": 1},
    warns=r"dropped 2 entries \(Induction: 1, <no label>: 1\)",
)
LOADER.safe(
    "cogqa numeric answers are text",
    lambda c: load_cogqa(cogqa(c, "num.json", [q(sub("Math Calculation", "2 + 2?", 4))])),
    lambda t, c: t["Math Calculation"].items[0].answer == " 4",
)


CASES = [*TASKS, *LOADER]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
