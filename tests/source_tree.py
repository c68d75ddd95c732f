"""Import `transenc` and `transenc.kernels` from this source tree, whatever is installed.

setup.py maps the package `transenc.kernels` to the top-level folder kernels/, which only an
install (or an editable install of *this* checkout) knows about. An in-place build
(`setup.py build_ext --inplace`) or an editable install of another checkout would leave
`transenc.kernels` missing or pointing elsewhere, and the tests would check the wrong code.
`use_source_tree()` registers kernels/ under its package name, so `transenc.ops` and the tests
both use the kernels beside them.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def use_source_tree():
    """Returns the `transenc.kernels` package loaded from REPO/kernels."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import transenc

    if Path(transenc.__file__).resolve().parent != REPO / "transenc":
        raise ImportError(f"transenc was imported from {transenc.__file__}, not from {REPO}; "
                          f"run with PYTHONPATH={REPO} (or from the repository root)")
    name, folder = "transenc.kernels", REPO / "kernels"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve().parent == folder:
        return loaded
    for sub in [m for m in sys.modules if m.startswith(name + ".")]:
        del sys.modules[sub]
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    transenc.kernels = package
    return package
