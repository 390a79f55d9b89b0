"""Software environments: every rule's `conda:` env exists, is pinned, and provides what the
rule's script imports.

The rules are read from the text of the Snakefile and `workflow/rules/*.smk` (no DAG is built),
the imports from the rule's script and, through `spectsynth.*` imports, from every package
module it reaches (module-level and function-level imports alike: a config branch may take the
function that needs them). Imports inside `try: ... except ImportError` are optional by design
and not required. Import names are mapped to distributions with the installed metadata
(`yaml` -> PyYAML, `skimage` -> scikit-image, ...), so the check follows whatever rules and
envs exist when it runs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO

PACKAGE = "spectsynth"
PACKAGE_SRC = REPO / "src"
ENVS = REPO / "envs"
# Modules a rule's script may import without its env listing them: Snakemake puts its own
# package on the script's path.
PROVIDED = {"snakemake"}
# conda-forge names that differ from the distribution name an import resolves to.
CONDA_ALIASES = {
    "matplotlib-base": "matplotlib",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "tensorflow-base": "tensorflow",
    "py-opencv": "opencv-python",
}

# `rule name:`, or an anonymous `rule:` (in a loop over the studies) named by its `name:` directive
RULE_START = re.compile(r"^(\s*)(rule|checkpoint)(?:\s+(\w+))?\s*:")
DIRECTIVE = re.compile(r"^(\s+)(\w+):\s*(.*)$")


def normalize(name: str) -> str:
    """Canonical distribution name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ----------------------------------------------------------------- rules
@dataclass
class Rule:
    """One rule as written in a .smk file: the raw values of the directives this test needs."""

    name: str
    smk: Path
    line: int
    directives: dict[str, str] = field(default_factory=dict)

    def path_of(self, directive: str) -> Path | None:
        """The directive's value as a path relative to the .smk file, or None if absent."""
        raw = self.directives.get(directive)
        if raw is None:
            return None
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise AssertionError(
                f"rule {self.name} ({self.smk.relative_to(REPO)}:{self.line}): `{directive}:` is "
                f"{raw!r}, not a plain string; write the path as a literal so it can be checked"
            ) from None
        if not isinstance(value, str):
            raise AssertionError(f"rule {self.name}: `{directive}:` must be a string, got {value!r}")
        return (self.smk.parent / value).resolve()


def parse_rules(smk: Path) -> list[Rule]:
    """The rules of one Snakefile/.smk file with the raw text of each top-level directive.

    A directive's value is what follows `name:` on the same line, or else its indented block;
    only single-value directives (conda, script, shell, ...) are used here.
    """
    rules: list[Rule] = []
    current: Rule | None = None
    rule_indent = 0
    body_indent: int | None = None
    pending: str | None = None
    lines = smk.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        start = RULE_START.match(line)
        if start:
            current = Rule(start.group(3) or "", smk, number)
            rules.append(current)
            rule_indent = len(start.group(1))
            body_indent, pending = None, None
            continue
        if current is None:
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= rule_indent:  # back at the rule's level: the rule has ended
            current, pending = None, None
            continue
        if body_indent is None:
            body_indent = indent
        m = DIRECTIVE.match(line)
        if indent == body_indent and m:
            name, value = m.group(2), m.group(3).strip()
            if value:
                current.directives[name] = value
                pending = None
            else:
                pending = name
            continue
        if pending is not None and indent > body_indent:
            # First line of the directive's block is its value (snakefmt writes one per line).
            current.directives[pending] = stripped.rstrip(",")
            pending = None
    for rule in rules:
        if not rule.name:
            rule.name = rule.directives.get("name", f"line{rule.line}").strip("f\"'")
    return rules


def workflow_files(repo: Path = REPO) -> list[Path]:
    files = [repo / "Snakefile"] if (repo / "Snakefile").is_file() else []
    return files + sorted((repo / "workflow" / "rules").glob("*.smk"))


def all_rules(repo: Path = REPO) -> list[Rule]:
    return [rule for smk in workflow_files(repo) for rule in parse_rules(smk)]


# ----------------------------------------------------------------- imports
def _guarded_by_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    for handler in handlers:
        names = []
        if isinstance(handler.type, ast.Name):
            names = [handler.type.id]
        elif isinstance(handler.type, ast.Tuple):
            names = [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
        if {"ImportError", "ModuleNotFoundError"} & set(names):
            return True
    return False


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules imported in a parsed file (optional imports left out)."""
    found: set[str] = set()
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _guarded_by_import_error(node.handlers):
            for inner in node.body:
                optional.update(id(n) for n in ast.walk(inner))
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            optional.update(id(n) for n in ast.walk(node))
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # `from pkg import name` may import the submodule pkg.name
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "import_module" \
                and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)):
            # import_module("spectsynth.x") or import_module(f"spectsynth.studies.{key}.evaluate"):
            # a formatted part stands for any name (every module it can be is followed)
            arg = node.args[0]
            parts = [arg] if isinstance(arg, ast.Constant) else arg.values
            found.add("".join(str(v.value) if isinstance(v, ast.Constant) else "*" for v in parts))
    return found


def expand_module_pattern(name: str, src: Path = PACKAGE_SRC) -> list[str]:
    """The package modules a dotted name with ``*`` parts (from :func:`_imports`) can be."""
    if "*" not in name:
        return [name]
    if not name.startswith(f"{PACKAGE}."):
        return []          # a computed name outside the package: nothing to follow
    base = "/".join(name.split("."))
    hits = sorted(src.glob(base + ".py")) + sorted(src.glob(base + "/__init__.py"))
    return [".".join((h.parent if h.name == "__init__.py" else h.with_suffix("")).relative_to(src).parts)
            for h in hits]


def package_module_file(module: str, src: Path = PACKAGE_SRC) -> tuple[Path, bool] | None:
    """(file, is_package) of a module of the project's package, or None if there is none."""
    base = src.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None


def third_party_imports(script: Path, src: Path = PACKAGE_SRC) -> dict[str, str]:
    """Top-level third-party modules a script needs -> the file that imports each first.

    Follows `spectsynth.*` imports through the package (including each parent package's
    `__init__.py`, which Python runs too). Standard-library and PROVIDED modules are left out.
    """
    needed: dict[str, str] = {}
    seen: set[str] = set()
    queue: list[tuple[Path, str, bool]] = [(script, "__script__", False)]
    while queue:
        path, module, is_package = queue.pop()
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in sorted(n for pat in _imports(tree, module, is_package) for n in expand_module_pattern(pat, src)):
            top = name.split(".")[0]
            if not top or top in sys.stdlib_module_names or top in PROVIDED:
                continue
            if top == PACKAGE:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    sub = ".".join(parts[:i])
                    if sub in seen:
                        continue
                    seen.add(sub)
                    located = package_module_file(sub, src)
                    if located:
                        queue.append((located[0], sub, located[1]))
                needed.setdefault(PACKAGE, str(path))
                continue
            needed.setdefault(top, str(path))
    return needed


@cache
def _distributions_of_modules() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_for(module: str) -> set[str]:
    """Normalized names of the distributions that provide an importable top-level module."""
    dists = _distributions_of_modules().get(module)
    return {normalize(d) for d in dists} if dists else {normalize(module)}


# ----------------------------------------------------------------- envs
@dataclass
class EnvSpec:
    """What a conda env file installs."""

    path: Path
    conda: dict[str, str]  # normalized name -> version spec ("" when unpinned)
    pip: dict[str, str]
    local_paths: list[str]  # pip entries installing a local checkout (e.g. "-e ../")

    def provides(self) -> set[str]:
        names = {CONDA_ALIASES.get(n, n) for n in self.conda} | set(self.pip)
        return {normalize(n) for n in names}

    def installs_project(self, repo: Path = REPO) -> bool:
        if PACKAGE in self.provides():
            return True
        for entry in self.local_paths:
            target = (self.path.parent / entry.split()[-1]).resolve()
            if target == repo.resolve():
                return True
        return False


CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")
PIP_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$")


def read_env(path: Path) -> EnvSpec:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and isinstance(data.get("dependencies"), list), (
        f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: a conda env file needs a "
        "`dependencies:` list"
    )
    conda: dict[str, str] = {}
    pip: dict[str, str] = {}
    local: list[str] = []
    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            for entry in dep.get("pip", []):
                entry = str(entry).strip()
                if entry.startswith(("-e ", "--editable ", ".", "/")):
                    local.append(entry)
                    continue
                m = PIP_SPEC.match(entry)
                assert m, f"{path}: cannot read pip entry {entry!r}"
                pip[normalize(m.group(1))] = m.group(2).strip()
            continue
        m = CONDA_SPEC.match(str(dep).strip())
        assert m, f"{path}: cannot read dependency {dep!r}"
        conda[normalize(m.group(1))] = m.group(2).strip()
    return EnvSpec(path, conda, pip, local)


def is_pinned_conda(spec: str) -> bool:
    """`=1.2.3`, `==1.2.3` or `=3.11` (a minor series, as for python) — no ranges, no wildcards."""
    return bool(re.fullmatch(r"==?\s*[0-9][\w.+!-]*", spec)) and "*" not in spec


def is_pinned_pip(spec: str) -> bool:
    return bool(re.fullmatch(r"===?\s*[0-9][\w.+!-]*", spec))


def missing_from_env(rule: Rule, env: EnvSpec) -> dict[str, str]:
    """Modules the rule's script needs that its env does not install -> file importing each."""
    script = rule.path_of("script")
    if script is None:
        return {}
    provided = env.provides()
    missing = {}
    for module, where in third_party_imports(script).items():
        if module == PACKAGE:
            if not env.installs_project():
                missing[module] = where
        elif not distributions_for(module) & provided:
            missing[module] = where
    return missing


# ----------------------------------------------------------------- the checks
RULES = all_rules()
SCRIPTED = [r for r in RULES if "script" in r.directives or "conda" in r.directives]
ENV_FILES = sorted(ENVS.glob("*.yaml")) + sorted(ENVS.glob("*.yml"))


def _rule_id(rule: Rule) -> str:
    return rule.name


def test_workflow_has_rules():
    assert RULES, f"no rules found in {[str(p) for p in workflow_files()]}"


@pytest.mark.parametrize("rule", SCRIPTED, ids=_rule_id)
def test_rule_conda_env_exists(rule: Rule):
    env = rule.path_of("conda")
    where = f"rule {rule.name} ({rule.smk.relative_to(REPO)}:{rule.line})"
    assert env is not None, f"{where} runs a script but has no `conda:` env; add one from envs/"
    assert env.is_file(), f"{where}: conda env {env} does not exist"
    assert env.parent == ENVS.resolve(), f"{where}: conda env {env} is not in {ENVS}"
    script = rule.path_of("script")
    if script is not None:
        assert script.is_file(), f"{where}: script {script} does not exist"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_is_pinned(env_file: Path):
    env = read_env(env_file)
    loose = [f"{n} {v}".strip() for n, v in env.conda.items() if not is_pinned_conda(v)]
    loose += [f"pip: {n} {v}".strip() for n, v in env.pip.items() if not is_pinned_pip(v)]
    assert not loose, f"{env_file.name}: pin an exact version for {loose}"
    channels = yaml.safe_load(env_file.read_text()).get("channels") or []
    assert channels, f"{env_file.name}: list its channels (e.g. conda-forge) so it resolves the same everywhere"


@pytest.mark.parametrize("rule", [r for r in SCRIPTED if "script" in r.directives and "conda" in r.directives],
                         ids=_rule_id)
def test_env_provides_script_imports(rule: Rule):
    env_path = rule.path_of("conda")
    if env_path is None or not env_path.is_file():
        pytest.skip("no env file (reported by test_rule_conda_env_exists)")
    missing = missing_from_env(rule, read_env(env_path))
    detail = ", ".join(f"{m} (imported in {Path(w).relative_to(REPO)})" for m, w in sorted(missing.items()))
    assert not missing, f"rule {rule.name}: env {env_path.name} lacks {detail}; add pinned entries"


# ----------------------------------------------------------------- the checker itself
def test_checker_finds_a_missing_env_and_a_missing_module(tmp_path: Path):
    """The parser and the import closure report what is wrong (so the checks above can fail)."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "workflow" / "rules").mkdir(parents=True)
    (tmp_path / "workflow" / "scripts").mkdir()
    pkg = tmp_path / "src" / PACKAGE
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "work.py").write_text("import numpy as np\n\ndef run():\n    import scipy.ndimage\n")
    (tmp_path / "workflow" / "scripts" / "go.py").write_text(
        f"from {PACKAGE}.work import run\nimport yaml\nimport json\n"
        "try:\n    import pytomography\nexcept ImportError:\n    pytomography = None\n"
    )
    (tmp_path / "envs" / "x.yaml").write_text(
        "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=2.4.6\n"
        "  - pyyaml>=6\n  - pip:\n      - -e ../\n"
    )
    (tmp_path / "workflow" / "rules" / "a.smk").write_text(
        'rule good:\n    output:\n        "a",\n    conda:\n        "../../envs/x.yaml"\n'
        '    script:\n        "../scripts/go.py"\n\n\n'
        'rule no_env:\n    output: "b"\n    script: "../scripts/go.py"\n'
    )
    rules = {r.name: r for r in all_rules(tmp_path)}
    assert set(rules) == {"good", "no_env"}
    assert rules["no_env"].path_of("conda") is None
    assert rules["good"].path_of("conda") == (tmp_path / "envs" / "x.yaml").resolve()

    needed = third_party_imports(rules["good"].path_of("script"), src=tmp_path / "src")
    assert set(needed) == {PACKAGE, "numpy", "scipy", "yaml"}  # json is stdlib, pytomography optional
    env = read_env(tmp_path / "envs" / "x.yaml")
    assert not is_pinned_conda(env.conda["pyyaml"])
    assert env.installs_project(repo=tmp_path)
    provided = env.provides()
    assert {m for m in needed if m != PACKAGE and not distributions_for(m) & provided} == {"scipy"}
