"""The import rule of docs/ARCHITECTURE.md, checked over the package's source: a module imports
only modules of its own layer or of layers below it, so the layering cannot rot silently.

Every import counts, including those inside functions and under TYPE_CHECKING: a lazy upward
import is still an upward dependency.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xlingbench"
#: bottom to top; a module may import its own layer and the ones before it
LAYERS = ("core", "compute", "inputs", "tasks", "sinks", "harness", "leaderboard", "training", "cli")
#: the package root is a facade (``__version__``, a lazy ``evaluate``); below it only ``__version__`` may be taken
ROOT_NAMES_ALLOWED = {"__version__"}


def layer_of(module: str) -> int | None:
    """Layer index of ``xlingbench.<layer>...``; None for the package root and its entry points
    (``xlingbench/__main__.py``), which sit above every layer."""
    parts = module.split(".")
    if parts[0] != "xlingbench" or len(parts) == 1 or (len(parts) == 2 and parts[1] not in LAYERS):
        return None
    return LAYERS.index(parts[1])


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join(package + ([base] if base else []))
            found.append((node.lineno, base, [alias.name for alias in node.names]))
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import in the package under ``root`` that breaks the layer rule, as readable lines."""
    violations = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        own = layer_of(module)
        if own is None:  # the root facade may import anything
            continue
        for line, target, names in imports_of(path, module):
            if not target.startswith("xlingbench"):
                continue
            layer = layer_of(target)
            if layer is None:
                if set(names) - ROOT_NAMES_ALLOWED:
                    violations.append(f"{path.relative_to(root.parent)}:{line} takes {names} from the package root")
            elif layer > own:
                violations.append(f"{path.relative_to(root.parent)}:{line} ({LAYERS[own]}) imports {target} ({LAYERS[layer]})")
    return violations


def test_every_import_points_down() -> None:
    assert upward_imports(PACKAGE) == []


def test_every_subpackage_is_a_layer() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS)


@pytest.mark.parametrize(("where", "plant"), [
    ("core/task.py", "from xlingbench.inputs.cache import Cache\n"),
    ("compute/kmeans.py", "def f():\n    from xlingbench.tasks.registry import load_task\n"),
    ("inputs/cache.py", "from xlingbench import evaluate\n"),
    ("sinks/json_sink.py", "from ..harness import runner\n"),
])
def test_a_planted_upward_import_is_caught(tmp_path: Path, where: str, plant: str) -> None:
    copy = tmp_path / "xlingbench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / where).open("a", encoding="utf-8") as handle:
        handle.write("\n" + plant)
    found = upward_imports(copy)
    assert len(found) == 1 and found[0].startswith(f"xlingbench/{where}:")


#: circles between two modules of one layer that are accepted for now: none
KNOWN_CIRCLES: set[tuple[str, ...]] = set()


def module_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (lazy and TYPE_CHECKING imports included); the
    root facade is left out (it may import anything, and below it only ``__version__`` is taken)."""
    paths = {name: path for path in sorted(root.rglob("*.py")) if layer_of(name := module_name(path, root)) is not None}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        edges = set()
        for _, target, names in imports_of(path, module):
            named = {f"{target}.{name}" for name in names} & set(paths)
            edges |= named or ({target} & set(paths))
        graph[module] = edges - {module}
    return graph


def circles(root: Path) -> set[tuple[str, ...]]:
    """The groups of modules that import each other, directly or through others (sorted names):
    a circle inside a layer means two modules that cannot be understood, tested or split apart."""
    graph = module_graph(root)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reaches = {module: reach(module) for module in graph}
    return {tuple(sorted({m} | {o for o in reaches[m] if m in reaches[o]})) for m in graph if m in reaches[m]}


def test_no_two_modules_import_each_other() -> None:
    assert circles(PACKAGE) == KNOWN_CIRCLES


def test_a_planted_circle_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "xlingbench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "harness" / "plan.py").open("a", encoding="utf-8") as handle:
        handle.write("\ndef f():\n    from xlingbench.harness.runner import RunRequest\n")
    (found,) = circles(copy) - KNOWN_CIRCLES
    assert {"xlingbench.harness.plan", "xlingbench.harness.runner"} <= set(found)  # runner -> grid -> unit -> plan -> runner
    assert upward_imports(copy) == []  # same layer: only the circle test sees it
