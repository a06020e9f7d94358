"""``python -m kftools.export``: print the Markdown table of export columns (docs/export.md carries it)."""

from .columns import schema_table

print(schema_table(), end="")
