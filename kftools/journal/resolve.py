"""Which journals a path names: the one answer every command and :func:`~kftools.journal.merge.open_many` use.

A path names
- a kftools journal: its first page (``<path>``; its later pages ``<path>.<n>``, archived or not, come with it);
- a Kungfu journal: any of its page files, or its ``journal/{mode}`` folder when that holds one journal (one dest);
- a folder: the kftools journals in it (first pages by name, see :func:`kftools_journals_in`), then every Kungfu
  journal under it (a ``KF_HOME``, a ``runtime`` folder, a ``journal/{mode}`` folder of several dests), in that order.

Every journal gets a label, distinct among those resolved together: a kftools journal its path (as given, or
the folder joined with its name), a Kungfu journal its ``category/group/name/mode/dest``, with as many of the
folders above it as it takes to tell two Kungfu journals apart (two ``KF_HOME`` s in one folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import KftoolsError, NotAJournal, UsageError
from . import yijinjing
from .format import KFTOOLS
from .page import NotYetWritten, check_header

#: files kftools keeps beside a journal (never journals themselves)
from .pages import SIDECAR_SUFFIXES


@dataclass(frozen=True)
class JournalRef:
    """One journal a path named.

    ``path`` is what a :class:`~kftools.journal.reader.Reader` opens (a Kungfu journal: its first page);
    ``label`` how every command shows it; ``in_folder`` whether it was found by listing a folder (there, a
    file that turns out not to be a journal is left out instead of being an error); ``kungfu`` the Kungfu
    journal, if it is one."""

    path: str
    label: str
    in_folder: bool = False
    kungfu: yijinjing.KungfuJournal | None = None


def kftools_journals_in(folder: str) -> list[str]:
    """First pages of the kftools journals in ``folder``, by name: not ``<path>.<n>`` later pages, not hidden
    files, not the files kftools keeps beside a journal, and not files that are plainly something else (notes,
    exports): a ``*.dat`` file is a journal by name (a damaged one is reported, not skipped), any other only if
    it starts with a journal's magic."""
    out = []
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        stem, _, ext = name.rpartition(".")
        if name.startswith(".") or not os.path.isfile(p) or (ext.isdigit() and stem) or name.endswith(SIDECAR_SUFFIXES):
            continue
        if yijinjing.parse_page_name(name) is not None:
            continue  # a Kungfu page (its journal is found as a Kungfu journal)
        if name.endswith(".dat") or _has_page_header(p):
            out.append(p)
    return out


def _has_page_header(path: str) -> bool:
    """Whether ``path`` starts with a first page's header kftools would read (or one being written)."""
    size = KFTOOLS.page_header.size
    try:
        with open(path, "rb") as fh:  # a regular file (checked): opening it cannot block
            head = fh.read(size)
    except OSError:
        return True  # unreadable: the command says why
    if len(head) < size:
        return False
    try:
        check_header(path, KFTOOLS.page_header.unpack(head), 0)
    except NotYetWritten:
        return True  # a journal being created
    except KftoolsError:
        return False
    return True


def _folder(path: str) -> list[tuple[str, yijinjing.KungfuJournal | None]]:
    """The journals a folder holds: its kftools journals, then the Kungfu journals under it."""
    return [(p, None) for p in kftools_journals_in(path)] + [(j.first_page, j) for j in yijinjing.find_journals(path)]


def _one_kungfu(found: list[tuple[str, yijinjing.KungfuJournal | None]]) -> bool:
    """A folder holding one Kungfu journal and nothing else names that journal, as its page files do.
    A folder of kftools journals stays a folder even while it holds one (journals may be added to it)."""
    return len(found) == 1 and found[0][1] is not None


def names_one(path: str | os.PathLike) -> bool:
    """Whether ``path`` names one journal as such: a file, or a folder holding one Kungfu journal and nothing else."""
    path = os.fspath(path)
    return not os.path.isdir(path) or _one_kungfu(_folder(path))


def resolve_journals(paths: Iterable[str | os.PathLike], *, allow_empty: bool = False) -> list[JournalRef]:
    """Every journal ``paths`` name, in order, each once, with distinct labels.

    A path that is not a folder is taken as a journal as given (opening it says what is wrong with it). A folder
    without journals is :class:`NotAJournal` unless ``allow_empty`` (a monitor's rescan); a journal named twice
    (directly or through folders) is a :class:`UsageError`, and so is naming nothing."""
    found: list[tuple[str, yijinjing.KungfuJournal | None, bool]] = []
    seen: dict[str, str] = {}
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            inside = _folder(p)
            if not inside and not allow_empty:
                raise NotAJournal(f"{p}: no journal in this folder")
            if _one_kungfu(inside):  # a Kungfu journal's folder: that journal, as if its page were named
                found.append((inside[0][0], inside[0][1], False))
                continue
            found.extend((j, kf, True) for j, kf in inside)
        else:
            kf = yijinjing.find_journals(p)[0] if yijinjing.parse_page_name(p) and os.path.isfile(p) else None
            found.append((kf.first_page if kf is not None else p, kf, False))
    for j, _kf, _ in found:
        real = os.path.realpath(j)
        if real in seen:
            raise UsageError(f"{j}: given twice (also as {seen[real]})")
        seen[real] = j
    if not found and not allow_empty:
        raise UsageError("no journal given")
    labels = _distinct([j if kf is None else kf.name for j, kf, _ in found],
                       [_above(kf) for _j, kf, _ in found])
    return [JournalRef(j, label, in_folder, kf) for (j, kf, in_folder), label in zip(found, labels, strict=True)]


def _above(kf: yijinjing.KungfuJournal | None) -> list[str]:
    """The folders above a Kungfu journal's location (``KF_HOME``'s path and ``runtime``), nearest last."""
    if kf is None:
        return []
    parts = os.path.normpath(os.path.abspath(kf.folder)).split(os.sep)
    if kf.location == kf.folder:
        return []  # not under a runtime folder: the label is its folder already
    # {runtime}/{category}/{group}/{name}/journal/{mode}, or later releases' {runtime}/journal/{c}/{g}/{n}/{mode}
    return [x for x in parts[:-5] if x]


def _distinct(labels: list[str], above: list[list[str]]) -> list[str]:
    """Labels with as many folders from ``above`` put in front as it takes for each to differ from the others."""
    out = list(labels)
    depth = [0] * len(out)
    while True:
        dup = {x for x in out if out.count(x) > 1}
        grow = [i for i, x in enumerate(out) if x in dup and depth[i] < len(above[i])]
        if not grow:
            return out
        for i in grow:
            depth[i] += 1
            out[i] = "/".join([*above[i][-depth[i]:], labels[i]])


def journal_paths(paths: Iterable[str | os.PathLike], *, allow_empty: bool = False) -> list[str]:
    """The paths a :class:`~kftools.journal.reader.Reader` opens, of every journal ``paths`` name."""
    return [r.path for r in resolve_journals(paths, allow_empty=allow_empty)]


__all__ = ["JournalRef", "journal_paths", "kftools_journals_in", "names_one", "resolve_journals"]
