import pytest
import torch
from bad_inputs import GOOD, Catalogue

from headlab.engine.forward import at_positions, final_resid
from headlab.metrics import encode, evaluate, from_logits, logits_at, metric_at
from headlab.tasks import Task, TaskError

MIXED = [  # different prompt and answer lengths, to exercise the padding
    {"prompt": "a", "answer": " bcd", "counterfactual": "e", "counterfactual_answer": " bcf"},
    {"prompt": "hello there", "answer": " x", "counterfactual": "hello where", "counterfactual_answer": " y"},
    {"prompt": "12 + 7 =", "answer": " 19", "counterfactual": "12 + 5 =", "counterfactual_answer": " 17"},
]


def test_logprob_is_teacher_forced_sum(tiny_model):
    task = Task.from_records("M", MIXED)
    enc = encode(task, tiny_model.tokenizer, "logprob")
    got = from_logits(logits_at(tiny_model, enc.tokens, enc.read_pos), enc)
    tok = tiny_model.tokenizer
    for i, item in enumerate(task):
        p = tok(item.prompt).input_ids
        a = tok(item.answer, add_special_tokens=False).input_ids
        with torch.no_grad():
            lp = tiny_model(torch.tensor([p + a])).log_softmax(-1)[0]
        manual = sum(lp[len(p) - 1 + j, t] for j, t in enumerate(a))
        assert abs(float(manual) - float(got[i])) < 1e-4


def test_logit_diff_reads_first_differing_token(tiny_model):
    task = Task.from_records("M", MIXED[2:])
    enc = encode(task, tiny_model.tokenizer, "logit_diff")
    tok = tiny_model.tokenizer
    p = tok("12 + 7 =").input_ids
    # " 19" vs " 17" share " 1": teacher-force it, read at the next position
    assert enc.tokens[0, : enc.lengths[0]].tolist() == p + tok(" 1", add_special_tokens=False).input_ids
    assert enc.target[0, 0] == tok("9", add_special_tokens=False).input_ids[0]
    assert enc.foil[0, 0] == tok("7", add_special_tokens=False).input_ids[0]
    with torch.no_grad():
        logits = tiny_model(enc.tokens[:1, : enc.lengths[0]])[0, -1]
    assert (
        abs(
            float(logits[enc.target[0, 0]] - logits[enc.foil[0, 0]])
            - float(from_logits(logits_at(tiny_model, enc.tokens, enc.read_pos), enc)[0])
        )
        < 1e-4
    )


def test_batched_equals_one_by_one(tiny_model):
    task = Task.from_records("M", MIXED)
    for metric in ("logprob", "logit_diff"):
        enc = encode(task, tiny_model.tokenizer, metric)
        batched = from_logits(logits_at(tiny_model, enc.tokens, enc.read_pos), enc)
        single = torch.cat(
            [
                from_logits(logits_at(tiny_model, e.tokens[:, : e.lengths[0]], e.read_pos), e)
                for e in (enc.subset([i]) for i in range(enc.n))
            ]
        )
        assert torch.allclose(batched, single, atol=1e-4)


def _greedy(model, prompt, n=2):
    tok = model.tokenizer
    ids = tok(prompt, return_tensors="pt").input_ids
    start = ids.shape[1]
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    return ids[0, start:].tolist()


@pytest.mark.parametrize("metric", ["logit_diff", "logprob"])
@pytest.mark.parametrize("model", ["tiny_model", "tiny_llama"])
def test_metric_at_equals_the_metric_of_full_logits(model, metric, request):
    """``metric_at`` reads two unembedding rows for logit_diff: the full-vocabulary numbers, 3 stacked copies."""
    model = request.getfixturevalue(model)
    enc = encode(Task.from_records("M", MIXED), model.tokenizer, metric)
    with torch.no_grad():
        x = at_positions(final_resid(model, enc.tokens.repeat(3, 1)), enc.read_pos)
        got = metric_at(model, x, enc)
    want = from_logits(logits_at(model, enc.tokens, enc.read_pos), enc).repeat(3)
    assert want.abs().max() > 1e-2
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_greedy_accuracy_matches_generation(tiny_model):
    tok = tiny_model.tokenizer
    for prompt in ("abc", "xyz", "hello", "12", "qq", "The"):
        new = _greedy(tiny_model, prompt)
        text = tok.decode(new)
        if text.strip() and tok(text, add_special_tokens=False).input_ids == new:
            break
    else:
        raise AssertionError("no prompt with a round-tripping greedy continuation")
    task = Task.from_records("G", [{"prompt": prompt, "answer": text}, {"prompt": prompt + "!", "answer": text}])
    ev = evaluate(tiny_model, task)
    assert ev.correct[0].item() is True
    assert ev.logit_diff is None and ev.summary()["n"] == 2
    assert ev.correct[1].item() == (_greedy(tiny_model, prompt + "!") == new)


def test_evaluate_reads_both_metrics_from_one_run(tiny_model, toy_task):
    """The single-pass evaluate equals two separate full-logit runs, one per encoding."""
    from headlab.metrics import evaluate, greedy_correct, logits_at

    ev = evaluate(tiny_model, toy_task, batch_size=4)
    lp_enc, ld_enc = (encode(toy_task, tiny_model.tokenizer, m) for m in ("logprob", "logit_diff"))
    lp_logits = logits_at(tiny_model, lp_enc.tokens, lp_enc.read_pos)
    torch.testing.assert_close(ev.logprob, from_logits(lp_logits, lp_enc), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(
        ev.logit_diff, from_logits(logits_at(tiny_model, ld_enc.tokens, ld_enc.read_pos), ld_enc), atol=1e-4, rtol=1e-5
    )
    assert torch.equal(ev.correct, greedy_correct(lp_logits, lp_enc))


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

CASES = Catalogue("api:metrics")
bad, safe = CASES.bad, CASES.safe

bad(
    "encode a dict",
    lambda c: encode({"Toy": c.task}, c.model.tokenizer),
    TypeError,
    "takes one Task, not dict",
)
bad("encode no tokenizer", lambda c: encode(c.task, None), TypeError, "tokenizer must be a Hugging Face")
bad(
    "encode metric",
    lambda c: encode(c.task, c.model.tokenizer, "accuracy"),
    ValueError,
    "unknown metric 'accuracy'",
)
bad(
    "encode partial counterfactuals",
    lambda c: encode(c.partial, c.model.tokenizer, "logit_diff"),
    TaskError,
    r"'Partial': 1 of 2 items have a counterfactual answer",
)
bad(
    "encode no counterfactuals",
    lambda c: encode(c.plain, c.model.tokenizer, "logit_diff"),
    TaskError,
    r"0 of 2 items have a counterfactual answer.*metric='logprob'",
)
bad(
    "encode answer a token prefix",
    lambda c: encode(
        Task.from_records("P", [{**GOOD, "answer": " 4", "counterfactual_answer": " 44"}]), c.model.tokenizer
    ),
    TaskError,
    "is a token prefix of the counterfactual",
)
safe(
    "encode identical counterfactual warns and is not resampled",
    lambda c: encode(c.some_same, c.model.tokenizer),
    lambda e, c: e.cf_ok.tolist() == [False, False] + [True] * (e.n - 2),
    warns=r"'SomeSame': 2 of 6 counterfactual prompts are identical to their prompt",
)
safe(
    "encode counterfactual of another length warns",
    lambda c: encode(
        Task.from_records("Len", [GOOD, {**GOOD, "prompt": "2 + 2 = ", "answer": " 4x"}]), c.model.tokenizer
    ),
    lambda e, c: e.cf_ok.tolist() == [True, False],
    warns="1 of 2 counterfactual prompts differ in token length",
)
bad(
    "evaluate builtin()",
    lambda c: evaluate(c.model, {"Toy": c.task}),
    TypeError,
    r"takes one Task, not dict: loop over builtin\(\)\.values\(\)",
)
bad(
    "evaluate batch_size 0",
    lambda c: evaluate(c.model, c.task, batch_size=0),
    ValueError,
    "batch_size must be a positive int",
)
bad(
    "evaluate too long",
    lambda c: evaluate(c.model, c.long),
    TaskError,
    r"task 'Long': item 0 is 302 tokens .* at most 256 positions \(cfg\.n_ctx\)",
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
