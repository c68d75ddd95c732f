"""The package's layering: every module imports only modules of its own layer or below, and no
two modules import each other (directly or around a circle). Imports are read with ast, those
inside functions included."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "transenc"

# Top to bottom. The engine (_C, the Triton kernels) is below everything.
LAYERS = [
    ["__main__"],
    ["cli"],
    ["api"],
    ["training", "labeling", "mining", "evaluate", "report"],
    ["models", "fit", "distributed", "quantize", "bert"],
    ["ops", "packing", "readers", "writers"],
    ["pairset", "tokens", "wordpiece", "errors", "precision", "progress", "bundled"],
    ["_C", "kernels"],
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def imports_of(path: Path) -> set[str]:
    """The transenc modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "transenc":
                found |= {alias.name for alias in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("transenc.")}
    return found


def graph() -> dict[str, set[str]]:
    return {p.stem: imports_of(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_every_module_has_a_layer():
    modules = set(graph()) | {m for deps in graph().values() for m in deps}
    assert not modules - set(LEVEL), f"place these modules in LAYERS: {sorted(modules - set(LEVEL))}"


def test_no_module_imports_one_above_it():
    upward = [f"{m} -> {d}" for m, deps in graph().items() for d in deps if LEVEL[d] < LEVEL[m]]
    assert not upward, "imports that point up a layer: " + ", ".join(sorted(upward))


def test_no_import_circle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(edges.get(module, ())):
            assert state.get(dep) != 1, "import circle: " + " -> ".join(path + [module, dep])
            if dep not in state:
                visit(dep, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The test itself can fail: a made-up package with both faults."""
    (tmp_path / "errors.py").write_text("from transenc.api import train\n")
    (tmp_path / "api.py").write_text("def f():\n    from transenc import errors\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    assert graph() == {"errors": {"api"}, "api": {"errors"}}
    for check in (test_no_module_imports_one_above_it, test_no_import_circle):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} passed on a package with an upward import and a circle")
