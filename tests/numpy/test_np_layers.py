"""fgrad.numpy's submodules import each other at module top only, and one way
(the order fgrad/numpy/__init__.py's docstring gives)."""
import ast
from pathlib import Path

import fgrad.numpy

NUMPY_DIR = Path(fgrad.numpy.__file__).parent
ORDER = ["_util", "_dtypes", "_math", "_indexing", "_manip", "_sorting", "_reductions", "_creation", "_linalg",
         "_setops", "_statistics", "_index_tricks", "_math_extra", "_pad", "_polynomial", "_ufunc", "_interop", "_view", "_namespace"]


def _imports(path: Path) -> tuple[set[str], list[str]]:
    """The fgrad.numpy submodules ``path`` imports at top level, and any fgrad import inside a function."""
    tree = ast.parse(path.read_text())
    top = {node.module.rsplit(".", 1)[1] for node in tree.body
           if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fgrad.numpy._")}
    nested = [f"{path.name}:{inner.lineno}" for fn in ast.walk(tree)
              if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              for inner in ast.walk(fn)
              if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("fgrad")
              or isinstance(inner, ast.Import) and any(a.name.startswith("fgrad") for a in inner.names)]
    return top, nested


def test_every_submodule_is_in_the_order():
    assert sorted(p.stem for p in NUMPY_DIR.glob("_*.py") if p.stem != "__init__") == sorted(ORDER)


def test_submodules_import_at_top_and_only_those_below():
    for name in ORDER:
        top, nested = _imports(NUMPY_DIR / f"{name}.py")
        assert not nested, f"fgrad imports inside functions: {nested}"
        above = top - set(ORDER[:ORDER.index(name)])
        assert not above, f"{name} imports {sorted(above)}, which come after it in the order"
