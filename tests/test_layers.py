"""The package's layering: every module imports only modules of its own layer or below, and no
two modules import each other (directly or around a circle). Imports are read with ast, those
inside functions included.

The package is transenc/ and kernels/, which pyproject.toml installs as transenc.kernels
(package-dir); a module is named by its path below transenc: "ops", "kernels" (kernels/__init__.py),
"kernels.pair_cosine". transenc/__init__.py is left out: it loads the API lazily, by name."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Dotted package name below transenc -> its source folder.
PACKAGES = {"": ROOT / "transenc", "kernels": ROOT / "kernels"}

# Top to bottom.
LAYERS = [
    ["__main__"],
    ["cli"],
    ["api"],
    ["training"],
    ["export"],
    ["labeling", "mining", "mine_checkpoint", "metrics", "report", "dev_scores", "selection", "train_config",
     "model_card"],
    ["models", "kept_rows", "fit", "distributed", "quantize", "bert", "recipes", "run_folder", "dropout"],
    ["ops", "packing", "readers", "writers", "claims"],
    ["pairset", "tokens", "wordpiece", "errors", "precision", "progress", "bundled", "reference", "lengths"],
    # The engine, below everything: the C++ extension and the Triton kernels, which import nothing
    # from transenc but their own package's helpers (kernels/__init__.py, the last layer).
    ["_C", "kernels.pair_cosine", "kernels.cosine_topk"],
    ["kernels"],
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_files() -> dict[str, Path]:
    """Every module of the package by its dotted name below transenc."""
    files = {}
    for package, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            if path.stem == "__init__":
                if package:
                    files[package] = path
            else:
                files[f"{package}.{path.stem}".lstrip(".")] = path
    return files


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The transenc modules a file imports, anywhere in it, relative imports included. Importing
    a.b also imports the package a; a name imported from a package is its submodule where there
    is one, else the package itself. Names imported from transenc itself are modules (_C among
    them, which has no .py file)."""
    package = name.split(".")[:-1] if path.stem != "__init__" else name.split(".")
    targets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]  # level 1: this package
                parts = ["transenc", *base, *(node.module.split(".") if node.module else [])]
            else:
                parts = node.module.split(".")
            if parts[0] != "transenc":
                continue
            source = ".".join(parts[1:])
            for alias in node.names:
                sub = f"{source}.{alias.name}".lstrip(".")
                targets.append(sub if not source or sub in modules else source)
        elif isinstance(node, ast.Import):
            targets += [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("transenc.")]
    found = set()
    for target in targets:
        parts = target.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return found


def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) - {name} for name, path in files.items()}


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


def _fake_package(root: Path, monkeypatch, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(__import__(__name__), "PACKAGES", {"": root / "transenc", "kernels": root / "kernels"})


def _failures(*checks) -> list[str]:
    failed = []
    for check in checks:
        try:
            check()
        except AssertionError as e:
            failed.append(str(e))
            continue
        raise AssertionError(f"{check.__name__} passed on a package with an upward import and a circle")
    return failed


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The test itself can fail: a made-up package with both faults."""
    _fake_package(tmp_path, monkeypatch, {
        "transenc/errors.py": "from transenc.api import train\n",
        "transenc/api.py": "def f():\n    from transenc import errors\n",
    })
    assert graph() == {"errors": {"api"}, "api": {"errors"}}
    _failures(test_no_module_imports_one_above_it, test_no_import_circle)


def test_the_checks_see_the_kernels_import_ops(tmp_path, monkeypatch):
    """The circle there was: ops imports a kernel inside a function, and the kernel imported the
    float64 references back from ops. Relative imports in kernels/ are resolved too."""
    _fake_package(tmp_path, monkeypatch, {
        "transenc/ops.py": "from transenc import _C\n\ndef f():\n    from transenc.kernels import pair_cosine as kernel\n",
        "transenc/reference.py": "import torch\n",
        "kernels/__init__.py": "import torch\n",
        "kernels/pair_cosine.py": "from transenc.kernels import capability, measured\n"
                                  "from transenc.ops import pair_cosine_reference  # noqa: E402\n",
        "kernels/cosine_topk.py": "from . import capability\nfrom .. import reference\n",
    })
    assert graph() == {"ops": {"_C", "kernels", "kernels.pair_cosine"}, "reference": set(), "kernels": set(),
                       "kernels.pair_cosine": {"kernels", "ops"}, "kernels.cosine_topk": {"kernels", "reference"}}
    upward, circle = _failures(test_no_module_imports_one_above_it, test_no_import_circle)
    assert "kernels.cosine_topk -> reference" in upward and "kernels.pair_cosine -> ops" in upward
    assert "kernels.pair_cosine -> ops -> kernels.pair_cosine" in circle
