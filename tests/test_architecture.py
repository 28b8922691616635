"""The layout holds: no import cycle in the package, every model option builds something, scripts stay thin."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
from conftest import CONFIGS, MODEL_MODULES, MODEL_STACK, ROOT
from hydra.utils import get_method
from omegaconf import OmegaConf

PACKAGE = ROOT / "src" / "claimstance"
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def module_name(path: Path) -> str:
    """``src/claimstance/tools/curve.py`` -> ``claimstance.tools.curve``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, tree: ast.AST) -> set[str]:
    """Every ``claimstance`` module ``name`` imports, at the top or inside functions, resolved to a module of the package.

    ``from claimstance import x`` is ``claimstance.x`` when x is a module, else the package ``claimstance`` itself;
    importing a package (``import claimstance.tools``) is an edge to its ``__init__``.
    """
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..tools import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    edges = set()
    for target in found:
        while target and target not in MODULES:  # `import claimstance.tools.curve.x` style: the nearest module
            target = target.rpartition(".")[0]
        if target.startswith("claimstance") and target != name:
            edges.add(target)
    return edges


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name, ast.parse(path.read_text(encoding="utf-8"))) for name, path in MODULES.items()}


def test_the_import_graph_is_read_whole():
    graph = import_graph()
    assert {"claimstance", "claimstance.tools", "claimstance.tools.curve", "claimstance.train"} <= set(graph)
    assert "claimstance.train" in graph["claimstance.tools.curve"]
    assert "claimstance.baseline" in graph["claimstance.train"]  # imported inside train(): counted too
    assert "claimstance.predict" in graph["claimstance"]  # the package's lazy Predictor


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        cycle = err.args[1]
        pytest.fail("import cycle: " + " -> ".join(reversed(cycle)) + " (break it: move the shared code down a layer)")


def import_time_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """What each module imports when it is imported: package modules, and outside packages by top-level name.

    Only statements at the top of the module count: an import inside a function runs when the function does.
    """
    internal, external = {}, {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], type_ignores=[])
        internal[name] = imported_modules(name, top)
        external[name] = {alias.name.split(".")[0] for n in top.body if isinstance(n, ast.Import) for alias in n.names} | {
            n.module.split(".")[0] for n in top.body if isinstance(n, ast.ImportFrom) and n.module and not n.level
        }
    return internal, external


def test_only_the_model_modules_load_torch_at_import():
    internal, external = import_time_graph()
    loads: dict[str, bool] = {}
    for name in TopologicalSorter(internal).static_order():  # a module's imports come before it
        loads[name] = bool(external[name] & set(MODEL_STACK)) or any(loads[other] for other in internal[name])
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


def hydra_mains(tree: ast.Module) -> list[ast.FunctionDef]:
    def is_hydra_main(decorator: ast.expr) -> bool:
        func = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(func, ast.Attribute) and func.attr == "main" and getattr(func.value, "id", None) == "hydra"

    return [node for node in tree.body if isinstance(node, ast.FunctionDef) and any(map(is_hydra_main, node.decorator_list))]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_thin(script):
    tree = ast.parse(script.read_text(encoding="utf-8"))
    mains = hydra_mains(tree)
    assert len(mains) == 1, f"{script.name}: needs exactly one @hydra.main function, has {len(mains)}"
    (main,) = mains
    body = [s for s in main.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]  # docstring
    call = body[0].value if len(body) == 1 and isinstance(body[0], ast.Return | ast.Expr) else None
    assert (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "run"
        and [getattr(a, "id", None) for a in call.args] == [main.args.args[0].arg]
        and not call.keywords
    ), f"{script.name}: the body of {main.name}() must be the one call `return run(cfg)`; put the work in src/claimstance"
    sources = [n.module for n in tree.body if isinstance(n, ast.ImportFrom) and any(a.name == "run" for a in n.names)]
    assert len(sources) == 1 and sources[0] in MODULES, f"{script.name}: run must come from a claimstance module"
    assert "run" in {f.name for f in ast.parse(MODULES[sources[0]].read_text(encoding="utf-8")).body if hasattr(f, "name")}
    config_name = next(k.value.value for d in main.decorator_list for k in getattr(d, "keywords", []) if k.arg == "config_name")
    assert (CONFIGS / f"{config_name}.yaml").is_file(), f"{script.name}: configs/{config_name}.yaml does not exist"
