"""The README stays true: its two commands, its scripts and options exist, its threshold comes from its own table."""

from __future__ import annotations

import re

from conftest import CONFIGS, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_it_opens_with_the_two_commands_a_newcomer_needs():
    first_block = README.split("```")[1]
    assert [line.split()[:2] for line in first_block.strip().splitlines()[1:]] == [["make", "train"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^train:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_script_and_command_it_names_exists():
    for script in set(re.findall(r"scripts/(\w+)\.py", README)):
        assert (ROOT / "scripts" / f"{script}.py").is_file(), f"README names scripts/{script}.py"
        assert (CONFIGS / f"{script}.yaml").is_file()
    for command in set(re.findall(r"claimstance-([a-z-]+)", README)):
        assert (CONFIGS / f"{command.replace('-', '_')}.yaml").is_file(), f"README names claimstance-{command}"


def test_every_group_option_it_lists_is_a_config():
    for group, options in re.findall(r"^\| `([\w/]+)` \| (.+?) \|", README, re.M):
        for option in re.findall(r"`(\w+)`", options.split(";")[0]):
            assert (CONFIGS / group / f"{option}.yaml").is_file(), f"README lists {group}={option}"


def test_each_min_confidence_it_suggests_is_auto_or_a_row_of_its_coverage_table():
    table = set(re.findall(r"^\| (0\.\d+) \|", README, re.M))
    suggested = set(re.findall(r"min_confidence=([\w.]+)", README))
    assert table, "the README shows the coverage / precision table of the current model"
    assert suggested <= table | {"auto", "X"}, f"README suggests {suggested - table - {'auto', 'X'}} without its coverage"


def test_it_stays_short():
    assert len(README.encode("utf-8")) < 13_000, "move detail to docs/ (results, scaling, performance)"
