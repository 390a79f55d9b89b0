"""The package's layers point one way (docs/architecture.md).

Read from the source (every ``import`` and ``from ... import``, also those inside functions, which
are still dependencies): no circle of imports runs across the package's parts (a subpackage such
as ``spectsynth.models`` or a top-level module such as ``spectsynth.datasets``), and every import
goes to the same or a lower layer of :data:`LAYERS`. So the model families know nothing of the
studies, the checkpoints nothing of the families, the data layer is handed its study instead of
looking one up, and the simulator knows nothing of the datasets built from it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "spectsynth"

# Lowest first. A part may import its own layer's parts (without a circle) and lower layers.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"errors", "mapping", "logs", "progress", "io", "paths", "artifacts", "labels", "resources",
                    "outputlock", "device", "config", "qc", "verdicts", "stats", "metrics", "losses", "quant",
                    "calibration", "checksums", "provenance", "derivatives", "plots", "headline",
                    "benchrecords"}),
    ("images: inputs, preprocessing, anatomy, simulation", {"inputs", "preprocess", "anatomy", "simulate"}),
    ("data: splits, designs, slice datasets", {"splits", "design", "datasets"}),
    ("model families: training, checkpoints, inference", {"recipe", "checkpoints", "selection", "models",
                                                          "train", "infer"}),
    ("evaluation tools", {"evaluate", "reading"}),
    ("studies", {"studies"}),
    ("workflow-wide: experiments, the configuration schema, plans, QC across studies, pages, CLI",
     {"experiments", "schema", "scheduler", "planner", "realism", "scan_qc", "results_page", "cli"}),
]
RANK = {part: i for i, (_, parts) in enumerate(LAYERS) for part in parts}


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """``spectsynth.models.fastgan.recipe`` -> ``models``; ``spectsynth.datasets`` -> ``datasets``."""
    return module.split(".")[1] if module.count(".") else ""


def import_edges() -> list[tuple[str, str, str, int]]:
    """(importing module, imported module, file, line) of every import inside the package."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    edges = []
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name.startswith("spectsynth.") and name != mod:
                    edges.append((mod, name, str(path.relative_to(SRC.parent)), node.lineno))
    return edges


def part_cycles(edges) -> list[list[str]]:
    """Strongly connected groups of more than one part (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _, _ in edges:
        if _part(a) and _part(b) and _part(a) != _part(b):
            graph[_part(a)].add(_part(b))
    return _cycles(graph)


def _within_package(a: str, b: str) -> bool:
    """A package and its own submodules (an ``__init__`` that re-exports them, a module that reads
    its package's registry): not an import between two modules."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def module_cycles(edges) -> list[list[str]]:
    """Strongly connected groups of more than one module."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _, _ in edges:
        if not _within_package(a, b):
            graph[a].add(b)
    return _cycles(graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


EDGES = import_edges()


def test_the_import_graph_is_read():
    """The reader sees the imports it must judge (a broken reader would pass everything)."""
    pairs = {(a, b) for a, b, _, _ in EDGES}
    assert ("spectsynth.datasets", "spectsynth.design") in pairs
    assert ("spectsynth.studies.s1", "spectsynth.models.fastgan") in pairs
    assert ("spectsynth.infer", "spectsynth.models.inference") in pairs     # an import inside a function


def test_no_circle_of_imports_across_the_package_parts():
    cycles = part_cycles(EDGES)
    detail = [f"{f}:{line} {a} -> {b}" for a, b, f, line in EDGES
              for group in cycles if _part(a) in group and _part(b) in group and _part(a) != _part(b)]
    assert not cycles, f"import circles across parts {cycles}:\n" + "\n".join(detail)


def test_no_circle_of_imports_between_modules():
    """Within a part too, modules import one way (lazy imports included)."""
    cycles = module_cycles(EDGES)
    detail = [f"{f}:{line} {a} -> {b}" for a, b, f, line in EDGES
              for group in cycles if a in group and b in group and not _within_package(a, b)]
    assert not cycles, f"import circles between modules {cycles}:\n" + "\n".join(sorted(set(detail)))


def test_the_architecture_page_shows_these_layers():
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    table = text.split("<!-- layers:start", 1)[1].split("<!-- layers:end", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()[1:]
            if line.startswith("|") and not line.startswith("|---") and not line.startswith("| layer |")]
    assert [(name, set(map(str.strip, parts.split(",")))) for name, parts in rows] == LAYERS


def test_every_part_has_a_layer():
    parts = {_part(_module(p)) for p in PKG.rglob("*.py")} - {""}
    assert parts - set(RANK) == set(), "give these parts a layer in LAYERS (docs/architecture.md)"
    assert set(RANK) - parts == set(), "LAYERS names parts that no longer exist"


def test_imports_point_down_the_layers():
    upward = [f"{f}:{line} {a} ({LAYERS[RANK[_part(a)]][0]}) imports {b} ({LAYERS[RANK[_part(b)]][0]})"
              for a, b, f, line in EDGES
              if _part(a) and _part(b) and RANK[_part(b)] > RANK[_part(a)]]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("source, forbidden", [
    ("spectsynth.models", "spectsynth.studies"),            # families know nothing of studies
    ("spectsynth.checkpoints", "spectsynth.models"),        # checkpoints know nothing of families
    ("spectsynth.datasets", "spectsynth.studies"),          # the data layer is handed its study
    ("spectsynth.design", "spectsynth.studies"),
    ("spectsynth.simulate", "spectsynth.datasets"),         # the simulator knows nothing of datasets
])
def test_named_boundaries(source, forbidden):
    bad = [f"{f}:{line} {a} -> {b}" for a, b, f, line in EDGES
           if (a == source or a.startswith(source + ".")) and (b == forbidden or b.startswith(forbidden + "."))]
    assert not bad, "\n".join(bad)


def test_the_checker_finds_a_circle_and_an_upward_import():
    fake = [("spectsynth.models.x", "spectsynth.studies.s1", "f.py", 1),
            ("spectsynth.studies.s1", "spectsynth.models.x", "g.py", 2)]
    assert part_cycles(fake) == [["models", "studies"]]
    assert RANK["studies"] > RANK["models"]
    within = [("spectsynth.simulate.config", "spectsynth.simulate.frames", "f.py", 1),
              ("spectsynth.simulate.frames", "spectsynth.simulate.config", "g.py", 2),
              ("spectsynth.simulate", "spectsynth.simulate.config", "h.py", 3),
              ("spectsynth.simulate.config", "spectsynth.simulate", "i.py", 4)]
    assert part_cycles(within) == []
    assert module_cycles(within) == [["spectsynth.simulate.config", "spectsynth.simulate.frames"]]
