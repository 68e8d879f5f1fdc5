"""The engine: running a model with some heads changed, fast, and proven equal to a plain run.

Every scorer reads or changes one hook, ``blocks.{l}.attn.hook_z`` (``hooks``). The engine runs the
bridge up to its final norm (``forward``), re-runs only the blocks at and above a changed layer
(``replay``), and packs many sequences into shared rows (``packing``). It knows nothing of tasks, metrics
or scorers: it takes token tensors and returns residual streams.
"""

__all__: list[str] = []
