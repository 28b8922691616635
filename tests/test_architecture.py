"""The layout holds: torch stays in the model modules, every model option builds something, every command has one name.

The layers themselves (data -> evaluation | inference -> training -> bench -> commands) are import-linter's
contract in ``pyproject.toml``, checked by ``make lint``.
"""

from __future__ import annotations

import ast
from graphlib import TopologicalSorter
from pathlib import Path

import pytest
import tomllib
from conftest import CONFIGS, MODEL_MODULES, MODEL_STACK, ROOT
from hydra.utils import get_method
from omegaconf import OmegaConf

PACKAGE = ROOT / "src" / "claimstance"
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
COMMANDS = sorted(p.stem for p in (PACKAGE / "commands").glob("*.py") if p.stem not in ("__init__", "cli"))


def module_name(path: Path) -> str:
    """``src/claimstance/commands/train.py`` -> ``claimstance.commands.train``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(name: str) -> tuple[set[str], set[str]]:
    """What module ``name`` imports when it is imported: package modules, and outside packages by top-level name.

    Only statements at the top of the module count: an import inside a function runs when the function does.
    """
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    internal, external = set(), set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            if target.startswith("claimstance"):
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    internal.add(target)
            else:
                external.add(target.split(".")[0])
    return internal, external


def test_only_the_model_modules_load_torch_at_import():
    graph = {name: top_level_imports(name) for name in MODULES}
    loads: dict[str, bool] = {}
    for name in TopologicalSorter({n: internal for n, (internal, _) in graph.items()}).static_order():
        internal, external = graph[name]
        loads[name] = bool(external & set(MODEL_STACK)) or any(loads[other] for other in internal)
    # CONTRIBUTING.md names these modules: everything else imports without torch
    assert {name for name, heavy in loads.items() if heavy} == {f"claimstance.{module}" for module in MODEL_MODULES}


def defines(module: str, name: str) -> bool:
    """Whether a package module defines the function or class ``name`` at its top level.

    Read, not imported: the model builders' module loads torch, which the fast test tier never does.
    """
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name for node in tree.body)


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))
def test_every_model_option_targets_a_callable(option):
    target = OmegaConf.load(CONFIGS / "model" / f"{option}.yaml").get("_target_")
    assert target, f"configs/model/{option}.yaml has no _target_"
    module, _, name = target.rpartition(".")
    if module in MODULES:
        assert defines(module, name), f"configs/model/{option}.yaml: {module} defines no function or class {name}"
    else:
        assert callable(get_method(target)), f"configs/model/{option}.yaml: {target} is not callable"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_one_name_across_module_config_script_and_console(command):
    assert defines(f"claimstance.commands.{command}", "run"), f"commands/{command}.py has no run(cfg)"
    assert (CONFIGS / f"{command}.yaml").is_file(), f"configs/{command}.yaml does not exist"
    assert defines("claimstance.commands.cli", command), f"commands/cli.py has no {command}()"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.get(f"claimstance-{command.replace('_', '-')}") == f"claimstance.commands.cli:{command}"
    assert (ROOT / "scripts" / f"{command}.py").is_file(), f"scripts/{command}.py does not exist"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_thin(script):
    """A script is its console command: one import from commands.cli, called under ``__main__``, nothing else."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert len(body) == 2, f"{script.name}: only the import and the __main__ call; put the work in src/claimstance"
    imported, main = body
    assert isinstance(imported, ast.ImportFrom) and imported.module == "claimstance.commands.cli"
    assert [alias.name for alias in imported.names] == [script.stem]
    assert isinstance(main, ast.If) and ast.unparse(main.body[0]) == f"{script.stem}()"


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"split these modules by what they do: {long}"
