"""Task metrics, batched, shared by every scorer and notebook.

- ``logprob``: teacher-forced Σ log p(answer token) over all answer tokens (multi-token answers).
- ``logit_diff``: logit(answer) − logit(counterfactual answer) at the first token where the two answers
  differ, after teacher-forcing their common prefix (" 17" vs " 19" → " ", "1" forced, then "7" vs "9").
- ``accuracy``: the greedy continuation equals the answer (every teacher-forced argmax hits its token).

Sequences are right-padded. The models are causal, so padding after a sequence never changes its logits:
batched and one-by-one runs agree (tested to 1e-4). Logits are computed only at the positions a metric
reads (``Encoded.read_pos``).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, replace

import torch

from .engine.forward import (
    check_logits,
    device_of,
    final_resid,
    gather_positions,
    logit_factor,
    softcap,
    to_logits,
    unembed_at,
)
from .engine.nnsight_engine import require_bridge
from .errors import InputError, InputTypeError
from .tasks import Task, TaskError

__all__ = [
    "Encoded",
    "METRICS",
    "answer_ids",
    "check_length",
    "encode",
    "evaluate",
    "from_logits",
    "greedy_correct",
    "logits_at",
    "max_positions",
    "metric_at",
    "prompt_ids",
    "summary_table",
]

METRICS = ("logit_diff", "logprob")
ENCODED_TENSORS = ("tokens", "cf_tokens", "lengths", "cf_ok", "read_pos", "read_mask", "target", "foil")


@dataclass
class Encoded:
    """A task tokenized for one metric. Shapes: n items, T padded length, P read positions."""

    task: str
    metric: str
    tokens: torch.Tensor  # (n, T) clean prompt + teacher-forced continuation, right-padded
    cf_tokens: torch.Tensor | None  # (n, T) counterfactual prompt + the same continuation (or None)
    lengths: torch.Tensor  # (n,) real length of each row
    cf_ok: torch.Tensor  # (n,) bool: counterfactual usable for resampling (its prompt's token length, not identical)
    read_pos: torch.Tensor  # (n, P) positions whose logits the metric reads
    read_mask: torch.Tensor  # (n, P) bool: real read positions (logprob answers differ in length)
    target: torch.Tensor  # (n, P) answer token at each read position
    foil: torch.Tensor  # (n, P) counterfactual-answer token (logit_diff only; else = target)

    @property
    def n(self) -> int:
        return self.tokens.shape[0]

    @classmethod
    def concat(cls, parts: list[Encoded], task: str = "pooled") -> Encoded:
        """Stack encodings of one metric (e.g. several tasks): rows right-padded to the longest T (padding
        after a row never changes its numbers), read positions to the largest P (extra ones masked). A part
        without counterfactuals contributes its clean rows as ``cf_tokens``."""
        metrics = {p.metric for p in parts}
        if len(metrics) != 1:
            raise InputError(f"cannot stack encodings of different metrics {sorted(metrics)}")
        T = max(p.tokens.shape[1] for p in parts)
        P = max(p.read_pos.shape[1] for p in parts)

        def stack(get, width, fill):
            out = []
            for p in parts:
                t = get(p)
                extra = width - t.shape[1]
                pad = t[:, -1:].expand(-1, extra) if fill is None else t.new_full((t.shape[0], extra), fill)
                out.append(torch.cat([t, pad], 1))
            return torch.cat(out)

        return cls(
            task,
            metrics.pop(),
            stack(lambda p: p.tokens, T, 0),
            stack(lambda p: p.tokens if p.cf_tokens is None else p.cf_tokens, T, 0),
            torch.cat([p.lengths for p in parts]),
            torch.cat([p.cf_ok for p in parts]),
            stack(lambda p: p.read_pos, P, None),
            stack(lambda p: p.read_mask, P, False),
            stack(lambda p: p.target, P, 0),
            stack(lambda p: p.foil, P, 0),
        )

    def to(self, device) -> Encoded:
        """The same encoding with every tensor on ``device`` (the model's)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Encoded(self.task, self.metric, *(move(getattr(self, f)) for f in ENCODED_TENSORS))

    def first_differences(self) -> torch.Tensor:
        """(n,) first position where each counterfactual row differs from its clean row (T if none)."""
        if self.cf_tokens is None:
            return torch.full((self.n,), self.tokens.shape[1])
        differs = self.tokens != self.cf_tokens
        return torch.where(differs.any(1), differs.float().argmax(1), torch.tensor(self.tokens.shape[1]))

    def trimmed(self, at_least: int = 0) -> Encoded:
        """The same rows without the padding columns past the longest row (keeping ``at_least`` columns): right
        padding under causal attention is never seen by a real position, so a subset's runs need not compute it."""
        width = min(self.tokens.shape[1], max(int(self.lengths.max()), at_least))
        if width == self.tokens.shape[1]:
            return self
        cut = lambda t: None if t is None else t[:, :width]  # noqa: E731
        return replace(self, tokens=cut(self.tokens), cf_tokens=cut(self.cf_tokens))

    def subset(self, idx) -> Encoded:
        idx = torch.as_tensor(idx)
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Encoded(
            self.task,
            self.metric,
            pick(self.tokens),
            pick(self.cf_tokens),
            pick(self.lengths),
            pick(self.cf_ok),
            pick(self.read_pos),
            pick(self.read_mask),
            pick(self.target),
            pick(self.foil),
        )


def answer_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def prompt_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text).input_ids


def max_positions(model) -> int | None:
    """The most positions ``model`` takes (its ``cfg.n_ctx``), or None when it does not say."""
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    return int(n_ctx) if isinstance(n_ctx, numbers.Integral) and n_ctx > 0 else None


def check_length(model, enc: Encoded) -> None:
    """Refuse, before any compute, an encoded task whose longest row is longer than the model's positions:
    a one-line ``TaskError`` naming the task, the item and both lengths."""
    n_ctx = max_positions(model)
    if n_ctx is None or enc.n == 0:
        return
    longest = int(enc.lengths.argmax())
    if int(enc.lengths[longest]) > n_ctx:
        n_over = int((enc.lengths > n_ctx).sum())
        raise TaskError(
            f"task {enc.task!r}: item {longest} is {int(enc.lengths[longest])} tokens (prompt + teacher-forced "
            f"answer) but the model takes at most {n_ctx} positions (cfg.n_ctx); {n_over} item(s) are too long: "
            "shorten or drop them"
        )


def encode(task: Task, tokenizer, metric: str = "logit_diff", warn: bool = True) -> Encoded:
    """Tokenize ``task`` for ``metric``; a one-line ``TaskError`` for items that cannot be scored.

    Warns (``warn``) when counterfactual prompts differ in token length from their prompt, or are identical
    to it (resampling them changes nothing: every head would score 0); resampling skips both (``cf_ok``)."""
    if not isinstance(task, Task):
        raise InputTypeError(f"encode() takes one Task, not {type(task).__name__}")
    if not callable(tokenizer) or not hasattr(tokenizer, "pad_token_id"):
        raise InputTypeError(
            f"tokenizer must be a Hugging Face tokenizer (model.tokenizer), not {type(tokenizer).__name__}"
        )
    if not isinstance(metric, str) or metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}: choose from {METRICS}")
    if metric == "logit_diff" and not task.has_counterfactuals:
        have = sum(item.has_counterfactual for item in task.items)
        raise TaskError(
            f"task {task.name!r}: {have} of {len(task)} items have a counterfactual answer; metric='logit_diff' "
            "needs one on every item: complete them or use metric='logprob'"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows, cf_rows, reads, targets, foils, cf_ok = [], [], [], [], [], []
    n_same = 0  # counterfactual prompts identical to their prompt (as tokens)
    for i, item in enumerate(task.items):
        p = prompt_ids(tokenizer, item.prompt)
        a = answer_ids(tokenizer, item.answer)
        if not a:
            raise TaskError(f"task {task.name!r}: item {i} answer {item.answer!r} tokenizes to nothing")
        cf_p = prompt_ids(tokenizer, item.counterfactual) if item.has_counterfactual else None
        if metric == "logit_diff":
            b = answer_ids(tokenizer, item.counterfactual_answer)
            if not b:
                raise TaskError(f"task {task.name!r}: item {i} counterfactual_answer tokenizes to nothing")
            k = _first_difference(a, b)
            if k is None:
                raise TaskError(
                    f"task {task.name!r}: item {i} answer {item.answer!r} is a token prefix of the counterfactual "
                    "answer (or the reverse): make them differ at some token"
                )
            cont = a[:k]
            reads.append([len(p) + k - 1])
            targets.append([a[k]])
            foils.append([b[k]])
        else:
            cont = a[:-1]
            reads.append(list(range(len(p) - 1, len(p) + len(a) - 1)))
            targets.append(a)
            foils.append(a)
        rows.append(p + cont)
        same_length = cf_p is not None and len(cf_p) == len(p)
        same = same_length and cf_p == p
        n_same += same
        cf_ok.append(same_length and not same)
        cf_rows.append((cf_p + cont) if same_length else p + cont)
    n_bad = sum(item.has_counterfactual for item in task.items) - sum(cf_ok) - n_same
    if warn and task.has_counterfactuals and n_bad:
        warnings.warn(
            f"task {task.name!r}: {n_bad} of {len(task)} counterfactual prompts differ in token length from their "
            "prompt; resample ablation skips those items, whatever the method",
            stacklevel=2,
        )
    if warn and n_same:
        warnings.warn(
            f"task {task.name!r}: {n_same} of {len(task)} counterfactual prompts are identical to their prompt "
            "(resampling them changes nothing: every head would score 0); resample ablation skips those items, "
            "whatever the method: make each counterfactual differ",
            stacklevel=2,
        )
    lengths = torch.tensor([len(r) for r in rows])
    T = int(lengths.max())
    P = max(len(r) for r in reads)
    tokens = torch.full((len(rows), T), pad, dtype=torch.long)
    cf_tokens = torch.full((len(rows), T), pad, dtype=torch.long)
    read_pos = torch.zeros((len(rows), P), dtype=torch.long)
    read_mask = torch.zeros((len(rows), P), dtype=torch.bool)
    target = torch.zeros((len(rows), P), dtype=torch.long)
    foil = torch.zeros((len(rows), P), dtype=torch.long)
    for i, (row, cf_row, r, t, f) in enumerate(zip(rows, cf_rows, reads, targets, foils)):
        tokens[i, : len(row)] = torch.tensor(row)
        cf_tokens[i, : len(cf_row)] = torch.tensor(cf_row)
        read_pos[i, : len(r)] = torch.tensor(r)
        read_pos[i, len(r) :] = r[-1]
        read_mask[i, : len(r)] = True
        target[i, : len(t)] = torch.tensor(t)
        foil[i, : len(f)] = torch.tensor(f)
    return Encoded(
        task.name,
        metric,
        tokens,
        cf_tokens if task.has_counterfactuals else None,
        lengths,
        torch.tensor(cf_ok),
        read_pos,
        read_mask,
        target,
        foil,
    )


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k
    return None


def from_logits(logits: torch.Tensor, enc: Encoded) -> torch.Tensor:
    """Per-item metric from logits at the read positions, in float32. logits (k·n, P, V) → (k·n,), rows tile
    ``enc``."""
    logits = logits.float()
    reps = logits.shape[0] // enc.n
    target, foil, mask = (t.to(logits.device).repeat(reps, 1) for t in (enc.target, enc.foil, enc.read_mask))
    if enc.metric == "logit_diff":
        return (logits.gather(-1, target[..., None]) - logits.gather(-1, foil[..., None]))[:, 0, 0]
    logp = logits.log_softmax(-1).gather(-1, target[..., None])[..., 0]
    return (logp * mask).sum(-1)


def metric_at(model, x: torch.Tensor, enc: Encoded) -> torch.Tensor:
    """Per-item metric (float32) from the final residual stream at the read positions: x (k·n, P, d_model) →
    (k·n,), rows tiling ``enc``. ``logit_diff`` reads only the answer's and the foil's unembedding rows, not
    the whole vocabulary (a final-logit softcap is applied to each of the two logits: it acts elementwise);
    ``logprob`` needs every logit (its softmax). ``check_logits`` has proven this readout on the model."""
    check_logits(model)
    head = getattr(model.unembed, "original_component", None)
    if enc.metric != "logit_diff" or not isinstance(head, torch.nn.Linear):
        return from_logits(to_logits(model, x), enc)
    x = model.ln_final(x)[:, 0].float()
    reps = x.shape[0] // enc.n
    target, foil = (t[:, 0].to(head.weight.device).repeat(reps) for t in (enc.target, enc.foil))
    w_t, w_f = head.weight[target].float().to(x.device), head.weight[foil].float().to(x.device)
    cap, factor = softcap(model), logit_factor(model)
    if cap is None:
        diff = (x * (w_t - w_f)).sum(-1)
        diff = diff if head.bias is None else diff + (head.bias[target] - head.bias[foil]).float().to(x.device)
        return diff if factor == 1.0 else diff * factor
    a, b = (x * w_t).sum(-1), (x * w_f).sum(-1)
    if head.bias is not None:
        a, b = a + head.bias[target].float().to(x.device), b + head.bias[foil].float().to(x.device)
    a, b = a * factor, b * factor
    return cap * torch.tanh(a / cap) - cap * torch.tanh(b / cap)


def greedy_correct(logits: torch.Tensor, enc: Encoded) -> torch.Tensor:
    """(k·n,) bool: every teacher-forced argmax equals its answer token (needs a ``logprob`` encoding);
    logits (k·n, P, V), rows tiling ``enc``."""
    if enc.metric != "logprob":
        raise InputError("greedy accuracy needs a metric='logprob' encoding (all answer tokens)")
    reps = logits.shape[0] // enc.n
    hit = (logits.argmax(-1).to(enc.target.device) == enc.target.repeat(reps, 1)) | ~enc.read_mask.repeat(reps, 1)
    return hit.all(-1)


@torch.no_grad()
def logits_at(model, tokens: torch.Tensor, read_pos: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Run ``model`` on right-padded ``tokens`` (n, T); return logits at ``read_pos`` (n, P, V)."""
    out = []
    for s in range(0, tokens.shape[0], batch_size):
        logits = model(tokens[s : s + batch_size].to(device_of(model)))
        out.append(gather_positions(logits, read_pos[s : s + batch_size].to(logits.device)).float().cpu())
    return torch.cat(out)


@dataclass
class TaskEval:
    """Clean behaviour of a model on a task: per-item arrays and their summary."""

    task: str
    logprob: torch.Tensor  # (n,)
    logit_diff: torch.Tensor | None  # (n,)
    correct: torch.Tensor  # (n,) bool

    def summary(self) -> dict:
        row = {
            "task": self.task,
            "n": len(self.logprob),
            "accuracy": self.correct.float().mean().item(),
            "mean_logprob": self.logprob.mean().item(),
        }
        if self.logit_diff is not None:
            row["preference"] = (self.logit_diff > 0).float().mean().item()
            row["mean_logit_diff"] = self.logit_diff.mean().item()
        return row


@torch.no_grad()
def evaluate(model, task: Task, batch_size: int = 64, copies: int = 1) -> TaskEval:
    """Accuracy (greedy), answer log-prob and (with counterfactuals) logit difference per item.

    One forward pass per batch: the logit-difference read position (where answer and counterfactual answer
    first differ) lies inside the teacher-forced answer, so both metrics read the same run; logits are
    computed only at the positions read. ``copies`` > 1 runs each batch as that many stacked copies (for
    ``interventions.mask_head_sets``, which changes each copy differently): the arrays are then (copies, n).
    """
    require_bridge(model, "evaluate()")
    if not isinstance(task, Task):
        hint = ": loop over builtin().values()" if hasattr(task, "values") or isinstance(task, list) else ""
        raise InputTypeError(f"evaluate() takes one Task, not {type(task).__name__}{hint}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(copies, bool) or not isinstance(copies, numbers.Integral) or copies < 1:
        raise InputError(f"copies must be a positive int, got {copies!r}")
    check_logits(model)
    tok = model.tokenizer
    enc_lp = encode(task, tok, "logprob", warn=False)
    check_length(model, enc_lp)
    enc_ld = encode(task, tok, "logit_diff", warn=False) if task.has_counterfactuals else None
    if enc_ld is not None:
        T = enc_ld.tokens.shape[1]
        real = torch.arange(T)[None] < enc_ld.lengths[:, None]
        assert bool(((enc_ld.tokens == enc_lp.tokens[:, :T]) | ~real).all()), "logit-diff rows must prefix logprob rows"
    lp, ld, correct = [], [], []
    for s in range(0, enc_lp.n, batch_size):
        part = enc_lp.subset(torch.arange(s, min(s + batch_size, enc_lp.n)))
        resid = final_resid(model, part.tokens[:, : int(part.lengths.max())].repeat(copies, 1))
        logits = unembed_at(model, resid, part.read_pos)
        lp.append(from_logits(logits, part).cpu().view(copies, -1))
        correct.append(greedy_correct(logits, part).cpu().view(copies, -1))
        if enc_ld is not None:
            part_ld = enc_ld.subset(torch.arange(s, min(s + batch_size, enc_lp.n)))
            ld.append(from_logits(unembed_at(model, resid, part_ld.read_pos), part_ld).cpu().view(copies, -1))
    out = [torch.cat(parts, 1) if parts else None for parts in (lp, ld, correct)]
    if copies == 1:
        out = [None if t is None else t[0] for t in out]
    return TaskEval(task.name, *out)


def summary_table(rows: list[dict]) -> str:
    """Markdown table of ``TaskEval.summary()`` rows."""
    lines = [
        "| task | n | accuracy (greedy) | preference (logit diff > 0) | mean log-prob | mean logit diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pref = f"{r['preference']:.0%}" if "preference" in r else "—"
        ld = f"{r['mean_logit_diff']:.2f}" if "mean_logit_diff" in r else "—"
        lines.append(f"| {r['task']} | {r['n']} | {r['accuracy']:.0%} | {pref} | {r['mean_logprob']:.2f} | {ld} |")
    return "\n".join(lines)
