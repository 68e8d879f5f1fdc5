"""Helpers for tests, benchmarks and the workshop, not part of the product: tiny random models
(``tiny``, ``tiny_hf``, ``planted``, ``byte_tokenizer``), one builder of hand-made maps (``head_scores``), the
architecture zoo (``headlab.testing.architectures``) and the slow reference scorers the fast ones are proven
against (``headlab.testing.reference``).

No module of headlab outside this package imports it."""

from .maps import head_scores
from .models import byte_tokenizer, planted, tiny, tiny_hf

__all__ = ["byte_tokenizer", "head_scores", "planted", "tiny", "tiny_hf"]
