"""The package layout is the architecture: each layer imports only the layers below it, and no
module imports itself back through others, counting imports inside functions and the ones made
only for type checking."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connector", "carrier_adapters", "crm_adapters")

#: Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS = (
    ("kernel", ("connector.kernel",)),  # what the adapters build on: events, errors, http ...
    ("adapters", ("carrier_adapters", "crm_adapters")),
    ("domain", ("connector.domain",)),  # policy, hours, templates, keywords: no storage
    ("settings", ("connector.settings",)),
    ("storage", ("connector.storage",)),
    ("jobs", ("connector.jobs",)),  # text-back, CRM sync, conversation, alerts, intake
    ("runtime", ("connector.runtime", "connector.simulate")),  # wires the layers together
    ("reporting", ("connector.reporting",)),
    ("web", ("connector.web",)),
    ("marketplace", ("connector.marketplace",)),  # app definitions rendered from adapters and routes
    ("cli", ("connector.cli", "connector.serving")),  # the commands and the processes of serve
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every project module ``name`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # ``from package import submodule`` depends on the submodule; any other name
            # is taken from the module itself.
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add its folder to LAYERS")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        if module in PACKAGES or module == "connector":
            continue
        _layer(module)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, imports in _graph().items():
        if module in PACKAGES:
            continue
        for imported in imports:
            if imported in PACKAGES:
                continue
            if _layer(imported) > _layer(module):
                upward.append(f"{module} ({LAYERS[_layer(module)][0]}) imports {imported} "
                              f"({LAYERS[_layer(imported)][0]})")
    assert upward == [], "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    # Guards the checker: an import inside a function or under TYPE_CHECKING still counts.
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from connector.web import pages\n"
              "def f():\n    from connector.cli import main\n")
    path = tmp_path / "probe.py"
    path.write_text(source)
    modules = {"connector.web.pages": path, "connector.cli": path, "connector.kernel.probe": path}
    assert _imports(path, "connector.kernel.probe", modules) == {"connector.web.pages",
                                                               "connector.cli"}
