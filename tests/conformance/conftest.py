"""The conformance suite's one-line summary: per architecture variant and dtype, whether every case equalled
its reference. Each test's ``variant`` and ``dtype`` parameters (dtype float32 when absent) label it."""

import pytest

DTYPE_ORDER = ("float32", "bfloat16", "float16")
OUTCOMES: dict[tuple[str, str], list[str]] = {}  # (variant, dtype) → outcomes of its cases


@pytest.fixture(autouse=True)
def conformance_label(request):
    params = getattr(request.node, "callspec", None)
    params = params.params if params else {}
    if "variant" in params:
        request.node.user_properties.append(("conformance", (params["variant"], params.get("dtype", "float32"))))


def pytest_runtest_logreport(report):
    label = dict(report.user_properties).get("conformance")
    if label is not None and (report.when == "call" or report.outcome != "passed"):
        OUTCOMES.setdefault(label, []).append(report.outcome)


def summary(outcomes: dict[tuple[str, str], list[str]]) -> str:
    """``architectures: N tried, K equal to reference, F failed, S skipped (per dtype: …)``; a variant × dtype
    fails if any case failed, is skipped if every case was, else equals its references."""

    def status(results):
        return "failed" if "failed" in results else "skipped" if set(results) == {"skipped"} else "equal"

    def counts(keys):
        s = [status(outcomes[k]) for k in keys]
        return len(s), s.count("equal"), s.count("failed"), s.count("skipped")

    n, k, f, s = counts(list(outcomes))
    dtypes = sorted({d for _, d in outcomes}, key=lambda d: DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 99)
    parts = []
    for dtype in dtypes:
        dn, dk, df, ds = counts([key for key in outcomes if key[1] == dtype])
        parts.append(f"{dtype}: {dn} tried, {dk} equal, {df} failed, {ds} skipped")
    return f"architectures: {n} tried, {k} equal to reference, {f} failed, {s} skipped ({'; '.join(parts)})"


def pytest_terminal_summary(terminalreporter):
    if OUTCOMES:
        terminalreporter.write_line(summary(OUTCOMES))
