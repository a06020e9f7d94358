"""The files commands write: checks before writing, temporary names, removal.

Shared by ``export``, ``import``, ``replay``, ``recover`` and ``simulate`` so every
command refuses the same bad outputs with the same words, before writing anything.

Policy (README, "Outputs"):

- an output must be a regular file (or, for a folder output, a directory) or not
  exist yet; a FIFO, device or socket is never replaced, even with ``--force``;
- a symbolic link is never written through nor replaced: give the real path;
- no output may be, or later become, a page of an input journal
  (``feed.dat.1`` is page 1 of ``feed.dat``);
- no output may be named as a later page of an existing journal (``in.dat.1``
  beside ``in.dat`` would make ``in.dat`` read as damaged), and a new journal
  never adopts pages left beside its name (:func:`check_journal_output`);
- temporaries are created with ``O_EXCL|O_NOFOLLOW`` (``mkstemp``) beside the
  output, under a name that says whose they are (``.<name>.kftmp-<pid>-<random>``),
  so a later run can remove the leftovers of a killed one and nothing else;
  they are private (0600, a folder 0700) while written and get the mode a plain
  ``open`` or ``mkdir`` would give (0666, a folder 0777, less the umask) just
  before they are renamed into place (:func:`publish_mode`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

from ..errors import OutputError, UsageError
from .format import (
    MAGIC,
    PAGE_HEADER,
    SUMMARIES_SUFFIX,
    TMP_NAME,
    TMP_TAG,
    TYPES_SUFFIX,
    checksums_path,
    page_path,
    readers_path,
)
from .pages import journal_pages, stale_pages

#: ``-`` as an output means standard output, where the format can stream.
STDOUT = "-"



def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _page_of(out: str, journal: str) -> int | None:
    """The page index ``out`` is (or would be) of ``journal``, or None."""
    real_out = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(out))), os.path.basename(out))
    real_j = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(journal))), os.path.basename(journal))
    if real_out == real_j:
        return 0
    if real_out.startswith(real_j + "."):
        tail = real_out[len(real_j) + 1:]
        if tail.isdigit() and tail[0] != "0":
            return int(tail)
    return None


def _journal_paged_by(out: str) -> tuple[str, int] | None:
    """(journal, n) when ``out`` is named as page ``n`` of an existing journal beside it (``in.dat.1``)."""
    stem, dot, n = os.path.basename(out).rpartition(".")
    if not (dot and stem and n.isdigit() and n[0] != "0"):
        return None
    first = os.path.join(os.path.dirname(out), stem)
    try:
        # O_NONBLOCK: a FIFO there must not block the check (it is no journal)
        fd = os.open(first, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.pread(fd, PAGE_HEADER.size, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) < PAGE_HEADER.size or PAGE_HEADER.unpack(head)["magic"] != MAGIC:
        return None
    return first, int(n)


def check_output(out: str, *, force: bool = False, folder: bool = False, inputs=(), what: str = "output") -> None:
    """Raise if ``out`` cannot be written: a folder where a file is meant (or the reverse), an existing
    output without ``force``, a symlink, FIFO or device, a missing or read-only parent, or a name that is
    or could become a page of an input journal (or whose own pages would land on an input), or of any
    journal beside it."""
    for src in map(os.fspath, inputs):
        pages = journal_pages(src) or [src]
        hit = _page_of(out, src)
        if hit is None:
            hit_page = next((i for i, p in enumerate(pages) if _same_file(out, p)), None)
            hit = hit_page
        if hit is None and _page_of(src, out) is not None:
            raise UsageError(f"{out}: a page of the {what} would overwrite {src} (choose another output)")
        if hit is not None:
            which = src if hit == 0 else f"(or become) page {hit} of {src}"
            raise UsageError(f"{out}: the {what} would overwrite {which} (choose another output)")
    paged = _journal_paged_by(out)
    if paged is not None:
        raise UsageError(f"{out}: is named as page {paged[1]} of the journal {paged[0]}, which would then read as "
                         "damaged (choose another output)")
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{out}: cannot check the output: {e.strerror}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise OutputError(f"{out}: is a symbolic link; kftools never writes through links (give the real path)")
        if folder:
            if not stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{out}: exists and is not a folder")
            if os.listdir(out) and not force:
                raise OutputError(f"{out}: folder is not empty (use --force to replace it)")
        else:
            if stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{out}: is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise OutputError(f"{out}: is {_kind(st.st_mode)}, not a regular file; refusing to write there")
            if not force:
                raise OutputError(f"{out}: already exists (use --force to replace it)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")
    if not folder:
        # later pages of a journal output: the same rules (a link or FIFO at feed.dat.1 is not replaced)
        for i in range(1, 1 << 20):
            p = page_path(out, i)
            try:
                pst = os.lstat(p)
            except FileNotFoundError:
                break
            except OSError:
                break
            if not stat.S_ISREG(pst.st_mode):
                raise OutputError(f"{p}: is {'a symbolic link' if stat.S_ISLNK(pst.st_mode) else _kind(pst.st_mode)}"
                                  ", not a regular file; refusing to write there")


def check_journal_output(out: str, *, force: bool = False, inputs=(), what: str = "output") -> None:
    """:func:`check_output` for a new journal, which also never adopts later pages left beside its name (with
    ``force`` and an existing journal there, they are that journal's: :func:`remove_journal` removes them)."""
    check_output(out, force=force, inputs=inputs, what=what)
    if force and os.path.lexists(out):
        return
    stale = stale_pages(out)
    if stale:
        raise OutputError(f"{out}: {stale[0]} is there, a page of another journal (left from an earlier run?); a new "
                          "journal never adopts pages it did not write: remove it or choose another name")


def umask() -> int:
    """This process's umask (read without changing it, where /proc says it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # (no /proc: set and restore, as every tool must)
    os.umask(mask)
    return mask


def _temporary_prefix(path: str) -> tuple[str, str]:
    d = os.path.dirname(os.path.abspath(path))
    return d, f".{os.path.basename(path)}{TMP_TAG}{os.getpid()}-"


def create_temporary(path: str) -> tuple[int, str]:
    """Create a new temporary file beside ``path`` (``O_EXCL|O_NOFOLLOW``, mode 0600); returns (fd, name)."""
    d, prefix = _temporary_prefix(path)
    remove_stale_temporaries(path)
    try:
        return tempfile.mkstemp(prefix=prefix, suffix="", dir=d)
    except OSError as e:
        raise OutputError(f"{path}: cannot create a temporary file in {d}: {e.strerror}") from None


def create_temporary_folder(path: str) -> str:
    """Create a new private folder beside ``path`` to build an output in; returns its name."""
    d, prefix = _temporary_prefix(path)
    remove_stale_temporaries(path)
    try:
        return tempfile.mkdtemp(prefix=prefix, suffix="", dir=d)
    except OSError as e:
        raise OutputError(f"{path}: cannot create a temporary folder in {d}: {e.strerror}") from None


def publish_mode(temporary: str, *, folder: bool = False) -> None:
    """Give a finished temporary (private while written) the mode ``open`` or ``mkdir`` would have given the
    output: 0666 (a folder 0777) less the umask. Call it just before renaming the temporary into place."""
    os.chmod(temporary, (0o777 if folder else 0o666) & ~umask(), follow_symlinks=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove the temporaries a killed kftools left beside ``path``; returns what was removed.

    Only names kftools makes for this output (``.<name>.kftmp-<pid>-<random>``),
    owned by this user, not links, whose process is gone, are removed.
    """
    d = os.path.dirname(os.path.abspath(path))
    base = f".{os.path.basename(path)}{TMP_TAG}"
    removed: list[str] = []
    try:
        names = os.listdir(d)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(base):
            continue
        m = TMP_NAME.match(name)
        if m is None or name[len(base):].split("-", 1)[0] != m.group(1):
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        full = os.path.join(d, name)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if st.st_uid != os.getuid():
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(full)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(full)
            else:
                continue
        except OSError:
            continue
        removed.append(full)
    return removed


def journal_files(path: str) -> list[str]:
    """Every file named as part of the journal at ``path`` by the naming rules, that exists: its first page,
    its later pages and their archives (past a gap too), ``<path>.checksums``, ``.summaries``, ``.readers`` and
    ``<path>.types``."""
    names = [path, *stale_pages(path), checksums_path(path), path + SUMMARIES_SUFFIX, readers_path(path),
             path + TYPES_SUFFIX]
    return [f for f in names if os.path.lexists(f)]


def remove_journal(path: str, *, keep: int = 0) -> None:
    """Delete every file of the journal at ``path`` (:func:`journal_files`; never through a link), or with
    ``keep`` all but its first ``keep`` plain page files (which a caller is about to replace).

    Every file is checked before any is deleted: one that is not a regular file stops it all."""
    kept = {page_path(path, i) for i in range(keep)}
    files = [f for f in journal_files(path) if f not in kept]
    for f in files:
        if not stat.S_ISREG(os.lstat(f).st_mode):
            raise OutputError(f"{f}: is not a regular file; refusing to delete it")
    for f in files:
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
