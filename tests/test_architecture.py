"""The layout rules of ARCHITECTURE.md, checked on the source with ``ast`` (nothing is imported
to find the imports): no import cycles — function-level and ``TYPE_CHECKING`` imports count —
torch hooks registered in one module only, no stage importing another stage's private names,
every package shipped, and the public names of ``relu_probe`` resolving to what they name."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
import types
from pathlib import Path

import relu_probe as rp

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the import name it ships as
PACKAGES = {ROOT / "relu_probe": "relu_probe", ROOT / "adapters": "relu_probe.adapters"}
#: the one module that may register torch hooks or function modes
HOOKS_MODULE = "relu_probe.recording.hooks"
#: names whose use registers a hook or intercepts torch calls
HOOK_NAMES = {
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_backward_hook", "register_hook",
    "register_module_forward_hook", "register_module_forward_pre_hook", "register_module_full_backward_hook",
    "register_module_full_backward_pre_hook", "register_module_backward_hook", "TorchFunctionMode",
    "TorchDispatchMode", "BaseTorchFunctionMode",
}


def source_modules(packages: dict[Path, str] = PACKAGES) -> dict[str, Path]:
    """Import name of every Python file of the shipped packages -> its path."""
    out: dict[str, Path] = {}
    for folder, prefix in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """``module -> modules it imports`` from every import statement of its source, wherever it
    stands (module level, in a function, under ``if TYPE_CHECKING``).

    Importing ``a.b.c`` runs ``a/__init__``, ``a/b/__init__`` and ``a/b/c`` first, so an import
    of ``a.b.c`` is an edge to each of them — except to the importer's own enclosing packages,
    which are always initialised before the importer runs.
    """
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if _is_package(path) else name.rpartition(".")[0]
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                wanted = [module] + [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in wanted:
                if target.startswith("adapters"):
                    target = "relu_probe." + target
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    step = ".".join(parts[:i])
                    if step in modules and step not in own and step != name:
                        targets.add(step)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _path_of(component: list[str], graph: dict[str, set[str]]) -> str:
    """One loop through the component, for the failure message."""
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in component)
        step = next((w for w in nxt if w not in seen), None)
        if step is None:
            back = next(w for w in nxt if w in seen)
            return " -> ".join(path[path.index(back):] + [back])
        path.append(step)
        seen.add(step)


def test_no_import_cycles():
    graph = import_graph(source_modules())
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(_path_of(c, graph) for c in found)


def test_the_cycle_check_sees_function_level_imports(tmp_path):
    # a tiny package whose only cycle runs through an import inside a function
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from .a import f\n    return f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    graph = import_graph(source_modules({pkg: "pkg"}))
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert graph["pkg.c"] == {"pkg.a"}


#: The stages in the order of ARCHITECTURE.md: a stage may import only the stages before it.
STAGE_ORDER = [
    {"errors", "_version", "_util", "tasks", "testing"},
    {"data"},
    {"recording"},
    {"pathways"},
    {"scoring"},
    {"reln"},
    {"report"},
    {"analysis"},
    {"monitor"},
    {"cli"},
    {"adapters"},
]


def _rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return len(STAGE_ORDER)  # the lazy public face of relu_probe names every stage
    return next(i for i, stages in enumerate(STAGE_ORDER) if parts[1] in stages)


def test_stages_import_only_the_stages_before_them():
    graph = import_graph(source_modules())
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if _rank(b) > _rank(a))
    assert not upward, upward


def test_torch_hooks_are_registered_only_in_the_hooks_module():
    users: dict[str, list[str]] = {}
    for name, path in source_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            used = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if isinstance(node, ast.alias):
                used = node.name.rpartition(".")[2]
            if used in HOOK_NAMES:
                users.setdefault(name, []).append(used)
    assert set(users) == {HOOKS_MODULE}, {k: sorted(set(v)) for k, v in users.items() if k != HOOKS_MODULE}


def _stage(module: str) -> str:
    """The stage a module belongs to: its subpackage of relu_probe (or the module itself)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_stage_imports_another_stages_private_names():
    modules = source_modules()
    offences = []
    for name, path in modules.items():
        package = name if _is_package(path) else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("relu_probe") or _stage(source) == _stage(name):
                continue
            for alias in node.names:
                private_name = alias.name.startswith("_") and alias.name != "__version__"
                private_module = any(part.startswith("_") and part not in ("__init__", "_util", "_version")
                                     for part in source.split(".")[1:])
                if private_name or private_module:
                    offences.append(f"{name} imports {source}.{alias.name}")
    assert not offences, offences


def test_every_package_folder_is_shipped():
    block = re.search(r"^packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    listed = set(re.findall(r'"([^"]+)"', block.group(1)))
    found = {name for name, path in source_modules().items() if _is_package(path)}
    assert found == listed


def test_public_names_resolve_and_are_not_shadowed_by_modules():
    # import every module first: a subpackage named like a public function (``record``,
    # ``scores``) would replace it as an attribute of relu_probe
    for info in pkgutil.walk_packages(rp.__path__, "relu_probe."):
        if info.name.startswith("relu_probe.cli.__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:  # a module of an optional extra (numba's kernel)
            if (exc.name or "").startswith("relu_probe"):
                raise
    modules = {"tasks", "testing", "errors", "io", "dataset", "sites"}
    for name in rp.__all__:
        value = getattr(rp, name)
        if name in modules:
            assert isinstance(value, types.ModuleType), name
        elif name != "__version__":
            assert callable(value) and not isinstance(value, types.ModuleType), name
            assert value.__name__ == name, name
    assert rp.io.to_netcdf and rp.dataset.site_attr and rp.sites.select_sites
    assert rp.record is importlib.import_module("relu_probe.recording").record
    assert rp.scores is importlib.import_module("relu_probe.scoring").scores


def test_dir_lists_the_public_api_not_the_packages_own_imports():
    names = dir(rp)
    assert set(rp.__all__) <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib"} & set(names)
