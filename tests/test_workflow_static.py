"""Static checks of the rules as written (no DAG is built): every rule that does real work
records its run time and memory with a `benchmark:` file."""

from __future__ import annotations

from conftest import REPO
from test_envs import all_rules

# Rules that only gather or write a few small files (and the target rule `all`).
TRIVIAL = {"all", "make_demo_dataset", "summarize_inputs", "tabulate_registration_quality",
           "write_provenance", "bids_description"}


def test_every_rule_that_does_real_work_has_a_benchmark():
    rules = all_rules()
    assert len(rules) > 20
    missing = [f"{r.name} ({r.smk.name}:{r.line})" for r in rules
               if r.name not in TRIVIAL and "benchmark" not in r.directives]
    assert not missing, f"rules without a benchmark: file: {missing}"


def test_benchmarks_lie_in_the_benchmarks_folder_under_the_rules_name():
    for r in all_rules():
        bench = r.directives.get("benchmark")
        if bench is None:
            continue
        assert bench.startswith(f'sub_bench("{r.name}")') or \
            bench.startswith(f'f"{{OUT}}/benchmarks/{r.name}/'), f"{r.name}: benchmark {bench}"
    names = {r.name for r in all_rules()}
    assert TRIVIAL <= names, f"TRIVIAL lists rules that do not exist: {TRIVIAL - names}"


def _top_level_names(text: str) -> set[str]:
    """Names a rule file defines at its top level (assignments, functions, imports)."""
    import re

    names = set(re.findall(r"^([A-Za-z_]\w*)\s*=", text, re.M))
    names |= set(re.findall(r"^def ([A-Za-z_]\w*)\(", text, re.M))
    for imported in re.findall(r"^from \S+ import (.+)$", text, re.M):
        names |= {part.split(" as ")[-1].strip(" ()") for part in imported.split(",")}
    names |= set(re.findall(r"^import \S+ as (\w+)$", text, re.M))
    return names - {""}


def test_a_stage_file_reads_no_other_stage_files_names():
    """Shared names live in common.smk; a stage file uses its own and common.smk's only."""
    import re

    rules = REPO / "workflow" / "rules"
    stages = {p.name: p.read_text() for p in sorted(rules.glob("*.smk")) if p.name != "common.smk"}
    defined = {name: _top_level_names(text) for name, text in stages.items()}
    common = _top_level_names((rules / "common.smk").read_text())
    problems = []
    for name, text in stages.items():
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        for other, names in defined.items():
            if other == name:
                continue
            for n in sorted(names - common - defined[name]):
                if re.search(rf"(?<![\w.]){re.escape(n)}\b", code):
                    problems.append(f"{name} uses {n} from {other}")
    assert not problems, "move these to common.smk:\n" + "\n".join(problems)


def test_no_model_family_name_outside_the_families_and_studies():
    """The rules and the generic code ask a family (spectsynth.models.get_family: paired,
    selection_criteria) what it does instead of testing its name; only the families themselves
    and the studies (which name the families that serve them) spell the names."""
    from test_layout import _string_literals

    from spectsynth.models import FAMILIES

    pkg = REPO / "src" / "spectsynth"
    files = [p for p in pkg.rglob("*.py")
             if not {pkg / "models", pkg / "studies"} & set(p.parents)]
    files += sorted((REPO / "workflow" / "scripts").glob("*.py"))
    files += sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]
    found = [f"{p.relative_to(REPO)}:{line}: {value!r}" for p in files
             for line, value in _string_literals(p) if value in FAMILIES]
    assert not found, "model family names as literals (ask the Family instead):\n" + "\n".join(found)


def test_the_families_with_selection_criteria_share_one_set():
    """train.smk declares best-<criterion>.pt of SELECTION_CRITERIA (every family's criteria, in
    order) in one rule for every experiment whose family has criteria."""
    from spectsynth.models import REGISTRY

    sets = {f.selection_criteria for f in REGISTRY.values() if f.selection_criteria}
    assert len(sets) == 1, f"one rule cannot declare the checkpoints of several criteria sets: {sets}"


def test_every_benchmarked_rule_has_a_stage_in_the_reference_run_record():
    """`spectsynth results collect` sums job time per stage (spectsynth.results_page.STAGES) into
    run.json: a rule missing there would be counted as 'other'."""
    from spectsynth.results_page import STAGES, STUDY_KEYS

    staged = {r for rules in STAGES.values() for r in rules}
    names = set()
    for r in all_rules():
        if "benchmark" in r.directives:      # a rule made per study is named from its key
            names |= {r.name.replace("{study.key}", k) for k in STUDY_KEYS}
    missing = sorted(names - staged)
    assert not missing, f"rules with a benchmark but no stage in spectsynth.results_page.STAGES: {missing}"
