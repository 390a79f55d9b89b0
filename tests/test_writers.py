"""Every table, text and figure output goes through the shared writers, checked statically.

The shared writers (:mod:`spectsynth.io`) write atomically (a temporary beside the target, renamed
onto it when complete), so a killed job never leaves a half-written file that a later run would
trust; :func:`~spectsynth.io.write_table` also refuses a results table with missing values unless
the caller says they are legitimate.  This test reads every module of the package and every
workflow script (``ast``, nothing is imported or run) and fails on each call that writes a file
around them:

* ``<table>.to_csv(<path>, ...)``: use ``spectsynth.io.write_table`` (``na_rep``, ``float_format``,
  ``allow_missing`` as needed); ``to_csv`` with no path (it returns the text) or into an in-memory
  buffer is not a file output and is fine;
* ``<figure>.savefig(...)``: use ``spectsynth.io.save_figure`` (also ``spectsynth.plots.save_figure``;
  ``dpi`` and matplotlib's keywords such as ``metadata``, ``facecolor``, ``bbox_inches``, ``format``
  pass through); saving into an in-memory buffer (``io.BytesIO``) for embedding is fine;
* ``<path>.write_text(...)`` / ``<path>.write_bytes(...)``: use ``spectsynth.io.write_text`` (or
  ``write_json``);
* ``open(<path>, "w" | "a" | "x" | "+" ...)`` and ``<path>.open(<mode>)`` for writing: use
  ``spectsynth.io.write_csv``, ``write_text`` or ``write_json``.

:data:`ALLOWED` lists the few calls that have a real reason to write directly, each with that
reason; :func:`test_every_allowed_write_still_exists` keeps the list from going stale.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

ROOTS = (REPO / "src" / "spectsynth", REPO / "workflow" / "scripts")

# (file relative to the repository, enclosing function, kind of write): why it may write directly.
ALLOWED: dict[tuple[str, str, str], str] = {
    # The writers themselves: the one place each kind of file is written.
    ("src/spectsynth/io.py", "write_table", "to_csv"): "write_table is the shared table writer",
    ("src/spectsynth/io.py", "write_text", "write_bytes"): "write_text is the shared text writer",
    ("src/spectsynth/io.py", "write_csv", "open"): "write_csv is the shared CSV writer",
    ("src/spectsynth/io.py", "save_figure", "savefig"): "save_figure is the shared figure writer",
    ("src/spectsynth/io.py", "_save_gzipped", "open"): "save_image's .nii.gz writer, into atomic_output's temporary",
    # A checkpoint is neither a table, a text nor a figure: torch.save streams it into the
    # temporary of its own atomic_output block, which it fsyncs before the rename.
    ("src/spectsynth/checkpoints.py", "save_checkpoint", "open"): "torch.save into atomic_output's temporary",
}

WRITER = {
    "to_csv": "spectsynth.io.write_table(table, path, what=..., na_rep=..., float_format=..., allow_missing=...)",
    "savefig": "spectsynth.io.save_figure(fig, path, dpi=..., **savefig_kwargs) (= spectsynth.plots.save_figure)",
    "write_text": "spectsynth.io.write_text(text, path) (or write_json(obj, path))",
    "write_bytes": "spectsynth.io.write_text(text, path) (or a writer in spectsynth.io for this kind of file)",
    "open": "spectsynth.io.write_csv / write_text / write_json (open the file for reading only)",
}

BUFFERS = {"StringIO", "BytesIO"}
WRITE_MODE_CHARS = set("wax+")


@dataclass(frozen=True)
class Write:
    """One direct file write: where, in which function, what kind, and what to use instead."""

    file: str
    line: int
    function: str
    kind: str

    def __str__(self) -> str:
        call = "open(..., <write mode>)" if self.kind == "open" else f".{self.kind}(...)"
        return f"{self.file}:{self.line} ({self.function}): {call} writes a file; use {WRITER[self.kind]}"


def _is_buffer_call(node: ast.AST) -> bool:
    """``io.StringIO(...)``, ``io.BytesIO(...)``, ``BytesIO(...)``: an in-memory buffer."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id in BUFFERS) or (isinstance(f, ast.Attribute) and f.attr in BUFFERS)


def _buffer_names(tree: ast.AST) -> set[str]:
    """Names bound to an in-memory buffer anywhere in the module (``buf = io.BytesIO()``,
    ``with io.BytesIO() as buf``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_buffer_call(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and node.value is not None and _is_buffer_call(node.value):
            if isinstance(node.target, ast.Name):
                names.add(node.target.id)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if _is_buffer_call(item.context_expr) and isinstance(item.optional_vars, ast.Name):
                    names.add(item.optional_vars.id)
    return names


def _writers_module_names(tree: ast.AST) -> set[str]:
    """Names this module binds to ``spectsynth.io`` (``from spectsynth import io``,
    ``from .. import io as sio``, ``import spectsynth.io as sio``): ``<name>.write_text(text, path)``
    is then the shared writer, not ``Path.write_text``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module == "spectsynth" or (node.level and not node.module)):
            names |= {a.asname or a.name for a in node.names if a.name == "io"}
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == "spectsynth.io" and a.asname}
    return names


def _argument(call: ast.Call, position: int, keyword: str) -> ast.AST | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _is_memory(node: ast.AST | None, buffers: set[str]) -> bool:
    return _is_buffer_call(node) or (isinstance(node, ast.Name) and node.id in buffers)


def _opens_for_writing(mode: ast.AST | None) -> bool:
    """A literal mode with w, a, x or +; a mode that is not a literal counts as writing (the
    test cannot tell), no mode is reading."""
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return bool(WRITE_MODE_CHARS & set(mode.value))
    return True


def _kind(call: ast.Call, buffers: set[str], io_names: set[str]) -> str | None:
    """The kind of direct file write ``call`` is, or None."""
    f = call.func
    if isinstance(f, ast.Name) and f.id == "open":
        return "open" if _opens_for_writing(_argument(call, 1, "mode")) else None
    if not isinstance(f, ast.Attribute):
        return None
    if f.attr == "to_csv":
        target = _argument(call, 0, "path_or_buf")
        if target is None or (isinstance(target, ast.Constant) and target.value is None):
            return None          # no path: to_csv returns the text
        return None if _is_memory(target, buffers) else "to_csv"
    if f.attr == "savefig":
        return None if _is_memory(_argument(call, 0, "fname"), buffers) else "savefig"
    if f.attr in ("write_text", "write_bytes"):
        if isinstance(f.value, ast.Name) and f.value.id in io_names:
            return None          # spectsynth.io.write_text, the shared writer
        return f.attr
    if f.attr == "open":
        receiver = f.value
        if isinstance(receiver, ast.Name) and receiver.id == "os":
            return None          # os.open takes flags: the output lock's file, not an output
        if isinstance(receiver, ast.Name) and receiver.id in ("gzip", "bz2", "lzma", "tarfile", "Image"):
            return "open" if _opens_for_writing(_argument(call, 1, "mode")) else None   # module.open(path, mode)
        return "open" if _opens_for_writing(_argument(call, 0, "mode")) else None   # Path.open(mode)
    return None


def find_writes(source: str, file: str) -> list[Write]:
    """Every direct file write in ``source`` (the text of ``file``)."""
    tree = ast.parse(source, filename=file)
    buffers, io_names = _buffer_names(tree), _writers_module_names(tree)
    found: list[Write] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, child.name if function == "<module>" else f"{function}.{child.name}")
                continue
            if isinstance(child, ast.Call):
                kind = _kind(child, buffers, io_names)
                if kind is not None:
                    found.append(Write(file, child.lineno, function, kind))
            visit(child, function)

    visit(tree, "<module>")
    return found


def python_files() -> list[Path]:
    files = sorted(p for root in ROOTS for p in root.rglob("*.py"))
    assert len(files) > 50, f"only {len(files)} Python files under {[str(r) for r in ROOTS]}"
    return files


def all_writes() -> list[Write]:
    out: list[Write] = []
    for path in python_files():
        out += find_writes(path.read_text(), path.relative_to(REPO).as_posix())
    return out


def _allowed(w: Write) -> bool:
    # the innermost function counts, so a helper nested in an allowed writer is allowed with it
    return (w.file, w.function.rsplit(".", 1)[-1], w.kind) in ALLOWED


# ------------------------------------------------------------------ the package and the scripts
def test_every_output_goes_through_the_shared_writers():
    direct = [w for w in all_writes() if not _allowed(w)]
    assert not direct, ("files written around the shared writers (spectsynth.io), which write atomically "
                        "and check tables; use the writer named, or add the call to ALLOWED in "
                        "tests/test_writers.py with the reason it must write directly:\n"
                        + "\n".join(map(str, direct)))


def test_every_allowed_write_still_exists():
    present = {(w.file, w.function.rsplit(".", 1)[-1], w.kind) for w in all_writes()}
    stale = [f"{file} ({function}): .{kind}(...), allowed because {why}"
             for (file, function, kind), why in ALLOWED.items() if (file, function, kind) not in present]
    assert not stale, "ALLOWED in tests/test_writers.py names writes that no longer exist; remove them:\n" + "\n".join(stale)


# ------------------------------------------------------------------ the checker itself
def _kinds(code: str) -> list[tuple[int, str]]:
    return [(w.line, w.kind) for w in find_writes(textwrap.dedent(code), "snippet.py")]


@pytest.mark.parametrize("code, expected", [
    ("df.to_csv(path, sep='\\t', index=False)", [(1, "to_csv")]),
    ("df.to_csv(path_or_buf=out)", [(1, "to_csv")]),
    ("fig.savefig(out, dpi=90)", [(1, "savefig")]),
    ("plt.savefig('a.png')", [(1, "savefig")]),
    ("Path('x.txt').write_text('a')", [(1, "write_text")]),
    ("tmp.write_bytes(b'a')", [(1, "write_bytes")]),
    ("open(p, 'w')", [(1, "open")]),
    ("open(p, mode='ab')", [(1, "open")]),
    ("open(p, 'r+')", [(1, "open")]),
    ("open(p, mode)", [(1, "open")]),
    ("path.open('w', newline='')", [(1, "open")]),
    ("gzip.open(p, 'wt')", [(1, "open")]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_the_checker_finds_direct_writes(code, expected):
    assert _kinds(code) == expected


@pytest.mark.parametrize("code", [
    "text = df.to_csv(sep='\\t', index=False)",
    "text = df.to_csv(None, sep='\\t')",
    "df.to_csv(io.StringIO())",
    "buf = io.BytesIO()\nfig.savefig(buf, format='png')",
    "with BytesIO() as png:\n    fig.savefig(png)",
    "open(p)",
    "open(p, 'rb')",
    "path.open(newline='')",
    "gzip.open(p, 'rb')",
    "os.open(p, os.O_RDWR | os.O_CREAT, 0o666)",
    "from spectsynth import io\nio.write_text('a', p)",
    "import spectsynth.io as sio\nsio.write_text('a', p)",
    "write_text('a', p)\nwrite_table(t, p, what='t')\nsave_figure(fig, p)",
    "p.read_text()",
])
def test_the_checker_passes_memory_buffers_reads_and_the_writers(code):
    assert _kinds(code) == []


def test_the_checker_names_file_line_function_and_writer():
    (w,) = find_writes("def f(t, p):\n    t.to_csv(p)\n", "src/spectsynth/x.py")
    assert (w.line, w.function) == (2, "f")
    assert str(w).startswith("src/spectsynth/x.py:2 (f): .to_csv(...) writes a file; use spectsynth.io.write_table(")
