"""Builds transenc._C (the C++ CPU engine in csrc/) and installs kernels/ as transenc.kernels."""
import glob
import platform

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

x86_64 = platform.machine().lower() in ("x86_64", "amd64")
engine = Pybind11Extension(
    "transenc._C",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    depends=sorted(glob.glob("csrc/*.h") + glob.glob("csrc/*.inc")),  # editing one rebuilds the engine
    cxx_std=17,
    # One build for any x86-64-v2 CPU it is copied to: a baseline target here, and the vector kernels
    # compiled four times more (AVX2 to AVX512-BF16) and chosen at run time (csrc/variants.h).
    # -fno-trapping-math: nothing reads the FP exception flags, and without it gcc will not vectorise a
    # loop whose float compares or float-to-int conversions might raise one (attention's exp).
    extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", *(["-march=x86-64-v2"] if x86_64 else [])],
    extra_link_args=["-pthread"],
)

setup(
    ext_modules=[engine],
    cmdclass={"build_ext": build_ext},
)
