"""Pictures of head maps: static figures (``plot``, ``curves``), what a map shows (``display``), the grid drawn in
the browser (``canvas``) and the notebook explorer (``explorer``; ``headlab.explorer()`` builds one)."""

__all__: list[str] = []
