"""Static checks of the rules as written (no DAG is built): every rule that does real work
records its run time and memory with a `benchmark:` file."""

from __future__ import annotations

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
