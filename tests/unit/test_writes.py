"""Writes that were not asked for (issue #32, class 5), the CLI's flags and summary line (class 8) and saved
scores' metadata (class 7).

Every writer — ``HeadScores.save``, ``plot.save``, ``Explorer.save_html`` and the CLI's ``--out`` — goes through
``headlab.files``; each rule is checked on each writer: the refused write leaves the file as it was and nothing
beside it, and its message is one line naming the argument, the value and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from headlab import cli, files, models
from headlab.models import ModelInfo, describe
from headlab.results import HeadScores
from headlab.scoring import score
from headlab.tasks import Task
from headlab.testing import head_scores
from headlab.viz import explorer as widgets
from headlab.viz import plot

OLD = b"earlier contents, never to be lost"


@pytest.fixture(scope="module")
def scores(tiny_model):
    info = describe(tiny_model)
    rng = np.random.default_rng(0)
    per_example = rng.normal(size=(1, 3, info.n_layers, info.n_heads)).astype(np.float32)
    return head_scores(per_example=per_example, tasks=["Toy"], model=info, baseline=[0.5])


@pytest.fixture(scope="module")
def writers(tiny_model, toy_task, scores):
    """Each writer as (suffix, write(path, overwrite=...) → path written)."""
    fig = plot.heatmap_grid(scores)
    ex = widgets.explorer(models={"tiny": tiny_model}, tasks=[toy_task], scores=scores)
    assert ex.state.message == ""
    return {
        "HeadScores.save": (".npz", lambda path, **kw: scores.save(path, **kw)),
        "plot.save": (".png", lambda path, **kw: plot.save(fig, path, **kw)),
        "Explorer.save_html": (".html", lambda path, **kw: ex.save_html(path, **kw)),
        "files.write_file": (
            ".txt",
            lambda path, overwrite=False: files.write_file(
                files.output_path(path, what="write()", suffixes=(".txt",), overwrite=overwrite),
                b"text",
                overwrite=overwrite,
                what="write()",
            ),
        ),
    }


WRITERS = ("HeadScores.save", "plot.save", "Explorer.save_html", "files.write_file")


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: a file's bytes, None for anything else."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def one_line(err: BaseException, *needles: str) -> str:
    text = str(err)
    assert "\n" not in text and ".tmp" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


# --- the rules, on every writer -----------------------------------------------------------------------------


def refuse_overwrite_value(value):
    def case(write, suffix, tmp, monkeypatch):
        target = tmp / f"map{suffix}"
        target.write_bytes(OLD)
        with pytest.raises(TypeError) as info:
            write(target, overwrite=value)
        one_line(info.value, "overwrite must be True or False", f"got {value!r}", "overwrite=True")
        assert listing(tmp) == {target.name: OLD}

    return case


def refuse_overwrite_value_on_a_new_file(write, suffix, tmp, monkeypatch):
    """``overwrite="yes"`` is refused even where there is nothing to overwrite: the bug shows up later otherwise."""
    with pytest.raises(TypeError) as info:
        write(tmp / f"new{suffix}", overwrite="yes")
    one_line(info.value, "overwrite must be True or False", "'yes' (str)")
    assert listing(tmp) == {}


def tilde_is_the_home_folder(write, suffix, tmp, monkeypatch):
    home, cwd = tmp / "home", tmp / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    written = write(f"~/maps/map{suffix}")
    assert written == home / "maps" / f"map{suffix}" and written.is_file()
    assert listing(cwd) == {}  # no folder named "~" here


def refuse_blank_path(path):
    def case(write, suffix, tmp, monkeypatch):
        monkeypatch.chdir(tmp)
        with pytest.raises(ValueError) as info:
            write(path)
        one_line(info.value, f"the empty path {path!r}", "name a file")
        assert listing(tmp) == {}

    return case


def refuse_a_folder_at_the_path(write, suffix, tmp, monkeypatch):
    folder = tmp / f"map{suffix}"
    (folder / "inside").mkdir(parents=True)
    for overwrite in (False, True):
        with pytest.raises(IsADirectoryError) as info:
            write(folder, overwrite=overwrite)
        one_line(info.value, f"{folder} is a folder", f"e.g. {folder / ('name' + suffix)}")
    assert listing(tmp) == {folder.name: None, f"{folder.name}/inside": None}


def refuse_a_folder_without_suffix(write, suffix, tmp, monkeypatch):
    """``save("runs")`` where runs is a folder wrote ``runs.npz`` beside it: now refused, as is ``save(".")``."""
    (tmp / "runs").mkdir()
    monkeypatch.chdir(tmp)
    for given in (tmp / "runs", ".", "~"):
        monkeypatch.setenv("HOME", str(tmp / "runs"))
        with pytest.raises(IsADirectoryError) as info:
            write(given)
        one_line(info.value, "is a folder: name a file in it")
    assert listing(tmp) == {"runs": None}


def refuse_a_path_under_a_file(write, suffix, tmp, monkeypatch):
    (tmp / "notes.txt").write_bytes(OLD)
    with pytest.raises(NotADirectoryError) as info:
        write(tmp / "notes.txt" / "deeper" / f"map{suffix}")
    one_line(info.value, f"{tmp / 'notes.txt'} is a file", "choose another folder")
    assert listing(tmp) == {"notes.txt": OLD}


def keep_an_existing_file(write, suffix, tmp, monkeypatch):
    target = tmp / f"map{suffix}"
    target.write_bytes(OLD)
    with pytest.raises(FileExistsError) as info:
        write(target)
    one_line(info.value, str(target), "pass overwrite=True")
    assert listing(tmp) == {target.name: OLD}
    assert write(target, overwrite=True) == target and target.read_bytes() != OLD
    assert listing(tmp).keys() == {target.name}


def keep_a_file_that_appears_while_writing(write, suffix, tmp, monkeypatch):
    """Another process creates the file between the check and the write: it is kept, not replaced."""
    target, fsync = tmp / f"map{suffix}", os.fsync

    def racing(fd):
        target.write_bytes(OLD)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", racing)
    with pytest.raises(FileExistsError) as info:
        write(target)
    one_line(info.value, str(target), "pass overwrite=True")
    assert listing(tmp) == {target.name: OLD}


def name_the_target_in_a_read_only_folder(write, suffix, tmp, monkeypatch):
    """A real refusal: /sys refuses new files even to root (EACCES)."""
    try:
        os.unlink(tempfile.mkstemp(dir="/sys")[1])
        pytest.skip("/sys takes files here")
    except OSError:
        pass
    target = Path("/sys") / f"headlab-map{suffix}"
    with pytest.raises(PermissionError) as info:
        write(target)
    one_line(info.value, f"cannot write {target}", "the folder /sys is not writable")
    assert info.value.errno == errno.EACCES and not target.exists()


def name_the_target_when_the_rename_is_refused(write, suffix, tmp, monkeypatch):
    target = tmp / f"map{suffix}"
    target.write_bytes(OLD)

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError) as info:
        write(target, overwrite=True)
    one_line(info.value, f"cannot write {target}", f"the folder {tmp} is not writable")
    assert listing(tmp) == {target.name: OLD}  # the old file whole, no temporary file left


def say_the_disk_is_full(write, suffix, tmp, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        write(tmp / f"map{suffix}")
    one_line(info.value, f"cannot write {tmp / f'map{suffix}'}", "is full: free some space")
    assert info.value.errno == errno.ENOSPC and listing(tmp) == {}


def refuse_a_nul_character(write, suffix, tmp, monkeypatch):
    with pytest.raises(ValueError) as info:
        write(str(tmp / f"ma\0p{suffix}"))
    one_line(info.value, "NUL character")
    assert listing(tmp) == {}


def refuse_too_long_a_name(write, suffix, tmp, monkeypatch):
    with pytest.raises(ValueError) as info:
        write(tmp / ("m" * 300 + suffix))
    one_line(info.value, "is 30", "bytes long", "choose a shorter name")
    assert listing(tmp) == {}


def write_a_long_name(write, suffix, tmp, monkeypatch):
    """A 240-byte name is written: its temporary name (21 bytes longer) is a hash, not past the 255-byte limit."""
    target = tmp / ("m" * (240 - len(suffix)) + suffix)
    assert write(target) == target and listing(tmp).keys() == {target.name}


def give_open_s_permissions(write, suffix, tmp, monkeypatch):
    """A new file gets 0o666 less the umask (not the temporary file's 0o600); a replaced one keeps its mode."""
    mask = os.umask(0o022)
    try:
        target = write(tmp / f"map{suffix}")
        assert oct(target.stat().st_mode & 0o777) == oct(0o644)
        target.chmod(0o640)
        write(target, overwrite=True)
        assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    finally:
        os.umask(mask)


def refuse_a_pipe_at_the_path(write, suffix, tmp, monkeypatch):
    target = tmp / f"map{suffix}"
    os.mkfifo(target)
    with pytest.raises(FileExistsError) as info:
        write(target, overwrite=True)
    one_line(info.value, "not a regular file")
    assert target.is_fifo() and listing(tmp) == {target.name: None}


def remove_a_killed_writer_s_leftovers(write, suffix, tmp, monkeypatch):
    dead = tmp / f"map{suffix}.999999999.abcd.tmp"  # a process id no system hands out
    dead.write_bytes(b"half")
    target = write(tmp / f"map{suffix}")
    assert listing(tmp).keys() == {target.name}


RULES = {
    "overwrite='no' on an existing file": refuse_overwrite_value("no"),
    "overwrite=1": refuse_overwrite_value(1),
    "overwrite=0": refuse_overwrite_value(0),
    "overwrite=None": refuse_overwrite_value(None),
    "overwrite='yes' on a new file": refuse_overwrite_value_on_a_new_file,
    "~ is the home folder": tilde_is_the_home_folder,
    "empty path": refuse_blank_path(""),
    "blank path": refuse_blank_path("   "),
    "a folder at the path": refuse_a_folder_at_the_path,
    "a folder, '.' or '~' without suffix": refuse_a_folder_without_suffix,
    "a path under a file": refuse_a_path_under_a_file,
    "an existing file is kept": keep_an_existing_file,
    "a file appearing while writing is kept": keep_a_file_that_appears_while_writing,
    "read-only folder names the target": name_the_target_in_a_read_only_folder,
    "refused rename names the target": name_the_target_when_the_rename_is_refused,
    "full disk": say_the_disk_is_full,
    "NUL in the path": refuse_a_nul_character,
    "too long a name": refuse_too_long_a_name,
    "a long name within the limit": write_a_long_name,
    "open()'s permissions": give_open_s_permissions,
    "a pipe at the path": refuse_a_pipe_at_the_path,
    "a killed writer's temporary file": remove_a_killed_writer_s_leftovers,
}


@pytest.mark.parametrize("rule", RULES, ids=list(RULES))
@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_keeps_every_rule(writers, writer, rule, tmp_path, monkeypatch):
    suffix, write = writers[writer]
    tmp = tmp_path / "here"
    tmp.mkdir()
    RULES[rule](write, suffix, tmp, monkeypatch)


def test_saving_the_same_scores_again_is_not_an_error(scores, tmp_path):
    """HeadScores.save's one nuance: the same bytes again lose nothing, so they need no overwrite=True."""
    path = scores.save(tmp_path / "run")
    stamp = path.stat().st_mtime_ns
    assert scores.save(tmp_path / "run") == path and path.stat().st_mtime_ns == stamp  # not even rewritten
    other = HeadScores(**{**vars(scores), "baseline": [0.25]})
    with pytest.raises(FileExistsError, match="holds other scores: pass overwrite=True"):
        other.save(path)
    assert HeadScores.load(path).baseline.tolist() == [0.5]


@pytest.mark.parametrize(
    "suffixes, append, given, written",
    [
        ((".npz",), ".npz", "run.v1", "run.v1.npz"),
        ((".npz",), ".npz", "run.NPZ", "run.NPZ"),
        ((".html", ".htm"), None, "map.HTM", "map.HTM"),
    ],
    ids=["suffix appended to a dotted name", "suffix in capitals kept", "second suffix accepted"],
)
def test_output_path_suffix_rules(tmp_path, suffixes, append, given, written):
    got = files.output_path(tmp_path / given, what="w()", suffixes=suffixes, overwrite=False, append_suffix=append)
    assert got == tmp_path / written


def test_an_existing_file_is_refused_before_any_work(tmp_path, monkeypatch):
    """output_path refuses at once: a figure is not rendered, a page not built, only to be refused at the end."""
    (tmp_path / "map.html").write_bytes(OLD)
    with pytest.raises(FileExistsError) as info:
        files.output_path(tmp_path / "map.html", what="save_html()", suffixes=(".html",), overwrite=False)
    one_line(info.value, "save_html():", str(tmp_path / "map.html"), "pass overwrite=True to replace it")
    got = files.output_path(tmp_path / "map.html", what="save_html()", suffixes=(".html",), overwrite=True)
    assert got == tmp_path / "map.html" and listing(tmp_path) == {"map.html": OLD}


def test_a_wrong_suffix_is_refused_with_the_ones_it_takes(tmp_path):
    with pytest.raises(ValueError) as info:
        files.output_path(tmp_path / "grid.jpg", what="plot.save()", suffixes=(".png", ".svg"), overwrite=False)
    one_line(info.value, "cannot save as '.jpg'", "ending in .png / .svg", "grid.jpg")


# --- the CLI ---------------------------------------------------------------------------------------------------


def cogqa_file(folder: Path) -> str:
    """A CogQA file of two functions of five items each (the probe's folds): no counterfactuals, so resample and
    logit_diff fall back."""
    subs = [
        {"subquestion": f"Which {w} of {skill}?", "answer": w, "cognitive_skill": skill}
        for skill in ("Retrieval", "Inference")
        for w in ("book", "film", "song", "poem", "play")
    ]
    path = folder / "cogqa.json"
    path.write_text(json.dumps([{"question": "Who wrote it?", "answer": "x", "generated": subs}]))
    return str(path)


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        rc = cli.main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    out, err = capsys.readouterr()
    if isinstance(rc, str):
        err, rc = err + rc, 2
    return rc, out, err


def never_load(*args, **kwargs):
    raise AssertionError("the model was loaded")


def setup_files(tmp: Path) -> dict[str, str]:
    (tmp / "a-file").write_bytes(OLD)
    (tmp / "taken").mkdir()
    (tmp / "taken" / "scores.npz").write_bytes(OLD)
    (tmp / "odd" / "heatmaps.png").mkdir(parents=True)
    (tmp / "folder").mkdir()
    return {"tmp": str(tmp)}


CLI_REFUSALS = {
    "--out ''": (["score", "--out", ""], r"^headlab: --out '' is an empty path: name a folder, e.g. --out out$"),
    "--out blank": (["score", "--out", "  "], r"--out '  ' is an empty path"),
    "--out a file": (["score", "--out", "{tmp}/a-file"], r"--out .*/a-file is a file: name a folder"),
    "--out under a file": (["score", "--out", "{tmp}/a-file/run"], r"is under .*/a-file, which is a file"),
    "--out holds outputs": (["score", "--out", "{tmp}/taken"], r"already holds scores.npz: pass --overwrite"),
    "--out holds a folder named heatmaps.png": (
        ["score", "--out", "{tmp}/odd", "--overwrite"],
        r"holds heatmaps.png, which is not a file \(a folder\?\): move it away",
    ),
    "--out read-only": (["score", "--out", "/sys/headlab-run"], r"cannot write to --out /sys/headlab-run \(/sys: "),
    "--top 0": (["score", "--top", "0"], r"--top must be a positive number of heads, got 0$"),
    "--top abc": (["score", "--top", "abc"], r"argument --top: invalid int value: 'abc' \(see headlab score -h\)"),
    "--items -1": (["score", "--items", "-1"], r"--items must be a positive number of items per task, got -1"),
    "--steps 0": (["score", "--steps", "0"], r"attribution option steps=0"),
    "--steps ''": (["score", "--steps", ""], r"attribution option steps='': give the number of integrated-gradient"),
    "--k 0": (["score", "--method", "verified", "--k", "0"], r"verified option k=0: give a whole number ≥ 1"),
    "--candidates 0": (["score", "--method", "verified", "--candidates", "0"], r"verified option candidates=0"),
    "--cogqa missing": (["eval", "--cogqa", "{tmp}/nope.json"], r"CogQA file not found: .*nope.json"),
    "--cogqa a folder": (["score", "--cogqa", "{tmp}/folder"], r"folder is a folder: pass the path to cogqa_train"),
    "--cogqa ''": (["score", "--cogqa", ""], r"--cogqa '' is empty: give the path to cogqa_train.json"),
    "--tasks ,": (["score", "--tasks", ","], r"--tasks ',' names no task; choose from"),
    "--model ''": (["score", "--model", ""], r"--model '' is empty: name the embedded model"),
    "--device meta": (["score", "--device", "meta"], r"^headlab: device='meta' "),
    "--device ''": (["eval", "--device", ""], r"device='' is not a device"),
    "--dtype int8": (["demo", "--dtype", "int8"], r"^headlab: dtype='int8'"),
}


@pytest.mark.parametrize("case", CLI_REFUSALS, ids=list(CLI_REFUSALS))
def test_the_cli_refuses_in_one_line_before_the_model_loads(case, tmp_path, monkeypatch, capsys):
    argv, pattern = CLI_REFUSALS[case]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    names = setup_files(tmp_path)
    before = listing(tmp_path)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(models, "load_model", never_load)
    rc, out, err = run_cli([a.format(**names) for a in argv], capsys)
    assert rc == 2 and out == "", (rc, out)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("headlab: ") and re.search(pattern, lines[0]), err
    assert listing(tmp_path) == before  # nothing written, not even an empty --out folder


def test_a_run_that_fails_leaves_no_out_folder(tmp_path, monkeypatch, capsys):
    """--out was created before the model loaded: a refused model left an empty folder behind."""
    rc, _, err = run_cli(["eval", "--model", "gpt-17", "--tasks", "Retrieval"], capsys)
    assert rc == 2 and "unknown model alias 'gpt-17'" in err
    rc, _, err = run_cli(["score", "--model", "gpt-17", "--out", str(tmp_path / "new" / "run")], capsys)
    assert rc == 2 and "unknown model alias 'gpt-17'" in err and listing(tmp_path) == {}


def test_cli_says_in_one_line_that_the_disk_is_full(tiny_model, tmp_path, monkeypatch, capsys):
    """A write refused after the scoring (full disk) is one line naming the file, not a traceback."""

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models, "load_model", lambda *a, **k: tiny_model)
    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "out"
    rc, _, err = run_cli(["score", "--cogqa", cogqa_file(tmp_path), "--quiet", "--out", str(out)], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert f"cannot write {out / 'scores.npz'} (No space left on device)" in lines[0] and "is full" in lines[0]
    assert not out.exists() or listing(out) == {}


def test_cli_out_expands_tilde_and_honours_overwrite(tiny_model, tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(models, "load_model", lambda *a, **k: tiny_model)
    argv = ["score", "--cogqa", cogqa_file(tmp_path), "--quiet", "--out", "~/run"]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    run = home / "run"
    assert sorted(p.name for p in run.iterdir()) == sorted(cli.OUTPUTS) and listing(cwd) == {}
    for name in cli.OUTPUTS:
        (run / name).write_bytes(OLD)
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2 and "already holds scores.npz, top_heads.txt, heatmaps.png: pass --overwrite" in err
    assert all((run / name).read_bytes() == OLD for name in cli.OUTPUTS)
    rc, out, err = run_cli([*argv, "--overwrite"], capsys)
    assert rc == 0, err
    assert all((run / name).read_bytes() != OLD for name in cli.OUTPUTS)
    assert HeadScores.load(run / "scores.npz").tasks == ["Retrieval", "Inference"]
    assert sorted(p.name for p in run.iterdir()) == sorted(cli.OUTPUTS)  # no temporary file left


@pytest.mark.parametrize(
    "extra, says",
    [
        ([], "attribution/mean scores, metric logprob, 2 tasks in"),
        (["--method", "verified", "--k", "2"], "verified/mean (k=2) scores, metric logprob, 2 tasks in"),
        (["--method", "ablation"], "ablation/mean scores, metric logprob, 2 tasks in"),
        (["--method", "probe"], "probe scores, 2 tasks in"),
    ],
    ids=["attribution", "verified", "ablation", "probe: no ablation, no metric"],
)
def test_cli_summary_says_what_ran_after_the_fallbacks(tiny_model, tmp_path, monkeypatch, capsys, extra, says):
    """Tasks without counterfactuals fall back to mean ablation and logprob: the summary says so, not
    "resample … logit_diff" (the flags' defaults)."""
    monkeypatch.setattr(models, "load_model", lambda *a, **k: tiny_model)
    argv = ["score", "--cogqa", cogqa_file(tmp_path), "--quiet", "--out", str(tmp_path / "out"), *extra]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    line = next(line for line in out.splitlines() if " scores" in line)
    assert line.startswith(says), line
    assert "resample" not in line and "logit_diff" not in line and "None" not in line


def test_summary_of_mixed_fallbacks_counts_each(tiny_model, toy_task):
    records = [{"prompt": item.prompt, "answer": item.answer} for item in toy_task.items]
    plain, plain2 = Task.from_records("Plain", records), Task.from_records("Plain2", records[:2])
    with pytest.warns(UserWarning, match="Plain: no counterfactuals"):
        s = score(tiny_model, [toy_task, plain, plain2], cache=False, progress=False)
    assert cli.summary(s, {"steps": 2}) == (
        "attribution/resample (1 task), mean (2 tasks: counterfactuals missing) (steps=2) scores, "
        "metric logit_diff (1 task), logprob (2 tasks: counterfactuals missing)"
    )
    assert cli.summary(s.select(["Plain", "Plain2"]), {}) == "attribution/mean scores, metric logprob"


# --- saved scores' metadata ----------------------------------------------------------------------------------


def rewrite_meta(path: Path, change) -> None:
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    meta = change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def without(key):
    return lambda m: {k: v for k, v in m.items() if k != key}


def model_with(**fields):
    return lambda m: {**m, "model": {**m["model"], **fields}}


META_CASES = {
    "schema a string": (lambda m: {**m, "schema": "3"}, "'schema' is '3' (str), not a whole number"),
    "schema a bool": (lambda m: {**m, "schema": True}, "'schema' is True (bool)"),
    "params a list": (lambda m: {**m, "params": []}, "'params' is a list, not a dict"),
    "model a list": (lambda m: {**m, "model": []}, "'model' is a list, not a dict"),
    "model with an unknown field": (model_with(colour=1), "'model' has unknown key(s) ['colour']"),
    "model lacks n_heads": (lambda m: {**m, "model": without("n_heads")(m["model"])}, "'model' lacks ['n_heads']"),
    "model n_layers a string": (model_with(n_layers="3"), "'model.n_layers' is '3' (str), not int"),
    "model n_heads a bool": (model_with(n_heads=True), "'model.n_heads' is True (bool)"),
    "tasks missing": (without("tasks"), "'tasks' is missing"),
    "method missing": (without("method"), "'method' is missing"),
    "tasks a string": (lambda m: {**m, "tasks": "Toy"}, "'tasks' is a str, not a list"),
    "tasks not strings": (lambda m: {**m, "tasks": [1]}, "'tasks' is [1], not a list of strings"),
    "notes not strings": (lambda m: {**m, "notes": [None]}, "'notes' is [None], not a list of strings"),
    "metadata a list": (lambda m: [m], "its metadata is a list, not a dict"),
    "tasks too many for the values": (lambda m: {**m, "tasks": ["Toy", "Two"]}, "holds inconsistent scores: "),
    "schema newer": (lambda m: {**m, "schema": 99}, "newer than this headlab's"),
}


@pytest.mark.parametrize("case", META_CASES, ids=list(META_CASES))
def test_load_names_the_file_and_the_field_of_bad_metadata(scores, tmp_path, case):
    change, needle = META_CASES[case]
    path = scores.save(tmp_path / "s.npz")
    rewrite_meta(path, change)
    with pytest.raises(ValueError) as info:
        HeadScores.load(path)
    one_line(info.value, str(path), needle)


PARAMS = {
    "numpy int": ({"k": np.int64(3)}, {"k": 3}),
    "numpy float32": ({"x": np.float32(0.5)}, {"x": 0.5}),
    "numpy bool in a list": ({"flags": [np.bool_(True), False]}, {"flags": [True, False]}),
    "numpy array": ({"steps": np.array([1, 3])}, {"steps": [1, 3]}),
    "nested dict of numpy": ({"per": {"Toy": {"n": np.int32(2)}}}, {"per": {"Toy": {"n": 2}}}),
    "tuple": ({"steps": (1, 2)}, {"steps": [1, 2]}),
    "nan": ({"x": float("nan")}, {"x": float("nan")}),
}


@pytest.mark.parametrize("case", PARAMS, ids=list(PARAMS))
def test_save_turns_numpy_params_into_plain_json_and_round_trips(scores, tmp_path, case):
    given, plain = PARAMS[case]
    s = HeadScores(**{**vars(scores), "params": {**scores.params, **given}})
    back = HeadScores.load(s.save(tmp_path / "s"))
    assert json.dumps(back.params, sort_keys=True) == json.dumps({**scores.params, **plain}, sort_keys=True)
    for name in ("values", "per_example", "n_examples", "baseline"):
        a, b = getattr(s, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.model == s.model and back.tasks == s.tasks and back.method == s.method
    assert back.save(tmp_path / "s") == tmp_path / "s.npz"  # the same bytes again: exact round trip


BAD_PARAMS = {
    "an object": ({"model": object()}, r"params\['model'\] is object <object object"),
    "a set": ({"tasks": {"a"}}, r"params\['tasks'\] is set \{'a'\}, which a saved file cannot hold"),
    "an int key": ({"per": {1: "a"}}, r"params\['per'\] has the key 1 \(int\): .* string keys only"),
    "a nested path": ({"per": {"Toy": [1, Path("x")]}}, r"params\['per'\]\['Toy'\]\[1\] is PosixPath"),
}


@pytest.mark.parametrize("case", BAD_PARAMS, ids=list(BAD_PARAMS))
def test_save_refuses_params_json_cannot_hold(scores, tmp_path, case):
    given, pattern = BAD_PARAMS[case]
    s = HeadScores(**{**vars(scores), "params": {**scores.params, **given}})
    with pytest.raises(TypeError) as info:
        s.save(tmp_path / "s")
    assert re.search(pattern, one_line(info.value)), str(info.value)
    assert listing(tmp_path) == {}


def test_model_info_fields_are_the_ones_load_checks():
    """check_meta's type table covers ModelInfo's annotations: a new field of a new type is checked too."""
    from dataclasses import fields

    assert {f.type for f in fields(ModelInfo)} <= {"int", "str", "str | None"}
