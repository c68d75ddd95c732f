"""Markdown results tables that name the machine they were measured on."""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# CPU features that decide which arithmetic is fast: int8 dot products, bf16, matrix units
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and which of FEATURES it has."""
    name, flags = "unknown CPU", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    return name, [f for f in FEATURES if f in flags]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((R|TM)\)", "", text, flags=re.I).lower()).strip("-")


def machine_line() -> str:
    import torch

    name, features = cpu()
    return (f"{name}, {os.cpu_count()} logical CPUs, features: {' '.join(features) or 'none of ' + ', '.join(FEATURES)}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
            f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


def write_table(stem: str, title: str, notes: list[str], header: list[str], rows: list[list]) -> Path:
    """bench/results/<stem>-<cpu>.md: the title, the machine, notes as bullets, then the table."""
    path = RESULTS / f"{stem}-{slug(cpu()[0])}.md"
    lines = [f"# {title}", "", f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {machine_line()}.", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
