"""Recordings in object storage: a dataset ``kftools export`` wrote to ``s3://`` (or ``gs://``), imported to a
worker's local disk once and cached there.

The sweep reads each dataset's manifest when it starts: its digest (with the dataset's URI) is the dataset's
``key``, recorded in the sweep's manifest, so a dataset that grew since is a different sweep, never a mix. A
worker that runs a backtest on the dataset looks for ``<cache>/<key>/`` (``$KFTOOLS_CACHE``, default
``~/.cache/kftools/datasets``); if it is not there, it imports the dataset (``kftools import``: every journal it
holds, frames byte-identical) into a private folder beside it and renames it into place. The import happens
under a lock on ``<key>.lock`` (``flock``): two workers on one host that need the same dataset at once import it
once, the second waits for the first and reuses its copy. A worker killed mid-import leaves only its private
folder, which the next import of that key removes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile

from ..errors import NotAJournal, OutputError, UsageError

#: where workers keep imported datasets (default ~/.cache/kftools/datasets)
CACHE_ENV = "KFTOOLS_CACHE"


def is_dataset(recording: str) -> bool:
    """Whether ``recording`` names object storage (a dataset ``kftools export`` wrote), not a local journal."""
    from ..export.dataset import is_remote

    return is_remote(recording)


def dataset_key(uri: str) -> str:
    """The key of the dataset at ``uri`` as it is now: a digest of its URI and its manifest (which lists every
    file and how far each journal was exported, so it changes whenever the dataset does)."""
    from ..export.dataset import MANIFEST, _Target

    manifest = _Target(uri).read_manifest()
    if manifest is None:
        raise NotAJournal(f"{uri}: no kftools dataset here (no {MANIFEST}; make one with kftools export)")
    if not manifest.get("journals"):
        raise NotAJournal(f"{uri}: the dataset holds no journal")
    doc = json.dumps([uri.rstrip("/"), manifest], sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:32]


def cache_root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "kftools", "datasets")


def local_recordings(uri: str, key: str) -> list[str]:
    """The local copy of the dataset ``uri`` whose key was ``key`` when the sweep began: its journals (a backtest
    replays several as their merged timeline), imported now if this host has none yet (see the module doc).
    Raises when the dataset changed since (its key differs): a sweep never mixes two states of a dataset."""
    root = cache_root()
    final = os.path.join(root, key)
    if not os.path.isdir(final):
        try:
            os.makedirs(root, exist_ok=True)
            fd = os.open(os.path.join(root, f"{key}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"{root}: cannot keep the imported copy of {uri} here ({e.strerror}); set "
                              f"{CACHE_ENV} to a writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another worker importing it: wait, then use its copy
            if not os.path.isdir(final):
                _import(uri, key, root, final)
        finally:
            os.close(fd)
    from ..journal.resolve import journal_paths

    return journal_paths([final])


def _import(uri: str, key: str, root: str, final: str) -> None:
    from ..export.dataset import _Target
    from ..export.importer import import_parquet

    for name in os.listdir(root):  # what a worker killed mid-import left (we hold the key's lock)
        if name.startswith(f".{key}."):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    if dataset_key(uri) != key:
        raise UsageError(f"{uri}: the dataset changed since the sweep began; run the sweep again (a new folder, or "
                         "--force) to sweep it as it is now")
    manifest = _Target(uri).read_manifest() or {}
    tmp = tempfile.mkdtemp(prefix=f".{key}.", dir=root)
    try:
        for name in sorted(manifest.get("journals", {})):
            import_parquet(uri, os.path.join(tmp, _file_name(name)), journal=name)
        if dataset_key(uri) != key:  # exported to while it was read: the copy may mix two states
            raise UsageError(f"{uri}: the dataset changed while it was imported; run the sweep again")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_name(journal: str) -> str:
    """A dataset's journal name as a file name here (a Kungfu journal's name is its location, with slashes)."""
    return journal.strip("/").replace("/", "_") or "journal"
