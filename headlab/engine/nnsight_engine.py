"""The nnsight engine: the same head maps from a model run through nnsight, here or on NDIF.

headlab's own engine (the TransformerLens bridge) needs the model's weights on this machine. nnsight runs a
*trace* — the code of a ``with model.trace(...)`` block — on whichever machine holds the model: this one
(``engine="nnsight"``), or NDIF's GPUs (``engine="ndif"``, ``remote=True``), where Llama-3.1-70B is served. So
everything headlab computes per head is written here as trace code that reduces where the model runs and
brings back only per-item × layer × head numbers.

Where a head is. Head h's output is a slice, ``[h·d_head, (h+1)·d_head)``, of the **input** of the attention
output projection (TransformerLens' ``hook_z``): ``OUT_PROJ`` names that module per architecture (tested
against the bridge's adapters on every conformance architecture). The output of the projection mixes the
heads, and is never used.

Which ids. Both engines see the same token ids: those ``metrics.encode`` builds with the model's tokenizer,
which prepends BOS as the bridge's does (``prepend_bos=True``, settable in ``load_model``). Rows are
right-padded and run with a full attention mask, as the bridge runs them: padding after a row never reaches
its read positions.

Which gradient. Attribution differentiates the metric at the **clean** run (as headlab's engine does), with the
weights frozen and gradients asked only of the activations (``requires_grad_`` on the embeddings' output), so
no weight's ``.grad`` is filled.

What comes back. Each trace saves only (items,) metrics and (items, layers, heads) scores; the logits are
read only at the metric's positions (the unembedding's input is cut to them inside the trace, so the model's
own final steps — softcaps, logit scales — still apply).

Import nnsight only here, and only when this engine is used: importing it mounts ``.save`` on every object
and patches ``Tensor.backward``.
"""

from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

ENGINES = ("bridge", "nnsight", "ndif")
# model_type → layer l's attention output projection, whose input holds every head's output (hook_z)
OUT_PROJ = {
    **{
        t: "model.layers.{l}.self_attn.o_proj"
        for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2")
    },
    **{t: "model.layers.{l}.self_attn.o_proj" for t in ("granite", "cohere", "stablelm")},
    "gpt2": "transformer.h.{l}.attn.c_proj",
    "gpt_neox": "gpt_neox.layers.{l}.attention.dense",
    "gptj": "transformer.h.{l}.attn.out_proj",
    "opt": "model.decoder.layers.{l}.self_attn.out_proj",
    "falcon": "transformer.h.{l}.self_attention.dense",
    "bloom": "transformer.h.{l}.self_attention.dense",
}
ROWS_PER_TRACE = 256  # rows of one exact-ablation trace at most (a layer's copies are cut into chunks of heads)


class EngineError(ValueError):
    """The nnsight engine cannot do what was asked; the message says what to do instead."""


@dataclass
class NnsightModel:
    """A model behind nnsight, in the shape ``score()`` reads: ``tokenizer``, ``cfg`` (n_layers, n_heads,
    d_head, d_model, d_vocab, n_key_value_heads, n_ctx), ``headlab_name``, ``engine`` and the wrapped Hugging
    Face module's parameters and config (``original_model``: on the meta device for NDIF, no weights here)."""

    lm: object  # nnsight's TransformersModel
    tokenizer: object
    headlab_name: str
    engine: str  # "nnsight" or "ndif"
    remote: bool | str  # False, "local" (nnsight's own simulation of a remote run) or True (NDIF)
    cfg: SimpleNamespace
    repo_id: str | None = None  # the Hugging Face id NDIF serves

    training = False

    @property
    def original_model(self):
        return self.lm._module

    def parameters(self):
        return self.original_model.parameters()

    def named_parameters(self):
        return self.original_model.named_parameters()

    def named_buffers(self):
        return self.original_model.named_buffers()

    def modules(self):
        return self.original_model.modules()

    def eval(self):
        self.original_model.eval()
        return self

    @property
    def weights_id(self) -> str | None:
        """What stands for the weights where they are not here (NDIF): the served checkpoint's id; None where
        the weights are here and are hashed byte by byte."""
        return f"ndif:{self.repo_id}" if self.remote is True else None


def require_bridge(model, what: str) -> None:
    """Refuse, in one line, ``what`` on a model of the nnsight or NDIF engine (it runs on the bridge only)."""
    engine = getattr(model, "engine", "bridge")
    if engine != "bridge":
        raise EngineError(
            f"{what} runs on engine='bridge' only, and this model is on the {engine} engine: load it with "
            "headlab.load_model(name) for it (maps from either engine are compared with cross_model=True)"
        )


def check_engine(engine) -> str:
    if not isinstance(engine, str) or engine not in ENGINES:
        raise EngineError(f"engine={engine!r} is not an engine: choose from {ENGINES}")
    return engine


def load(model, tokenizer, engine: str, *, simulate: bool, prepend_bos: bool, dtype, name: str | None):
    """An ``NnsightModel`` for a folder or Hugging Face id (``model``: str) or a loaded Hugging Face model.
    ``engine="ndif"`` builds it without weights (a Hub id only) and runs remotely; ``simulate=True`` runs the
    same requests through nnsight's own simulation of NDIF, with the weights here."""
    try:
        from nnsight.modeling.transformers import TransformersModel
    except ImportError:
        raise EngineError(
            f"engine={engine!r} needs nnsight: pip install 'nnsight==0.8.1' (or headlab[nnsight])"
        ) from None
    if not isinstance(simulate, bool) or not isinstance(prepend_bos, bool):
        bad = "simulate" if not isinstance(simulate, bool) else "prepend_bos"
        raise EngineError(f"{bad} must be True or False, got {locals()[bad]!r}")
    if simulate and engine != "ndif":
        raise EngineError(f"simulate=True simulates NDIF: pass engine='ndif' with it, not engine={engine!r}")
    remote: bool | str = ("local" if simulate else True) if engine == "ndif" else False
    if remote is True and not isinstance(model, str):
        raise EngineError(
            "engine='ndif' runs a model NDIF serves: pass its Hugging Face id (e.g. 'meta-llama/Llama-3.1-70B'), "
            f"not a loaded {type(model).__name__}"
        )
    if remote is True and not (os.environ.get("NDIF_API_KEY") or _configured_key()):
        raise EngineError(
            "engine='ndif' needs an NDIF API key: get one at login.ndif.us, then set NDIF_API_KEY (or call "
            "nnsight.CONFIG.set_default_api_key(key)); nothing was sent"
        )
    tok = copy.deepcopy(tokenizer) if tokenizer is not None else None
    if isinstance(model, str):
        from transformers import AutoTokenizer

        tok = tok or AutoTokenizer.from_pretrained(model, local_files_only=True)
        kwargs = {} if dtype is None else {"dtype": dtype}
        lm = TransformersModel(
            model, task="text-generation", tokenizer=copy.deepcopy(tok), dispatch=remote is not True, **kwargs
        )
        repo_id = model
    else:
        if tok is None:
            raise EngineError("a Hugging Face model needs its tokenizer: load_model(hf_model, tokenizer=tok, ...)")
        lm = TransformersModel(model, tokenizer=copy.deepcopy(tok))  # nnsight sets its own copy to left padding
        repo_id = getattr(model.config, "_name_or_path", None) or None
    hf = lm._module
    hf.requires_grad_(False)  # gradients are asked of the activations only
    hf.eval()
    kind = hf.config.model_type
    if kind not in OUT_PROJ:
        raise EngineError(
            f"the nnsight engine does not know where {type(hf).__name__}'s heads are (model_type {kind!r}): it "
            f"knows {sorted(OUT_PROJ)}; use engine='bridge'"
        )
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if prepend_bos and tok.bos_token is not None:
        tok.add_bos_token = True  # the bridge's convention: every prompt starts with BOS
    text = getattr(hf.config, "text_config", None) or hf.config
    n_heads = int(text.num_attention_heads)
    d_model = int(text.hidden_size)
    cfg = SimpleNamespace(
        n_layers=int(text.num_hidden_layers),
        n_heads=n_heads,
        n_key_value_heads=int(getattr(text, "num_key_value_heads", None) or n_heads),
        d_head=int(getattr(text, "head_dim", None) or d_model // n_heads),
        d_model=d_model,
        d_vocab=int(text.vocab_size),
        n_ctx=int(getattr(text, "max_position_embeddings", 0) or 0) or None,
        model_name=name or repo_id or type(hf).__name__,
        model_type=kind,
        prepend_bos=prepend_bos,
    )
    return NnsightModel(lm, tok, cfg.model_name, engine, remote, cfg, repo_id)


def _configured_key() -> str | None:
    from nnsight import CONFIG

    return CONFIG.API.APIKEY


def _module(lm, path: str):
    """The envoy at a dotted ``path`` of the model (``model.layers.3.self_attn.o_proj``)."""
    node = lm
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def _envoys(model: NnsightModel):
    """(each layer's output projection, the unembedding, the embedding) as envoys of the traced model."""
    hf, lm = model.original_model, model.lm
    names = {m: n for n, m in hf.named_modules()}
    projs = [_module(lm, OUT_PROJ[model.cfg.model_type].format(l=l)) for l in range(model.cfg.n_layers)]
    return projs, _module(lm, names[hf.get_output_embeddings()]), _module(lm, names[hf.get_input_embeddings()])


def _session(model: NnsightModel):
    """One request for every trace inside it, where the model runs remotely; nothing here."""
    return model.lm.session(remote=model.remote) if model.remote else contextlib.nullcontext()


def _values(saved) -> np.ndarray:
    return torch.as_tensor(saved).detach().float().cpu().numpy()


def attribution(model: NnsightModel, enc, ablation: str) -> tuple[np.ndarray, np.ndarray]:
    """Attribution patching of one encoded task (all its items in one trace): per head Σ over positions of
    ∂metric/∂z · (z_clean − z_source) at the clean run → (per_example (n, L, H), clean metric (n,))."""
    import nnsight

    projs, unembed, embed = _envoys(model)
    n, T = enc.tokens.shape
    H, d = model.cfg.n_heads, model.cfg.d_head
    tokens = enc.tokens if ablation != "resample" else torch.cat([enc.tokens, enc.cf_tokens])
    reach = (torch.arange(T)[None, :] < enc.lengths[:, None]).float()[..., None]  # (n, T, 1): a row's positions
    rows = torch.arange(n)[:, None]
    read_pos, target, foil, read_mask = enc.read_pos, enc.target, enc.foil, enc.read_mask.float()
    logit_diff = enc.metric == "logit_diff"
    lm = model.lm  # the trace's code names only envoys, tensors and numbers: that is what a request carries
    with _session(model):
        with lm.trace({"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}):
            embed.output.requires_grad_(True)
            z = [p.input for p in projs]
            x = unembed.input
            unembed.input = x[rows, read_pos]  # the logits only where the metric reads them: (n, P, d_model)
            logits = lm.output.logits.float()
            if logit_diff:
                metric = (logits.gather(-1, target[..., None]) - logits.gather(-1, foil[..., None]))[:, 0, 0]
            else:
                metric = (logits.log_softmax(-1).gather(-1, target[..., None])[..., 0] * read_mask).sum(-1)
            grads = torch.autograd.grad(metric.sum(), z)
            per_layer = []
            for zl, gl in zip(z, grads):
                clean = zl[:n].detach()
                if ablation == "resample":
                    source = zl[n:].detach()
                elif ablation == "mean":
                    source = ((clean * reach).sum(0) / reach.sum(0).clamp(min=1))[None]
                else:
                    source = torch.zeros_like(clean)
                delta = (gl[:n].float() * (clean - source).float()).view(n, T, H, d)
                per_layer.append(delta.sum((1, 3)))
            scores = nnsight.save(torch.stack(per_layer, 1))
            metric = nnsight.save(metric.detach())
    return _values(scores), _values(metric)


def ablation(model: NnsightModel, enc, ablation: str, progress=None, layers=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ablation of one encoded task: the clean rows, one copy of them per head with that head's slice of z
    replaced by the source (zero, the items' mean at each position, or the counterfactual run's), and for
    resample the counterfactual rows, as many copies per trace as ``ROWS_PER_TRACE`` holds (copies of several
    layers share a trace: each layer's input is patched in its own copies' rows only) → (per_example (n, L, H),
    clean metric (n,)). ``progress``: a bar with ``update(k)``, one step per head; ``layers``: only these layers'
    heads (the others stay 0)."""
    import nnsight

    projs, unembed, _ = _envoys(model)
    n, T = enc.tokens.shape
    L, H, d = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head
    pairs = [(layer, h) for layer in (range(L) if layers is None else layers) for h in range(H)]
    per_trace = max(1, ROWS_PER_TRACE // n - 2)
    chunks = [pairs[s : s + per_trace] for s in range(0, len(pairs), per_trace)]
    reach = (torch.arange(T)[None, :] < enc.lengths[:, None]).float()[..., None]
    logit_diff = enc.metric == "logit_diff"
    resample = ablation == "resample"
    saved = []
    lm = model.lm  # the trace's code names only envoys, tensors and numbers: that is what a request carries
    with _session(model):
        for chunk in chunks:
            c = len(chunk)
            tokens = torch.cat([enc.tokens] * (1 + c) + ([enc.cf_tokens] if resample else []))
            rows = torch.arange(n * (1 + c))[:, None]
            read_pos = enc.read_pos.repeat(1 + c, 1)
            target, foil = enc.target.repeat(1 + c, 1), enc.foil.repeat(1 + c, 1)
            read_mask = enc.read_mask.float().repeat(1 + c, 1)
            layers = sorted({layer for layer, _ in chunk})
            with lm.trace({"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}):
                with torch.no_grad():
                    for layer in layers:
                        x = projs[layer].input
                        if resample:
                            source = x[-n:]
                        elif ablation == "mean":
                            source = ((x[:n] * reach).sum(0) / reach.sum(0).clamp(min=1))[None].expand(n, -1, -1)
                        else:
                            source = torch.zeros_like(x[:n])
                        new = x.clone()
                        for j, (at, h) in enumerate(chunk):
                            if at == layer:
                                cut = slice(h * d, (h + 1) * d)
                                new[(1 + j) * n : (2 + j) * n, :, cut] = source[..., cut]
                        projs[layer].input = new
                    h_in = unembed.input
                    unembed.input = h_in[rows, read_pos]  # resample's counterfactual rows are not read
                    logits = lm.output.logits.float()
                    if logit_diff:
                        m = (logits.gather(-1, target[..., None]) - logits.gather(-1, foil[..., None]))[:, 0, 0]
                    else:
                        m = (logits.log_softmax(-1).gather(-1, target[..., None])[..., 0] * read_mask).sum(-1)
                    out = nnsight.save(m.view(1 + c, n))
            saved.append((chunk, out))
            if progress is not None:
                progress.update(c)
    per_example = np.zeros((n, L, H), dtype=np.float32)
    clean = None
    for chunk, out in saved:
        values = _values(out)
        clean = values[0]
        for j, (layer, h) in enumerate(chunk):
            per_example[:, layer, h] = values[0] - values[1 + j]
    return per_example, clean
