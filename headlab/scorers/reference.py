"""Slow, plain references that the fast scorers are proven against in the tests (not a scorer)."""

from __future__ import annotations

import torch

from ..engine.forward import gather_positions
from ..metrics import encode, from_logits
from ..tasks import Task


def transformerlens_patching(model, task: Task, metric: str = "logit_diff", index_df=None):
    """TransformerLens' own head patching with the counterfactual's z patched into the clean run, as clean
    metric − patched metric. Returns (n_layers, n_heads), or one value per ``index_df`` row (columns layer,
    head) to patch only those heads. Slow (one full forward per head): for checking."""
    from transformer_lens import patching

    enc = encode(task, model.tokenizer, metric)
    _, cf_cache = model.run_with_cache(enc.cf_tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    fn = lambda logits: from_logits(gather_positions(logits, enc.read_pos), enc).mean()  # noqa: E731
    with torch.no_grad():
        clean = fn(model(enc.tokens))
        if index_df is None:
            patched = patching.get_act_patch_attn_head_out_all_pos(model, enc.tokens, cf_cache, fn)
        else:
            patched = patching.generic_activation_patch(
                model,
                enc.tokens,
                cf_cache,
                fn,
                patch_setter=patching.layer_head_vector_patch_setter,
                activation_name="z",
                index_df=index_df,
            )
    return (clean - patched).numpy()
