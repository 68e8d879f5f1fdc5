"""One path helper for every writer: a file is written only where and as it was asked for.

Every file headlab writes on request — ``HeadScores.save``, ``plot.save``, ``Explorer.save_html`` and the CLI's
``--out`` files — goes through ``output_path`` (before any work) and ``write_file`` (the write), so one set of
rules holds for all of them:

- the path is a str or path-like, not blank, without a NUL byte; ``~`` is the home folder;
- ``overwrite`` is exactly True or False: ``"no"`` is a true value, so it is refused, never taken for yes;
- the name ends with a suffix the writer writes (or gets one appended: ``run.v1`` → ``run.v1.npz``);
- a folder (or anything but a file) at the path, or a file where a parent folder belongs, is named in one line
  before anything is written; missing parent folders are created;
- an existing file is kept unless ``overwrite=True``, even one that appears while the data is being made (the
  new file is hard-linked into place, which fails where a file exists; where a filesystem has no hard links
  it is checked, then renamed);
- the write is atomic: a temporary file beside the target, fsynced, renamed (or linked) into place — readers
  never see half a file — and it gets the permissions ``open()`` would give (0o666 less the umask, or those of
  the file it replaces), not the temporary file's 0o600;
- a refused write (read-only folder or filesystem, no permission, full disk, too long a name) is one line
  naming the target and its folder, never the temporary file, as the same ``OSError`` subclass, and leaves
  nothing behind.

Each message names the argument, the value and the fix. The disk cache writes through ``atomic_write_bytes``
too (``cache.write_or_warn``: a refused cache write is one warning, the result is still returned), and the
embedded model's converted checkpoint (``models.py``) is a folder written beside its target and renamed into
place, the same idea for a folder. A temporary file's name holds its writer's process id, so what a killed
writer left behind is removed by the next write of the same file.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import InputError, InputTypeError, IsAFolderError, NotAFolderError, OverwriteError

__all__ = ["alive", "atomic_write_bytes", "check_overwrite", "output_path", "umask", "write_file"]

NAME_MAX = 255  # bytes in a file name on Linux, macOS and Windows filesystems
LONG_NAME = 200  # a longer name gets a hashed temporary name, which would otherwise pass NAME_MAX


def check_overwrite(overwrite, what: str) -> bool:
    """``overwrite`` as a bool; anything else (``"no"``, 0 or 1, None) is one TypeError naming ``what``."""
    if not isinstance(overwrite, bool):
        raise InputTypeError(
            f"{what}: overwrite must be True or False, got {overwrite!r} ({type(overwrite).__name__}): "
            "pass overwrite=True to replace an existing file"
        )
    return overwrite


def output_path(
    path,
    *,
    what: str,
    suffixes: tuple[str, ...],
    overwrite,
    append_suffix: str | None = None,
) -> Path:
    """The path a writer (``what``, e.g. ``"save_html()"``) may write, checked before any work: one line
    naming the argument, the value and the fix for a bad path, a folder in the way, a file where a folder
    belongs, or an existing file without ``overwrite``. ``suffixes``: the names it writes (lower case, any
    case accepted); ``append_suffix``: appended to any other name instead of refusing it."""
    overwrite = check_overwrite(overwrite, what)
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise InputError(
            f"{what} needs a file path, got {path!r} ({type(path).__name__}): pass a str or Path ending in "
            f"{' / '.join(suffixes)}"
        )
    if not path.strip():
        raise InputError(f"{what} got the empty path {path!r}: name a file ending in {' / '.join(suffixes)}")
    if "\0" in path:
        raise InputError(f"{what} got a path with a NUL character, {path!r}: no file can have that name")
    target = Path(path).expanduser()
    example = append_suffix or suffixes[0]
    check_names(target, what)
    check_place(target, what, example)
    if append_suffix is not None and target.suffix.lower() != append_suffix:
        target = target.with_name(target.name + append_suffix)
    elif target.suffix.lower() not in suffixes:
        raise InputError(
            f"{what} cannot save as {target.suffix or 'a file without suffix'!r}: give a path ending in "
            f"{' / '.join(suffixes)}, got {path!r}"
        )
    check_names(target, what)
    check_place(target, what, example)
    if not overwrite and os.path.lexists(target):
        raise OverwriteError(exists_message(target, what))
    return target


def check_names(target: Path, what: str) -> None:
    """One line where a name in ``target`` is longer than a filesystem allows (``NAME_MAX`` bytes)."""
    for part in target.parts:
        if len(part.encode()) > NAME_MAX:
            raise InputError(
                f"{what}: the name {part[:24]!r}… in the path is {len(part.encode())} bytes long, more than a "
                f"filesystem allows ({NAME_MAX}): choose a shorter name"
            )


def check_place(target: Path, what: str, example: str = "") -> None:
    """One line where ``target`` cannot be a file: a folder or something other than a file is there, or a file
    stands where one of its parent folders belongs (``example``: the suffix of the file name suggested)."""
    if target.is_dir():
        raise IsAFolderError(f"{what}: {target} is a folder: name a file in it, e.g. {target / ('name' + example)}")
    if target.exists() and not target.is_file():
        raise OverwriteError(f"{what}: {target} is not a regular file (a device, pipe or socket): name a file")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotAFolderError(
                    f"{what}: {parent} is a file, so {target} cannot be written under it: choose another folder"
                )
            return


def exists_message(target: Path, what: str) -> str:
    return f"{what}: {target} exists: pass overwrite=True to replace it, or another name"


def write_file(path: Path, data: bytes, *, overwrite: bool, what: str) -> Path:
    """Write ``data`` to ``path`` (from ``output_path``) atomically, creating its folders; an existing file is
    replaced only with ``overwrite=True``. A refused write is one line naming ``path`` and its folder, as the
    OSError subclass the system raised; nothing is left behind."""
    overwrite = check_overwrite(overwrite, what)
    check_place(path, what)
    try:
        atomic_write_bytes(path, data, replace=overwrite)
    except FileExistsError:
        raise OverwriteError(exists_message(path, what)) from None
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = f"the folder {path.parent} is not writable: choose another folder"
        elif err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"the disk of {path.parent} is full: free some space, or choose another folder"
        else:
            fix = f"in {path.parent}: choose another path"
        refused = type(err)(f"{what}: cannot write {path} ({reason}); {fix}")
        refused.errno = err.errno
        raise refused from None
    return path


def atomic_write_bytes(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename it into place (``replace``) or hard-link
    it, which fails with FileExistsError where a file exists: readers never see half a file. The file gets
    ``open()``'s permissions. The temporary name holds the writer's process id, so what a killed writer left
    behind is removed here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{temp_stem(path)}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), file_mode(path))
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            publish_new(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish_new(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` only where no file is: a hard link fails where one exists, even one made a moment
    ago. A filesystem without hard links gets a check, then a rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise OverwriteError(errno.EEXIST, os.strerror(errno.EEXIST)) from None
        os.replace(tmp, path)


def file_mode(path: Path) -> int:
    """The permissions ``open(path, "w")`` would leave: those of the file there, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~umask()


def umask() -> int:
    """The process's umask, read from /proc where it can be (setting it to read it races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_stem(path: Path) -> str:
    """The start of ``path``'s temporary names: its name, or for a long name a hash of it (a temporary name
    is 21 bytes longer than its stem and must stay within ``NAME_MAX``)."""
    if len(path.name.encode()) <= LONG_NAME:
        return path.name
    return "." + hashlib.blake2b(path.name.encode(), digest_size=12).hexdigest()


def remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` whose writing process no longer runs (killed mid-write)."""
    stem = temp_stem(path)
    for tmp in path.parent.glob(f"{glob.escape(stem)}.*.tmp"):
        pid = tmp.name[len(stem) + 1 :].split(".", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
