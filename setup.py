"""Builds transenc._C (the C++ CPU engine in csrc/) and installs kernels/ as transenc.kernels."""
import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

engine = Pybind11Extension(
    "transenc._C",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    depends=sorted(glob.glob("csrc/*.h")),  # so that editing a header rebuilds the engine
    cxx_std=17,
    # The extension is always compiled on the machine that runs it (pip install),
    # so native vector instructions (AVX-512 here) are safe to use.
    extra_compile_args=["-O3", "-march=native", "-fno-math-errno"],
    extra_link_args=["-pthread"],
)

setup(
    ext_modules=[engine],
    cmdclass={"build_ext": build_ext},
)
