"""The layer rule of ``docs/architecture.md``, checked on fgrad's own imports.

Every ``fgrad`` import in ``fgrad/`` is read with ``ast`` (no module is imported). A module
may import modules of its own layer or of layers below it; no import of an fgrad module may
sit inside a function (such imports only ever dodged cycles); and the modules' import graph
has no cycle, except inside ``MUTUAL``: the three primitive families whose rules are written
with each other's primitives (the transpose of a broadcast is a sum, the vmap rule of an
elementwise operation broadcasts, a reduction's jvp compares and broadcasts), which import
each other as modules at their top.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "fgrad"

#: Bottom to top; a module's layer is that of the longest prefix naming it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("standalone", ("fgrad.tree", "fgrad.config")),
    ("core", ("fgrad.core",)),
    ("process group", ("fgrad.runtime.communicator", "fgrad.runtime.distributed")),
    ("primitives", ("fgrad.ops._util", "fgrad.ops.elementwise", "fgrad.ops.shape", "fgrad.ops.reduction",
                    "fgrad.ops.indexing", "fgrad.ops.contraction", "fgrad.ops.special", "fgrad.ops.window",
                    "fgrad.ops.sort", "fgrad.ops.misc", "fgrad.ops.linalg", "fgrad.ops.linalg_rules",
                    "fgrad.ops.complex_parts", "fgrad.ops.extremum", "fgrad.ops.fft", "fgrad.ops.eig")),
    ("interpreters", ("fgrad.transforms.jvp", "fgrad.transforms.partial_eval", "fgrad.transforms.vjp",
                      "fgrad.transforms.vmap")),
    ("higher-order primitives", ("fgrad.ops",)),
    ("lowering", ("fgrad.lower",)),
    ("backends", ("fgrad.backends",)),
    ("compile", ("fgrad.compile",)),
    ("transforms and runtime", ("fgrad.transforms", "fgrad.runtime", "fgrad.devices", "fgrad.sharding",
                                "fgrad.distributed")),
    ("public face", ("fgrad", "fgrad.numpy", "fgrad.lax", "fgrad.scipy", "fgrad.nn", "fgrad.optim", "fgrad.random",
                     "fgrad.datasets", "fgrad.control_flow")),
]

#: Modules allowed to import each other (see the module doc); collapsed into one node for the cycle check.
MUTUAL = frozenset({"fgrad.ops.elementwise", "fgrad.ops.shape", "fgrad.ops.reduction"})


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)")
    return best


def resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: set[str]) -> list[str]:
    """The fgrad modules an import statement names (``from fgrad.ops import shape`` names the module
    ``fgrad.ops.shape``; ``from fgrad.ops.shape import full`` names ``fgrad.ops.shape``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "fgrad"]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    if base.split(".")[0] != "fgrad":
        return []
    names = [f"{base}.{a.name}" for a in node.names]
    return [n if n in known else base for n in names]


def function_scoped(tree: ast.AST) -> set[int]:
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner.update(id(n) for n in ast.walk(node) if n is not node)
    return inner


def read_imports() -> tuple[dict[str, set[str]], list[str]]:
    """(module -> fgrad modules it imports at top level, descriptions of imports inside functions)."""
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    inside: list[str] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        scoped = function_scoped(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = [t for t in resolve(module, path.name == "__init__.py", node, known) if t != module]
            if not targets:
                continue
            if id(node) in scoped:
                inside.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {', '.join(targets)}")
            else:
                graph[module].update(t for t in targets if t in known or t == "fgrad")
    return graph, inside


def back_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module) and not target.startswith(module + "."):
                bad.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                           f"({LAYERS[layer_of(target)][0]}), a layer above it")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (``MUTUAL`` counted as one node)."""
    def node(m: str) -> str:
        return "fgrad.ops.{elementwise,shape,reduction}" if m in MUTUAL else m
    collapsed: dict[str, set[str]] = {}
    for m, targets in graph.items():
        collapsed.setdefault(node(m), set()).update(node(t) for t in targets if node(t) != node(m))
    # a package's __init__ importing its own submodules is not a cycle with them
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in collapsed.get(v, ()):
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

    for v in sorted(collapsed):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    graph, _ = read_imports()
    for module in graph:
        layer_of(module)


def with_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` plus what importing a module runs first: its packages' ``__init__`` (all but the
    root ``fgrad``, the entry point), whose imports are then the module's too. So a package may
    not gather modules of a layer above its lowest member (``fgrad.ops`` importing ``control``
    would make importing ``fgrad.ops.shape`` pull in the interpreters above it)."""
    full = {m: set(targets) for m, targets in graph.items()}
    for module in graph:
        parts = module.split(".")
        for depth in range(2, len(parts)):
            package = ".".join(parts[:depth])
            full[module] |= {t for t in graph.get(package, ()) if t != module}
    return full


def test_imports_point_down():
    graph, _ = read_imports()
    assert back_arrows(with_package_inits(graph)) == []


def test_no_import_cycles():
    graph, _ = read_imports()
    assert cycles(graph) == []


def test_no_fgrad_import_inside_a_function():
    _, inside = read_imports()
    assert inside == []


def test_no_file_over_1000_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 1000}
    assert long == {}


@pytest.mark.parametrize("violation", ["back arrow", "cycle", "package init"])
def test_the_checks_catch_violations(violation):
    """The checks themselves, on a graph with one deliberate violation."""
    graph = {"fgrad.core.ir": set(), "fgrad.ops.call": {"fgrad.core.ir"}, "fgrad.compile": {"fgrad.ops.call"}}
    if violation == "back arrow":
        graph["fgrad.core.ir"].add("fgrad.compile")
        assert back_arrows(graph) and not back_arrows({k: v for k, v in graph.items() if k != "fgrad.core.ir"})
    elif violation == "package init":
        graph = {"fgrad.ops": {"fgrad.ops.control"}, "fgrad.ops.shape": set(), "fgrad.ops.control": set(),
                 "fgrad.transforms.jvp": {"fgrad.ops.shape"}}
        assert not back_arrows(graph)
        assert back_arrows(with_package_inits(graph)) == [
            "fgrad.ops.shape (primitives) imports fgrad.ops.control (higher-order primitives), a layer above it"]
    else:
        graph["fgrad.ops.call"].add("fgrad.compile")
        assert cycles(graph) == [["fgrad.compile", "fgrad.ops.call"]]
