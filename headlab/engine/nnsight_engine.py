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

The operations: ``attribution`` (plain and integrated gradients, several screens in one request), ``ablation``
(exact, per head), ``pooled_z`` (per-head activations pooled per item: probing) and ``masked`` (head sets
zero-ablated, the behaviour read: validate, faithfulness). Each takes the task map's ``ndif.Requests``.

Import nnsight only here, and only when this engine is used: importing it mounts ``.save`` on every object
and patches ``Tensor.backward``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from ..errors import InputError

__all__ = [
    "ENGINES",
    "EngineError",
    "NnsightModel",
    "OUT_PROJ",
    "POINTS_PER_TRACE",
    "ROWS_PER_TRACE",
    "TRACES_PER_REQUEST",
    "ablation",
    "attribution",
    "check_engine",
    "load",
    "masked",
    "pooled_z",
    "require_bridge",
]

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
FETCH_CONFIG = "once, online: huggingface-cli download ID config.json tokenizer.json tokenizer_config.json"
ROWS_PER_TRACE = 256  # rows of one exact-ablation trace at most (a layer's copies are cut into chunks of heads)
POINTS_PER_TRACE = 1  # integrated-gradient points per trace: a backward holds every layer's activations (70B!)
TRACES_PER_REQUEST = 16  # exact-ablation traces per request: on NDIF, a job of ≈ 4k rows


class EngineError(InputError):
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
    if remote is True and os.path.isdir(model):
        raise EngineError(
            f"engine='ndif' names a model by the Hugging Face id NDIF serves it under, not a folder ({model!r}): pass "
            f"the id; its config and tokenizer are read from the local Hugging Face cache ({FETCH_CONFIG})"
        )
    tok = copy.deepcopy(tokenizer) if tokenizer is not None else None
    if isinstance(model, str):
        from transformers import AutoTokenizer

        kwargs = {} if dtype is None else {"dtype": dtype}
        try:
            tok = tok or AutoTokenizer.from_pretrained(model, local_files_only=True)
            lm = TransformersModel(
                model, task="text-generation", tokenizer=copy.deepcopy(tok), dispatch=remote is not True, **kwargs
            )
        except OSError as err:
            if remote is not True:
                raise
            raise EngineError(
                f"engine='ndif' needs {model!r}'s config and tokenizer in the local Hugging Face cache, and they are "
                f"not there ({FETCH_CONFIG.replace('ID', model)}; no weights are downloaded)"
            ) from err
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


def _requests_of(items, per_trace: int):
    """``items`` cut into requests of ``TRACES_PER_REQUEST`` traces of ``per_trace`` items each, the same way on
    every call: per request (its first item's index, its items, its items per trace)."""
    per_request = per_trace * TRACES_PER_REQUEST
    for first in range(0, len(items), per_request):
        part = items[first : first + per_request]
        yield first, part, [part[s : s + per_trace] for s in range(0, len(part), per_trace)]


def _values(saved) -> np.ndarray:
    return torch.as_tensor(saved).detach().float().cpu().numpy()


def attribution(model: NnsightModel, enc, ablation: str, requests, screens=(1,)) -> tuple[np.ndarray, np.ndarray]:
    """Attribution patching of one encoded task, integrated over each of ``screens``' paths, in one request →
    (per screen (len(screens), n, L, H), clean metric (n,)).

    A screen ``m`` is the path from the ablated run to the clean one at α_k = k/m (k = 1 … m; m = 1: plain
    attribution): at each point every layer's z is z̃ = z_source + α (z − z_source), z being what that run
    computes there, and its score is (1/m) Σ_k Σ_pos,d (z − z_source) · ∂metric/∂z̃ at the point's run. Each
    distinct point of the screens is one copy of the items, ``POINTS_PER_TRACE`` copies per trace. The source
    (resample: the counterfactual run's z; mean: the clean run's, averaged over the items at each position) comes
    from one gradient-free trace first, kept where the model runs for the request's other traces (in the same
    batch as the copies, its rows would cost a backward pass too: 18% of the time, measured).
    The screens' sums are kept where the model runs, across the traces.
    ``requests``: ``ndif.Requests`` of the task map."""
    import nnsight

    projs, unembed, embed = _envoys(model)
    n, T = enc.tokens.shape
    H, d = model.cfg.n_heads, model.cfg.d_head
    screens = [int(m) for m in screens]
    points = sorted({k / m for m in screens for k in range(1, m + 1)})  # k / m is correctly rounded: shared points
    on_path = torch.tensor([[float(a in {k / m for k in range(1, m + 1)}) for a in points] for m in screens])
    per_trace = POINTS_PER_TRACE
    chunks = [list(range(s, min(s + per_trace, len(points)))) for s in range(0, len(points), per_trace)]
    reach = (torch.arange(T)[None, :] < enc.lengths[:, None]).float()[..., None]  # (n, T, 1): a row's positions
    read_pos, target, foil, read_mask = enc.read_pos, enc.target, enc.foil, enc.read_mask.float()
    logit_diff = enc.metric == "logit_diff"
    lm = model.lm  # the trace's code names only envoys, tensors and numbers: that is what a request carries

    source_tokens = enc.cf_tokens if ablation == "resample" else enc.tokens

    def submit():
        with requests.session() as session:
            out = nnsight.save([])  # [Σ over the screens' points so far (S, n, L, H), clean metric (n,)]
            given = []  # per layer the source z, from a gradient-free run (zero: none)
            if ablation != "zero":
                with lm.trace({"input_ids": source_tokens, "attention_mask": torch.ones_like(source_tokens)}) as tr:
                    with torch.no_grad():
                        for proj in projs:
                            x = proj.input
                            if ablation == "mean":
                                on = reach.to(x.device)
                                x = ((x * on).sum(0) / on.sum(0).clamp(min=1))[None].to(x.dtype)
                            given.append(x.detach())
                        tr.stop()  # nothing after the last layer's heads is needed
            for k, chunk in enumerate(chunks):
                alphas = [points[i] for i in chunk]
                c = len(alphas)
                tokens = torch.cat([enc.tokens] * c)
                rows = torch.arange(c * n)[:, None]
                with lm.trace({"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}):
                    embed.output.requires_grad_(True)
                    moved, live, sources = [], [], []
                    for layer, proj in enumerate(projs):
                        x = proj.input
                        source = given[layer] if given else torch.zeros_like(x[:n])
                        copies = [x[j * n : (j + 1) * n] for j in range(c)]
                        copies = [z if a == 1.0 else source + a * (z - source) for z, a in zip(copies, alphas)]
                        new = torch.cat(copies)
                        proj.input = new
                        moved.append(new)
                        live.append(x[: c * n].detach())
                        sources.append(source)
                    h = unembed.input
                    unembed.input = h[rows.to(h.device), read_pos.repeat(c, 1).to(h.device)]  # source rows unread
                    logits = lm.output.logits.float()
                    at = logits.device  # (the constants of the request travel on the CPU)
                    tgt, fl = target.repeat(c, 1).to(at), foil.repeat(c, 1).to(at)
                    if logit_diff:
                        metric = (logits.gather(-1, tgt[..., None]) - logits.gather(-1, fl[..., None]))[:, 0, 0]
                    else:
                        lp = logits.log_softmax(-1).gather(-1, tgt[..., None])[..., 0]
                        metric = (lp * read_mask.repeat(c, 1).to(at)).sum(-1)
                    grads = torch.autograd.grad(metric.sum(), moved)
                    per_layer = []
                    for zl, gl, sl in zip(live, grads, sources):
                        delta = gl[: c * n].float().view(c, n, T, H * d) * (zl.view(c, n, T, H * d) - sl).float()
                        per_layer.append(delta.view(c, n, T, H, d).sum((2, 4)).to(at))  # (c, n, H)
                    sums = torch.einsum("sc,cnlh->snlh", on_path[:, chunk].to(at), torch.stack(per_layer, 2))
                    if k == 0:
                        out.append(sums)
                    else:
                        out[0] = out[0] + sums
                    if k == len(chunks) - 1:
                        out.append(metric[-n:].detach())  # the last point, α = 1: the clean run
        return session, locals().get("out")

    label = "attribution" if screens == [1] else f"attribution, steps {'+'.join(map(str, screens))}"
    sums, metric = requests.run(label, submit)
    steps = torch.tensor(screens, dtype=torch.float32)[:, None, None, None]
    return _values(torch.as_tensor(sums).float() / steps), _values(metric)


def ablation(model: NnsightModel, enc, ablation: str, requests, progress=None, layers=None, done=None, chosen=None):
    """Exact ablation of one encoded task: the clean rows, one copy of them per head with that head's slice of z
    replaced by the source (zero, the items' mean at each position, or the counterfactual run's), and for
    resample the counterfactual rows, as many copies per trace as ``ROWS_PER_TRACE`` holds (copies of several
    layers share a trace: each layer's input is patched in its own copies' rows only), ``TRACES_PER_REQUEST``
    traces per request. Yields, per finished request, ``(heads, drops (n, len(heads)), clean metric (n,))``.

    ``requests``: ``ndif.Requests`` of the task map; ``progress``: a bar with ``update(k)``, one step per head;
    ``layers``: only these layers' heads; ``done``: an (L, H) bool mask of heads already swept (a request whose
    heads are all done is skipped: requests are cut the same way on every call, so a kept job keeps its label);
    ``chosen``: an (L, H) bool mask, only these heads (verified's candidates)."""
    import nnsight

    projs, unembed, _ = _envoys(model)
    n, T = enc.tokens.shape
    L, H, d = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head
    pairs = [
        (l, h) for l in (range(L) if layers is None else layers) for h in range(H) if chosen is None or chosen[l, h]
    ]
    per_trace = max(1, ROWS_PER_TRACE // n - 2)
    reach = (torch.arange(T)[None, :] < enc.lengths[:, None]).float()[..., None]
    logit_diff = enc.metric == "logit_diff"
    resample = ablation == "resample"
    lm = model.lm  # the trace's code names only envoys, tensors and numbers: that is what a request carries
    for _, heads, chunks in _requests_of(pairs, per_trace):
        if done is not None and all(done[layer, h] for layer, h in heads):
            continue

        def submit(chunks=chunks):
            with requests.session() as session:
                out = nnsight.save([])
                for chunk in chunks:
                    c = len(chunk)
                    tokens = torch.cat([enc.tokens] * (1 + c) + ([enc.cf_tokens] if resample else []))
                    rows = torch.arange(n * (1 + c))[:, None]
                    read_pos = enc.read_pos.repeat(1 + c, 1)
                    target, foil = enc.target.repeat(1 + c, 1), enc.foil.repeat(1 + c, 1)
                    read_mask = enc.read_mask.float().repeat(1 + c, 1)
                    with lm.trace({"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}):
                        with torch.no_grad():
                            for layer in sorted({at for at, _ in chunk}):
                                x = projs[layer].input
                                if resample:
                                    source = x[-n:]
                                elif ablation == "mean":
                                    on = reach.to(x.device)  # (the constants of the request travel on the CPU)
                                    source = ((x[:n] * on).sum(0) / on.sum(0).clamp(min=1))[None].expand(n, -1, -1)
                                else:
                                    source = torch.zeros_like(x[:n])
                                new = x.clone()
                                for j, (at, h) in enumerate(chunk):
                                    if at == layer:
                                        cut = slice(h * d, (h + 1) * d)
                                        new[(1 + j) * n : (2 + j) * n, :, cut] = source[..., cut]
                                projs[layer].input = new
                            h_in = unembed.input
                            at = h_in.device
                            unembed.input = h_in[rows.to(at), read_pos.to(at)]  # resample's cf rows are not read
                            logits = lm.output.logits.float()
                            at = logits.device
                            tgt, fl = target.to(at), foil.to(at)
                            if logit_diff:
                                m = (logits.gather(-1, tgt[..., None]) - logits.gather(-1, fl[..., None]))[:, 0, 0]
                            else:
                                m = (logits.log_softmax(-1).gather(-1, tgt[..., None])[..., 0] * read_mask.to(at)).sum(
                                    -1
                                )
                            out.append(m.view(1 + c, n))
            return session, locals().get("out")

        label = f"ablation of L{heads[0][0]}.H{heads[0][1]}–L{heads[-1][0]}.H{heads[-1][1]}"
        values = [_values(v) for v in requests.run(label, submit)]
        clean = values[0][0]
        drops = np.concatenate([v[0][None] - v[1:] for v in values]).T  # (n, len(heads))
        yield heads, drops, clean
        if progress is not None:  # once the caller has kept them: a stop here loses nothing
            progress.update(len(heads))


def pooled_z(model: NnsightModel, tokens: torch.Tensor, weight: torch.Tensor, requests, label: str) -> np.ndarray:
    """Every head's z pooled over each row's positions by ``weight`` (b, T) — Σ_t weight[b, t] · z[b, t] — in one
    no-grad trace of right-padded ``tokens`` (b, T), one request (``label``) → (b, L, H, d_head) float32."""
    import nnsight

    projs, _, _ = _envoys(model)
    H, d = model.cfg.n_heads, model.cfg.d_head
    b, T = tokens.shape
    lm = model.lm  # the trace's code names only envoys, tensors and numbers: that is what a request carries

    def submit():
        with requests.session() as session:
            with lm.trace({"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}) as tracer:
                with torch.no_grad():
                    pooled = []
                    for proj in projs:
                        x = proj.input
                        pooled.append(torch.einsum("bt,bthd->bhd", weight.to(x.device), x.view(b, T, H, d).float()))
                    out = nnsight.save(torch.stack([p.to(pooled[0].device) for p in pooled], 1))
                    tracer.stop()  # nothing after the last layer's heads is needed
        return session, locals().get("out")

    return _values(requests.run(label, submit))


def masked(model: NnsightModel, lp, ld, masks: torch.Tensor, requests, advance=None, means=None):
    """The behaviour of the items with head sets ablated. ``lp``: the task encoded for logprob (every answer
    token read); ``ld``: for logit_diff (None without counterfactuals), read in the same runs; ``masks`` (S, L, H)
    bool: copy s of the items runs with heads masks[s] having z set to 0 (or, with ``means`` (L, H, d_head), to
    the head's mean at every position: ``mask_heads``' mode="mean"), as many copies per trace as
    ``ROWS_PER_TRACE`` holds, ``TRACES_PER_REQUEST`` traces per request → per copy and item (S, n): the answer's
    log-prob, greedy
    correctness (every answer token the argmax), and the logit difference (None without ``ld``). ``advance(k)``:
    called after each request with its k traces (a progress bar's ``update``)."""
    import nnsight

    projs, unembed, _ = _envoys(model)
    n, T = lp.tokens.shape
    H, d = model.cfg.n_heads, model.cfg.d_head
    read_pos = lp.read_pos if ld is None else torch.cat([lp.read_pos, ld.read_pos], 1)
    P = lp.read_pos.shape[1]
    per_trace = max(1, ROWS_PER_TRACE // n)
    lm = model.lm  # the trace's code names only envoys, tensors and numbers: that is what a request carries
    values = []
    for first, part, chunks in _requests_of(masks, per_trace):

        def submit(chunks=chunks):
            with requests.session() as session:
                out = nnsight.save([])
                for chunk in chunks:
                    c = len(chunk)
                    tokens = lp.tokens.repeat(c, 1)
                    rows = torch.arange(c * n)[:, None]
                    target, mask = lp.target.repeat(c, 1), lp.read_mask.repeat(c, 1)
                    layers = [layer for layer in range(len(projs)) if bool(chunk[:, layer].any())]
                    with lm.trace({"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}):
                        with torch.no_grad():
                            for layer in layers:
                                x = projs[layer].input.view(c, n, T, H, d)
                                where = chunk[:, layer][:, None, None, :, None].to(x.device)  # (c, 1, 1, H, 1)
                                if means is None:
                                    new = x.masked_fill(where, 0.0)
                                else:
                                    new = torch.where(where, means[layer].to(x.device, x.dtype), x)
                                projs[layer].input = new.view(c * n, T, H * d)
                            h = unembed.input
                            unembed.input = h[rows.to(h.device), read_pos.repeat(c, 1).to(h.device)]  # only where read
                            logits = lm.output.logits.float()
                            dev = logits.device  # (the constants of the request travel on the CPU)
                            tgt, on = target.to(dev), mask.to(dev)
                            at = logits[:, :P]
                            logprob = (at.log_softmax(-1).gather(-1, tgt[..., None])[..., 0] * on).sum(-1)
                            correct = ((at.argmax(-1) == tgt) | ~on).all(-1).float()
                            got = [logprob, correct]
                            if ld is not None:
                                t_ld, f_ld = ld.target.repeat(c, 1).to(dev), ld.foil.repeat(c, 1).to(dev)
                                at = logits[:, P:]
                                got.append((at.gather(-1, t_ld[..., None]) - at.gather(-1, f_ld[..., None]))[:, 0, 0])
                            out.append(torch.stack(got).view(len(got), c, n))
            return session, locals().get("out")

        label = f"masked head sets {first}–{first + len(part) - 1}"
        values += [_values(v) for v in requests.run(label, submit)]
        if advance is not None:
            advance(len(chunks))
    got = np.concatenate(values, 1)  # (2 or 3, S, n)
    return got[0], got[1].astype(bool), (got[2] if ld is not None else None)
