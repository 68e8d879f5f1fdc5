"""headlab.cli: bad flags and files on the command line end with one line on stderr and a non-zero exit.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import contextlib
import io

import pytest
from bad_inputs import Catalogue, cogqa, q, sub, write

from headlab import cli


class CLIError(Exception):
    """What the command line printed last on stderr when it exited with an error."""


def run_cli(*argv: str) -> int:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(list(argv))
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                raise CLIError(exit_.code) from None
            rc = exit_.code
    if rc:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        raise CLIError(lines[-1] if lines else f"exit status {rc}")
    return rc


CASES = Catalogue("cli")
bad = CASES.bad

bad(
    "--top -1",
    lambda c: run_cli("score", "--top", "-1"),
    CLIError,
    "--top must be a positive number of heads, got -1",
)
bad("--top 0", lambda c: run_cli("eval", "--top", "0"), CLIError, "--top must be a positive")
bad("--top abc", lambda c: run_cli("score", "--top", "abc"), CLIError, "argument --top: invalid int value: 'abc'")
bad(
    "--tasks unknown",
    lambda c: run_cli("eval", "--tasks", "Telepathy"),
    CLIError,
    r"unknown task\(s\) \['Telepathy'\]",
)
bad(
    "--tasks wrong case",
    lambda c: run_cli("eval", "--tasks", "retrieval"),
    CLIError,
    r"did you mean \['Retrieval'\]",
)
bad("--tasks empty", lambda c: run_cli("eval", "--tasks", ","), CLIError, "--tasks ',' names no task")
bad(
    "--method unknown",
    lambda c: run_cli("score", "--method", "magic"),
    CLIError,
    "argument --method: invalid choice: 'magic'",
)
bad(
    "--ablation unknown",
    lambda c: run_cli("score", "--ablation", "random"),
    CLIError,
    "argument --ablation: invalid choice",
)
bad(
    "--metric unknown",
    lambda c: run_cli("score", "--metric", "acc"),
    CLIError,
    "argument --metric: invalid choice",
)
bad(
    "--steps not a number",
    lambda c: run_cli("score", "--steps", "two"),
    CLIError,
    r"attribution option steps='two': give the number of integrated-gradient points, a whole number ≥ 1",
)
bad(
    "--steps for a method without it",
    lambda c: run_cli("score", "--method", "ablation", "--steps", "2"),
    CLIError,
    r"method 'ablation' takes no options, got \['steps'\]",
)
bad(
    "--path unknown",
    lambda c: run_cli("score", "--path", "inputs"),
    CLIError,
    r"attribution option path='inputs': choose from \('activations', 'layers'\)",
)
bad("--items 0", lambda c: run_cli("score", "--items", "0"), CLIError, "--items must be a positive number")
bad(
    "--cogqa missing",
    lambda c: run_cli("eval", "--cogqa", str(c.tmp / "nope.json")),
    CLIError,
    "CogQA file not found",
)
bad(
    "--cogqa latin-1",
    lambda c: run_cli("eval", "--cogqa", write(c, "cli-latin.json", b'[{"question": "caf\xe9"}]')),
    CLIError,
    "is not UTF-8",
)
bad(
    "--cogqa unknown task",
    lambda c: run_cli("eval", "--cogqa", cogqa(c, "cli.json", [q(sub())]), "--tasks", "Inference"),
    CLIError,
    r"unknown task\(s\) \['Inference'\]; choose from \['Retrieval'\]",
)
bad(
    "--out a file",
    lambda c: run_cli("score", "--out", write(c, "a-file", "x")),
    CLIError,
    "is a file: name a folder",
)


def taken_out(c):
    out = c.tmp / "taken"
    out.mkdir(exist_ok=True)
    (out / "scores.npz").write_bytes(b"")
    return run_cli("score", "--out", str(out))


bad("--out holds outputs", taken_out, CLIError, "already holds scores.npz: pass --overwrite")
bad(
    "--model unknown",
    lambda c: run_cli("eval", "--model", "gpt-17", "--tasks", "Retrieval"),
    CLIError,
    "headlab: unknown model alias 'gpt-17'",
)
bad(
    "--device unknown",
    lambda c: run_cli("eval", "--device", "banana", "--tasks", "Retrieval"),
    CLIError,
    "headlab: device='banana' is not a device",
)
bad(
    "--dtype unknown",
    lambda c: run_cli("eval", "--dtype", "int8", "--tasks", "Retrieval"),
    CLIError,
    "headlab: dtype='int8': converting weights to int8 would destroy them",
)
bad("no command", lambda c: run_cli(), CLIError, "the following arguments are required")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
