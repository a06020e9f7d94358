"""The shape of the code: no import cycles, the writer does not need the reader side, readers go through the walk."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

from kftest import ROOT

PKG = pathlib.Path(ROOT) / "kftools"


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: pathlib.Path, name: str) -> set[str]:
    """kftools modules imported when ``path`` is imported (module level only, not inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("kftools")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("kftools"):
                out.add(mod)
                # `from .pkg import module` imports the submodule too
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_no_import_cycles():
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {m: {d for d in _top_level_imports(p, m) if d in modules and d != m} for m, p in modules.items()}
    # a package importing its own submodules, and a module its parent packages, is how packages work
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".") and not m.startswith(d + ".")}
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(d):], d]))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_writer_does_not_import_the_reader_side():
    code = ("import sys, kftools.journal.writer as w; "
            "print(sorted(m for m in sys.modules if m.startswith('kftools.journal.')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = res.stdout
    # kftools.journal's __init__ re-exports the reader; the writer module itself must not need recovery
    tree = ast.parse((PKG / "journal" / "writer.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "recovery" not in imported and "reader" not in imported, imported
    assert "kftools.journal.walk" in loaded


def test_only_the_page_set_and_the_walk_touch_pages():
    """Nothing outside the journal core lists page files, opens pages, scans frames or releases mappings by hand."""
    allowed = {
        # the core: one page file, a journal's pages, the one walk, the scanner and frame stream, the formats
        "journal/page.py", "journal/pages.py", "journal/walk.py", "journal/scan.py", "journal/framestream.py",
        "journal/format.py", "journal/yijinjing.py",
        # what writes or rewrites page files: the writer, recover, archive/checksums (they work on the files
        # themselves, not through the archive fallback), outputs (refuses and removes what could be a page)
        "journal/writer.py", "journal/recovery.py", "journal/archive.py", "journal/checksums.py", "outputs.py",
        "journal/kungfu_out.py",  # writes Kungfu page files (replay --format kungfu-*)
        "journal/summaries.py",  # walks a sealed page once to summarise it, checks its last frame against the record
    }
    needles = ("page_path(", "open_page(", "journal_pages(", "scan_page(", "import scan", ".madvise(",
               "FRAME_HEADER.struct.unpack", "FRAME_HEADER.unpack")
    found = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG).as_posix()
        if rel in allowed or rel.startswith("bench/"):  # benchmarks time bare loops as their baselines
            continue
        text = p.read_text()
        found += [f"{rel}: {n}" for n in needles if n in text and f"def {n}" not in text]
    assert not found, found


def test_no_hand_written_byte_order():
    """Struct formats and dtypes come from the layout declarations: no hand-written byte order outside them."""
    found = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG).as_posix()
        if rel in ("journal/layout.py",):
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if any(f'{q}<{c}' in line for q in "\"'" for c in "iIqQhHbBdfu"):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, found
