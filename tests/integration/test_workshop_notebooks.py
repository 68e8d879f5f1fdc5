"""The workshop notebook as a learner meets it, in one Jupyter kernel on the embedded model: every check of the
blank 03_workshop.ipynb fails with its hint (one line, no traceback), then a typical wrong answer gets its own
hint, then the answer from 03_workshop_solutions.ipynb passes with a ✓."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# per check, in order: a wrong answer a learner might give (computed, not typed in) and the hint it must get
WRONG = [
    ("mean_logit_diff = -clean.logit_diff.mean().item()", "Exercise 1, mean_logit_diff: wrong sign"),
    (
        "top_head = tuple(int(i) for i in np.unravel_index(m.argmax(), m.shape))[::-1]",
        "(8, 27) is outside the model: layers 0–29, heads 0–8 (swapped?",
    ),
    (
        "bottom_head = tuple(int(i) for i in np.unravel_index(abs(m).argmin(), m.shape))",
        "Exercise 3, bottom_head: that head has the smallest |score| (it barely matters)",
    ),
    ("ablated_top = mean_logit_diff", "Exercise 3, ablated_top: that is the clean metric"),
    ("attended = tokens[-1]", "Exercise 4, attended: that is the last token itself"),
]
BLANK_HINTS = [
    "Exercise 1, mean_logit_diff: replace the ... with your answer",
    "Exercise 2, top_head: replace the ... with your answer",
    "Exercise 3, bottom_head: replace the ... with your answer",
    "Exercise 3, ablated_top: replace the ... with your answer",
    "Exercise 4, attended: replace the ... with your answer",
]


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def the_error(cell) -> dict:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, f"expected the check to fail: {cell.source!r} → {cell.outputs}"
    return errors[0]


def no_error(cell) -> str:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{cell.source!r} raised {errors[0].ename}: {errors[0].evalue}"
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_blanks_fail_with_hints_and_solutions_pass():
    blank = nbformat.read(NOTEBOOKS / "03_workshop.ipynb", as_version=4)
    solved = nbformat.read(NOTEBOOKS / "03_workshop_solutions.ipynb", as_version=4)
    client = NotebookClient(
        blank, kernel_name="python3", timeout=600, allow_errors=True, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    seen, answer_at, ticks = [], None, []
    with client.setup_kernel():

        def run(source: str):
            cell = nbformat.v4.new_code_cell(source)
            client.nb.cells.append(cell)
            client.execute_cell(cell, len(client.nb.cells) - 1)
            return cell

        for i, cell in enumerate(list(blank.cells)):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, i)
            if "answer" in tags(cell):
                assert "..." in cell.source
                no_error(cell)
                answer_at = i
            elif "check" in tags(cell):
                k = len(seen)
                err = the_error(cell)  # the blank: still `...`
                assert (err.ename, err.traceback) == ("NotYet", [f"\x1b[31m✗ {err.evalue}\x1b[0m"]), err
                assert err.evalue.startswith(BLANK_HINTS[k]), err.evalue
                seen.append(err.evalue)
                run(solved.cells[answer_at].source)  # the other answers of the cell right, one wrong
                wrong, hint = WRONG[k]
                err = the_error(run(wrong + "\n" + cell.source))
                assert err.ename == "NotYet" and hint in err.evalue, err.evalue
                ticks.append(no_error(run(solved.cells[answer_at].source + "\n" + cell.source)))
            else:
                no_error(cell)
    assert len(seen) == 5
    assert [t.split(":")[0] for t in ticks] == [f"✓ Exercise {e}" for e in (1, 2, 3, 3, 4)]
    assert "L27.H8 is the top head" in ticks[1] and "attends most to 'Ġkeys'" in ticks[4], ticks
