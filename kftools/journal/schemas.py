"""The registry a command reads with: the built-in types, ``--schema`` files, ``$KFTOOLS_SCHEMA``, and Kungfu's
types by the name ``kungfu``.

Above both :mod:`.registry` (types) and :mod:`.yijinjing` (Kungfu's, declared with a registry), so neither
imports the other's dependents.
"""

from __future__ import annotations

import os

from .format import BUILTIN_LAYOUTS
from .registry import DEFAULT_REGISTRY, TypeRegistry
from .yijinjing import REGISTRY as KUNGFU


def load_registry(schema_paths=()) -> TypeRegistry:
    """The default registry plus the types of ``schema_paths`` and of ``$KFTOOLS_SCHEMA``."""
    reg = DEFAULT_REGISTRY.copy()
    env = os.environ.get("KFTOOLS_SCHEMA", "")
    reg.defaulted = not env.strip(":") and not list(schema_paths)
    for p in [*filter(None, env.split(":")), *schema_paths]:
        if os.fspath(p) == "kungfu":
            # Kungfu's longfist types instead of kftools' own (a Kungfu journal replayed into a kftools one:
            # its Order and Trade are Kungfu's), plus the user types of the other schemas
            user = [mt for mt in reg.types() if mt.id not in BUILTIN_LAYOUTS]
            reg = KUNGFU.copy()
            for mt in user:
                reg._by_id.setdefault(mt.id, mt)
            continue
        reg.load_schema(p)
    return reg
