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


def _imports(path: pathlib.Path, name: str) -> set[str]:
    """kftools modules ``path`` imports anywhere: at module level, inside functions, under TYPE_CHECKING.

    An import deferred into a function is still a dependency; a circle hidden that way is a circle.
    """
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
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


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    graph = {m: {d for d in _imports(p, m) if d in MODULES and d != m} for m, p in MODULES.items()}
    # a package importing its own submodules, and a module its parent packages, is how packages work
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".") and not m.startswith(d + ".")}
    return graph


def test_no_import_cycles():
    """Counting imports inside functions and under TYPE_CHECKING: journal/archive <-> checksums <-> page <-> pages
    and registry <-> yijinjing were circles hidden that way."""
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*path[path.index(d):], d]))
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_journal_core_imports_nothing_outside_itself_but_errors():
    """kftools/journal is the core every command builds on: it may use kftools.errors, nothing else of kftools."""
    found = []
    for m, p in MODULES.items():
        if m.startswith("kftools.journal"):
            found += [f"{m} imports {d}" for d in sorted(_imports(p, m))
                      if d == "kftools" or (d in MODULES and not d.startswith("kftools.journal")
                                            and d != "kftools.errors")]
    assert not found, found


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
        # what writes or rewrites page files: the writer, recover, archive/codec/checksums (they work on the files
        # themselves, not through the archive fallback), outputs (refuses and removes what could be a page)
        "journal/writer.py", "journal/recovery.py", "journal/archive.py", "journal/codec.py", "journal/checksums.py",
        "journal/outputs.py",
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


#: the suffixes and tags that name a journal's files: format.py declares them, nothing else spells them
FILE_NAME_PARTS = (".zst", ".checksums", ".readers", ".part", ".types", ".kftmp-")


def _strings(tree: ast.AST):
    """String constants that are not docstrings (f-string parts included), with their line."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_file_names_are_declared_once_in_the_format():
    """Page names, archives, checksums, reader positions, types files and temporaries: format.py's rules, used
    everywhere else by name (``.zst`` was a literal in five places)."""
    found = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG).as_posix()
        if rel == "journal/format.py":
            continue
        for line, text in _strings(ast.parse(p.read_text())):
            hits = [part for part in FILE_NAME_PARTS if part in text]
            if rel.startswith("journal/") and text.endswith(".tmp"):
                hits.append(".tmp")
            found += [f"{rel}:{line}: {text!r}" for _ in hits[:1]]
    assert not found, found


def test_the_cpp_header_declares_the_same_file_names():
    """journal.hpp's file-name constants are format.py's FILE_NAMES, and it spells none of them elsewhere."""
    import re

    from kftools.journal.format import FILE_NAMES

    hpp = (pathlib.Path(ROOT) / "cpp" / "include" / "kftools" / "journal.hpp").read_text()
    declared = dict(re.findall(r'inline constexpr char k(\w+)Suffix\[\] = "([^"]*)";', hpp))
    assert declared == FILE_NAMES
    literals = re.findall(r'"([^"\\]*(?:\\.[^"\\]*)*)"', hpp)
    spelled = [s for s in literals if any(s.endswith(v) or s == v for v in FILE_NAMES.values())]
    assert sorted(spelled) == sorted(FILE_NAMES.values())  # each once: in its declaration
    # page n > 0 is `<first>.<n>`, in both
    assert 'return index == 0 ? first : first + "." + std::to_string(index);' in hpp


def test_only_the_exit_table_decides_exit_codes():
    """kftools/cli/exits.py decides every exit code: a command returns or raises, and the one exit it makes is
    ``exit_code(...)``'s answer (``Exit(0 if res.ok else 1)``, ``sys.exit(2)`` and ``sys.exit(130)`` were
    decided elsewhere)."""
    found = []
    cli = [PKG / "cli.py"] if (PKG / "cli.py").exists() else sorted((PKG / "cli").rglob("*.py"))
    for p in cli:
        rel = p.relative_to(PKG).as_posix()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Name) and node.id == "SystemExit":
                found.append(f"{rel}:{node.lineno}: SystemExit")
            if isinstance(node, ast.Attribute) and node.attr in ("FAILED", "BAD_INPUT", "DAMAGED", "LOCKED",
                                                                   "INTERRUPTED") and rel != "cli/exits.py":
                found.append(f"{rel}:{node.lineno}: ExitCode.{node.attr}")
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name not in ("Exit", "exit"):
                continue
            args = [*node.args, *(k.value for k in node.keywords)]
            decided = [a for a in args if not (isinstance(a, ast.Call) and isinstance(a.func, ast.Name)
                                               and a.func.id in ("exit_code", "_run"))]
            if decided:
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found


def test_the_cli_writes_no_private_attribute_of_typer_or_click():
    """The usage line's placeholders come from a command class's public ``collect_usage_pieces``, not from a
    write to a parameter's private ``_usage_display_name``."""
    cli = [PKG / "cli.py"] if (PKG / "cli.py").exists() else sorted((PKG / "cli").rglob("*.py"))
    found = [f"{p.name}:{node.lineno}: {ast.unparse(node)}" for p in cli for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr.startswith("_usage")
                                                     for t in node.targets)]
    assert not found, found
