"""NDIF requests without NDIF: the model named through the local Hugging Face cache (no weights), jobs kept in the
partial file and polled instead of resubmitted, an interruption that keeps them, and one line per failure —
against nnsight's own client (its real HTTP calls, to a closed port) and its own simulation. No fake server:
what needs NDIF's answers is `make test-ndif`'s."""

import json
import shutil
import warnings

import numpy as np
import pytest

nnsight = pytest.importorskip("nnsight")

from nnsight import CONFIG  # noqa: E402
from nnsight.intervention.backends.remote import RemoteError  # noqa: E402

from headlab import cache, load_model, score  # noqa: E402
from headlab.engine import ndif, nnsight_engine  # noqa: E402
from headlab.engine.progress import Cancelled, bar, watching  # noqa: E402
from headlab.models import EMBEDDED_HF_ID, ModelLoadError, embedded_folder  # noqa: E402
from headlab.tasks import builtin  # noqa: E402
from headlab.testing import byte_tokenizer, tiny_hf  # noqa: E402

CLOSED = "http://127.0.0.1:9"  # nothing listens there: the client's calls fail as with the network down
CONFIG_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache that holds the embedded model's config and tokenizer, as `huggingface-cli download`
    leaves them: no weights."""
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / f"models--{EMBEDDED_HF_ID.replace('/', '--')}" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    for name in CONFIG_FILES:
        if (embedded_folder() / name).is_file():
            shutil.copy(embedded_folder() / name, snapshot / name)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("NDIF_API_KEY", "a-key")
    monkeypatch.setattr(CONFIG.API, "HOST", CLOSED)
    return tmp_path / "hub"


@pytest.fixture
def remote(hub_cache):
    return load_model(engine="ndif")


def task():
    return builtin(["Math Calculation"])["Math Calculation"].subset(2)


def test_ndif_model_is_named_from_the_local_cache_without_weights(remote):
    assert (remote.engine, remote.remote, remote.repo_id) == ("ndif", True, EMBEDDED_HF_ID)
    assert (remote.cfg.n_layers, remote.cfg.n_heads, remote.cfg.d_head) == (30, 9, 64)
    assert {p.device.type for p in remote.parameters()} == {"meta"}  # nothing loaded here
    assert remote.weights_id == f"ndif:{EMBEDDED_HF_ID}"


def test_ndif_model_without_its_config_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("NDIF_API_KEY", "a-key")
    with pytest.raises(ModelLoadError) as err:
        load_model(engine="ndif")
    assert str(err.value) == (
        f"engine='ndif' needs '{EMBEDDED_HF_ID}''s config and tokenizer in the local Hugging Face cache, and they are "
        f"not there (once, online: huggingface-cli download {EMBEDDED_HF_ID} config.json tokenizer.json "
        "tokenizer_config.json; no weights are downloaded)"
    )
    with pytest.raises(ModelLoadError, match=r"^engine='ndif' names a model by the Hugging Face id NDIF serves"):
        load_model(str(embedded_folder()), engine="ndif")


def test_an_offline_hub_is_one_line_and_sends_nothing(remote, tmp_path):
    with pytest.raises(ndif.RequestError) as err:
        score(remote, [task()], cache=tmp_path / "scores", progress=False)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(
        "attribution: nnsight names the model for NDIF through the Hugging Face Hub, which cannot be reached ("
    )
    assert line.endswith(
        "go online (and unset HF_HUB_OFFLINE), then call again; nothing was sent; finished work is kept"
    )


def partial_of(model, t, method="attribution"):
    """Where score() keeps the unfinished work of ``t`` (``{key}.partial.npz``, as ``scoring`` names it)."""
    options = {"attribution": {"steps": 1, "path": "activations"}}.get(method, {})
    settings = {
        "method": method,
        "ablation": "resample",
        "metric": "logit_diff",
        **({"options": options} if options else {}),
    }
    return cache.task_key(model, t, settings, cache.model_fingerprint(model)) + ".partial.npz"


def test_a_kept_job_is_polled_not_resubmitted_and_stays_kept(remote, tmp_path):
    folder = tmp_path / "scores"
    folder.mkdir()
    path = folder / partial_of(remote, task())
    jobs = {"attribution": {"id": "job-41", "model_key": remote.lm.__class__.__module__ + ":key"}}
    cache.save_partial(path, jobs=jobs)
    with pytest.raises(ndif.RequestError) as err:
        score(remote, [task()], cache=folder, progress=False)
    # polled at NDIF's host (the real client's GET, refused): not resubmitted, which would ask the Hub first
    assert str(err.value).startswith("attribution: cannot reach NDIF (")
    assert str(err.value).endswith("check the network, then call again; job job-41 is kept: the same call fetches it")
    assert cache.partial_jobs(path) == jobs
    assert not list(folder.glob("*.unreadable"))


def test_an_interrupted_wait_keeps_the_job(remote):
    kept = []
    requests_ = ndif.Requests(remote, {"x": {"id": "job-7", "model_key": "k"}}, kept.append)

    def stop(desc, done, total):
        if "NDIF job job-7" in desc:  # the first state shown, before any poll
            raise Cancelled("stopped")

    with watching(stop):
        requests_.bar = bar(1, "Math · attribution")
        with pytest.warns(UserWarning, match=r"^NDIF job job-7 \(x\) was left running: NDIF's client cannot cancel"):
            with pytest.raises(Cancelled):
                requests_.run("x", submit=lambda: pytest.fail("a kept job is never submitted again"))
    assert requests_.jobs == {"x": {"id": "job-7", "model_key": "k"}} and kept == []


def client_error(status: int, detail: str) -> RemoteError:
    """The error nnsight's client raises for an HTTP error answer (RemoteBackend._post: RemoteError from the
    httpx.HTTPStatusError)."""
    import httpx

    request = httpx.Request("POST", f"{CLOSED}/request")
    answer = httpx.Response(status, json={"detail": detail}, request=request)
    try:
        try:
            answer.raise_for_status()
        except httpx.HTTPStatusError as http:
            raise RemoteError(f"Failed to send request: {detail}") from http
    except RemoteError as err:
        return err


@pytest.mark.parametrize(
    "err, line",
    [
        (client_error(401, "Invalid API key"), "NDIF refused the API key (Failed to send request: Invalid API key): "),
        (client_error(413, "Payload too large"), "the request is too large for NDIF (Failed to send request: Payload"),
        (
            client_error(503, "Queue full"),
            "NDIF's queue is full (Failed to send request: Queue full): call again later",
        ),
        (client_error(404, "Model key not found"), f"NDIF does not serve {EMBEDDED_HF_ID} (Failed to send request: "),
        (RemoteError("Job exceeded the time limit of 3600s"), "the job ran past NDIF's time limit (Job exceeded"),
        (RemoteError("CUDA out of memory"), "the NDIF job failed (RemoteError: CUDA out of memory)"),
    ],
    ids=["key", "too-large", "queue", "not-hosted", "time-limit", "other"],
)
def test_each_failure_is_one_line(remote, err, line):
    assert ndif.client_error(err)
    got = ndif.explain(err, remote)
    assert got.startswith(line) and "\n" not in got


def test_an_interrupted_exact_sweep_resumes_request_by_request(tmp_path, monkeypatch):
    """Under nnsight's simulation of NDIF, an exact sweep stopped after two requests resumes from the partial file:
    only the requests left are sent, and the map equals one computed in one go."""
    monkeypatch.setattr(nnsight_engine, "ROWS_PER_TRACE", 8)  # 2 heads per trace on 2 items
    monkeypatch.setattr(nnsight_engine, "TRACES_PER_REQUEST", 1)  # 2 heads per request: 8 requests
    model = load_model(tiny_hf(n_layers=4, seed=5), tokenizer=byte_tokenizer(), engine="ndif", simulate=True)
    sent = []
    plain = model.lm.session

    def counted(*args, **kwargs):
        sent.append(1)
        return plain(*args, **kwargs)

    monkeypatch.setattr(model.lm, "session", counted)
    t = builtin(["Math Calculation"])["Math Calculation"].subset(2)
    whole = score(model, [t], method="ablation", cache=False, progress=False)
    total = len(sent)
    assert total == 8

    sent.clear()

    def stop(desc, done, total):
        if done >= 4:  # after two requests
            raise Cancelled("stopped")

    with watching(stop), pytest.raises(Cancelled):
        score(model, [t], method="ablation", cache=tmp_path, progress=False)
    assert len(sent) == 2
    partial = next(tmp_path.glob("*.partial.npz"))
    with np.load(partial) as f:
        assert f["done"].sum() == 4 and f["done"].shape == (4, 4)

    sent.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = score(model, [t], method="ablation", cache=tmp_path, progress=False)
    assert len(sent) == total - 2
    assert not partial.exists()
    np.testing.assert_allclose(resumed.per_example, whole.per_example, atol=1e-5)
    assert json.dumps(resumed.params["per_task"]) == json.dumps(whole.params["per_task"])


def test_a_job_that_failed_there_is_told_from_one_not_reached(remote):
    """nnsight's client raises a job's ERROR status as a plain RemoteError (``RemoteBackend.note``): that job is
    dropped (fetching it again would fail again); a request that never reached NDIF keeps its job."""
    import httpx
    from nnsight.intervention.backends.remote import RemoteBackend
    from nnsight.schema.response import ResponseModel, Status

    backend = RemoteBackend("key", blocking=False, job_id="job-9")
    with pytest.raises(RemoteError) as failed:
        backend.note(ResponseModel(id="job-9", status=Status.ERROR, description="Job exceeded the time limit"))
    assert ndif.job_failed(failed.value)
    assert not ndif.job_failed(client_error(503, "Queue full"))
    with pytest.raises(httpx.ConnectError) as unreached:
        backend.poll()  # the real GET, to a closed port
    assert ndif.client_error(unreached.value) and not ndif.job_failed(unreached.value)
    line = ndif.Requests(remote).failure(failed.value, "attribution", "job-9", dropped=True)
    assert line == (
        "attribution: the job ran past NDIF's time limit (Job exceeded the time limit): score fewer items per task, "
        "then call again; job job-9 failed there and is dropped: the same call submits it again; finished work is kept"
    )
