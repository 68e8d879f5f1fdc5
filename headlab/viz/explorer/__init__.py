"""``explorer()``: a notebook dashboard over head scores — pick a model, a method, the tasks, how values are
coloured and which heads are selected; hover a head for its numbers, click it for its attention pattern;
compare two maps; save the view as a standalone page.

How it is built, one concern a module:

- ``state``: **one state model.** ``ViewState`` declares, as traitlets, everything the explorer shows — map A
  (model, method), map B (``compare``), the view mode, colours, selection, tasks, marks, the curve and head
  shown — and the running ``Job``. Nothing else holds a choice.
- ``controls``: the widgets, each a **view** of a trait (``traitlets.link``); the Model, Method and Compare
  menus *request* a map rather than set it.
- ``view``: ``render(state, store)`` — what the grid draws (``viz.display``'s panels on ``viz.canvas``'s
  canvas) and the status line, from the state and the computed maps only.
- ``jobs``: **every long job the same way** — estimated, asked about above ``ASK_ABOVE_S`` (30 s), run in a
  worker thread with a counter, cancellable within one transformer block.
- ``menus``: what each menu offers (a model's engine decides its methods; NDIF models are marked remote).
- ``details``: one head up close; ``app``: the ``Explorer`` that ties them.

The rule that keeps it honest: **a map not computed yet never enters the state.** Picking one starts a job
that writes only its result into the store; when it ends, the map goes on screen in the role it was asked
for (A, or B beside A — compare never replaces A). Cancel or an error leaves the state as it was before the
job. Hover and head details always belong to the maps on screen.
"""

from .app import Explorer, explorer
from .details import HeadDetails

__all__ = ["Explorer", "HeadDetails", "explorer"]
