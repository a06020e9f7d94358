"""The files commands write: kftools.journal.outputs (in the journal core, which ``recover`` needs), importable
here as before."""

from .journal.outputs import (
    STDOUT,
    check_journal_output,
    check_output,
    create_temporary,
    create_temporary_folder,
    journal_files,
    publish_mode,
    remove_journal,
    remove_stale_temporaries,
    umask,
)

__all__ = [
    "STDOUT", "check_journal_output", "check_output", "create_temporary", "create_temporary_folder", "journal_files",
    "publish_mode", "remove_journal", "remove_stale_temporaries", "umask",
]
