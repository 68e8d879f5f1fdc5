"""What to do with head maps once scored: select heads (``selection``), test them (``stats``: bootstrap
CIs, Always/Any), compare maps, tasks and models (``compare``), intervene on heads (``interventions``:
masking and steering hooks), check a selection causally (``validation``) and steer (``steering``)."""

__all__: list[str] = []
