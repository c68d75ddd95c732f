"""Results tables: markdown files named after the machine they were measured on (the CPU, or the CUDA
card). bench/conftest.py hands each benchmark file its Table and writes it when the session ends."""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Callable

from transenc import _C
from transenc.precision import cpu_flags

# TRANSENC_BENCH_RESULTS: another folder (bench/gpu_check.sh collects its files in one)
RESULTS = Path(os.environ.get("TRANSENC_BENCH_RESULTS", Path(__file__).parent / "results"))
# CPU features that decide which arithmetic is fast: int8 dot products, bf16, matrix units
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# The widest of them ends a CPU table's file name: one model name ("AMD EPYC") covers CPUs from AVX2
# alone to AVX512-BF16, whose figures differ by design. (Tables made before 2026-12-03 lack it.)
TIERS = (("amx_int8", "amx"), ("avx512_bf16", "avx512-bf16"), ("avx512_vnni", "avx512-vnni"),
         ("avx_vnni", "avx-vnni"), ("avx512f", "avx512"), ("avx2", "avx2"))


def machine(device: str = "cpu") -> tuple[str, str]:
    """(the machine's name for file names, a CPU's with its widest feature tier; a line describing it)."""
    import torch
    import transformers

    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    if device.startswith("cuda"):
        import triton

        card = torch.cuda.get_device_name(device)
        return card, (f"{card} ({torch.cuda.get_device_properties(device).multi_processor_count} SMs), {versions}, "
                      f"triton {triton.__version__}, CUDA {torch.version.cuda}")
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    name, features = (models or ["unknown CPU"])[0], [f for f in FEATURES if f in cpu_flags()]
    tier = next((label for flag, label in TIERS if flag in cpu_flags()), "")
    return f"{name} {tier}", (f"{name}, {os.cpu_count()} logical CPUs, features: {' '.join(features) or 'none of ' + ', '.join(FEATURES)}; "
                  f"engine variant {_C.variant()}; {versions}, {torch.get_num_threads()} threads; "
                  f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


class Table:
    """One results table: the benchmarks put what they measured in `measured` (keys of their own choosing), and
    `rows(measured)` makes rows of whatever is there, so that a partial run (-k) writes the rows of what ran."""

    def __init__(self, stem: str, title: str, header: list[str], rows: Callable[[dict], list[list]], device: str):
        self.stem, self.title, self.header, self.rows, self.device = stem, title, header, rows, device
        self.measured: dict = {}
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """A bullet above the table, said once however many benchmarks say it."""
        if text and text not in self.notes:
            self.notes.append(text)

    def write(self, folder: Path = RESULTS) -> Path | None:
        """<folder>/<stem>-<machine>.md: the title, the machine, the notes, then the table; None (no
        file) where none of the table's benchmarks ran."""
        rows = self.rows(self.measured) if self.measured else []
        if not rows:
            return None
        name, line = machine(self.device)
        slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((R|TM)\)", "", name, flags=re.I).lower()).strip("-")
        cells = lambda row: "| " + " | ".join(str(c) for c in row) + " |"  # noqa: E731
        lines = [f"# {self.title}", "", f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {line}.", "",
                 *[f"- {n}" for n in self.notes], "", cells(self.header),
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.header))) + "|",
                 *map(cells, rows)]
        path = Path(folder) / f"{self.stem}-{slug}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path
