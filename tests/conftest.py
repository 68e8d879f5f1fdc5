"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set before anything imports it."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COGQA = Path(os.environ.get("HEADLAB_COGQA", ROOT.parent / "shared" / "data" / "cogqa" / "cogqa_train.json"))

RECORDS = [
    {
        "prompt": f"The box of {a} is",
        "answer": f" {a}{b}",
        "counterfactual": f"The box of {b} is",
        "counterfactual_answer": f" {b}{a}",
    }
    for a, b in ["xy", "pq", "mn", "rs", "uv", "gh"]
]


@pytest.fixture(scope="session")
def tiny_model():
    from headlab.testing import tiny

    return tiny(n_layers=3, n_heads=4, d_model=64, n_kv_heads=2)


@pytest.fixture(scope="session")
def toy_task():
    from headlab.tasks import Task

    return Task.from_records("Toy", RECORDS)


@pytest.fixture(scope="session")
def embedded():
    from headlab.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def cogqa_path():
    if not COGQA.is_file():
        pytest.skip(f"CogQA not found at {COGQA}: it is read from ../shared/data/cogqa (never bundled)")
    return COGQA


@pytest.fixture(scope="session")
def tiny_llama():
    """A random Hugging Face Llama (2 layers, 4 query heads over 2 KV heads) behind the bridge: packable."""
    from headlab.models import load_model
    from headlab.testing import byte_tokenizer, tiny_hf

    return load_model(tiny_hf(), tokenizer=byte_tokenizer())
