"""``benchmarks/gpu_check.py``'s CPU dry run: the device check's own code path, with tiny shapes, in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_on_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny"],
        cwd=ROOT,
        env={**os.environ, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tables = (tmp_path / "gpu_check.md").read_text()
    for heading in ("## (a) CPU float32 vs cpu", "## (b) Llama-3.1-8B's shape", "## (c) attribution resample"):
        assert heading in tables
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["failed_parts"] == []

    cases = results["a"]["cases"]
    assert [c["case"] for c in cases] == [
        f"{m}/{a}" for m in ("attribution", "ablation") for a in ("zero", "mean", "resample")
    ]
    for case in cases:  # two CPU copies of one model: the same numbers
        assert case["ok"] and case["max_abs_diff"] <= 1e-6, case
        assert case["scale"] > 0 and case["spearman_bf16"] > 0.5, case

    big = [results["b"], *results["c"]["models"]]
    assert [m["model"] for m in big] == ["Llama-3.1-8B", "Yi-1.5-9B", "Llama-3.2-3B"]
    for fig in big:
        run = fig["attribution"]
        assert run["tasks"] == 8 and run["items"] == 32 and run["finite"] and run["seconds"] > 0, fig
    exact = results["b"]["exact"]
    assert exact["items"] == 2 and exact["head_reruns"] == 2 * 4 and exact["finite"] and exact["flops"] > 0
