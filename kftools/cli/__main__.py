"""``python -m kftools.cli``: the ``kftools`` command."""

from . import main

main()
