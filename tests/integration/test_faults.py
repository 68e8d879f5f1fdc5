"""Faults in real processes: kill -9 mid-sweep (exact, and verified across two tasks) and mid-write, then rerun;
two processes on one key."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import os, sys, time, numpy as np
os.environ["TQDM_DISABLE"] = "1"
import torch
torch.set_num_threads(1)
from headlab.testing import byte_tokenizer, tiny_hf
from headlab.models import load_model
from headlab.scoring import score
from headlab.tasks import Task
import headlab.scorers.ablation as ablation
import headlab.cache as cache
mode, folder, out, method = sys.argv[1:5]
if mode == "slow-sweep":       # a sweep that takes long enough to be killed between layers
    ablation.JOIN_TOKENS = 1     # one layer per pass, so each layer is saved as it finishes
    real = ablation.ablate_heads_hook
    def slow(*a):
        time.sleep(0.5 if method == "ablation" else 1.0)
        return real(*a)
    ablation.ablate_heads_hook = slow
if mode == "slow-write":       # data written to the temporary file, then a long wait before the rename
    real_fsync = os.fsync
    def stall(fd):
        real_fsync(fd)
        if not os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).count(".partial."):
            open(folder + "/stalled", "w").close()
            time.sleep(60)
    os.fsync = stall
model = load_model(tiny_hf(n_layers=3, seed=4), tokenizer=byte_tokenizer())
tasks = [Task.from_records(name, [dict(prompt=f"{a} and then {rest}", answer=" yes",
                                        counterfactual=f"{b} and then {rest}", counterfactual_answer=" no")
                                   for a, b in ["ab", "cd", "ee", "gh"]])
         for name, rest in [("T", "the rest"), ("U", "some more")]]
if method == "ablation":
    s = score(model, tasks[0], method="ablation", ablation="resample", cache=folder, progress=False)
else:                          # two tasks: the first is cached once verified, the second resumes
    s = score(model, tasks, method="verified", candidates=6, ablation="resample", cache=folder, progress=False)
    np.save(out + ".verified.npy", s.verified)
np.save(out, s.values)
"""


def child(mode, folder, out, method="ablation"):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(folder), str(out), method],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"child ended early: {proc.stderr.read().decode()[-800:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the child")
        time.sleep(0.1)


def readable(folder):
    for p in folder.glob("*.npz"):
        with np.load(p) as f:
            [f[k] for k in f.files]
    return True


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    proc = child("plain", folder / "cache", folder / "ref.npy")
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-800:]
    return np.load(folder / "ref.npy")


def test_kill_during_an_exact_sweep_then_rerun(tmp_path, reference):
    folder = tmp_path / "cache"
    proc = child("slow-sweep", folder, tmp_path / "a.npy")
    wait_for(lambda: any(folder.glob("*.partial.npz")), proc)  # at least one layer done and saved
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert readable(folder) and not [p for p in folder.glob("*.npz") if ".partial." not in p.name]
    again = child("plain", folder, tmp_path / "b.npy")
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()[-800:]
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), reference)
    assert readable(folder) and not list(folder.glob("*.partial.npz")) and not list(folder.glob("*.tmp"))


def test_kill_during_a_verified_run_then_rerun(tmp_path):
    """kill -9 while the second task's exact re-runs are under way: the first task's verified map is cached, the
    second's finished layers are in its partial sweep, and the rerun gives the uninterrupted map and mask."""
    plain = child("plain", tmp_path / "ref-cache", tmp_path / "ref.npy", "verified")
    assert plain.wait(timeout=300) == 0, plain.stderr.read().decode()[-800:]
    folder = tmp_path / "cache"
    proc = child("slow-sweep", folder, tmp_path / "a.npy", "verified")
    results = lambda: [p for p in folder.glob("*.npz") if ".partial." not in p.name]  # noqa: E731
    wait_for(lambda: results() and any(folder.glob("*.partial.npz")), proc)  # task T done, U under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert readable(folder) and len(results()) == 1 and len(list(folder.glob("*.partial.npz"))) == 1
    again = child("plain", folder, tmp_path / "b.npy", "verified")
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()[-800:]
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "ref.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy.verified.npy"), np.load(tmp_path / "ref.npy.verified.npy"))
    assert readable(folder) and len(results()) == 2 and not list(folder.glob("*.partial.npz"))


def test_kill_during_a_cache_write_then_rerun(tmp_path, reference):
    folder = tmp_path / "cache"
    proc = child("slow-write", folder, tmp_path / "a.npy")
    wait_for(lambda: (folder / "stalled").exists(), proc)  # the result is in a temporary file, not renamed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(folder.glob("*.tmp")) and readable(folder)  # a half-finished write never takes the key's name
    again = child("plain", folder, tmp_path / "b.npy")
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()[-800:]
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), reference)
    assert readable(folder) and not list(folder.glob("*.tmp"))  # the killed writer's leftovers are gone


def test_two_processes_scoring_one_task_at_once(tmp_path, reference):
    folder = tmp_path / "cache"
    procs = [child("plain", folder, tmp_path / f"{i}.npy") for i in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-800:]
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), reference)
    assert readable(folder) and len([p for p in folder.glob("*.npz") if ".partial." not in p.name]) == 1
