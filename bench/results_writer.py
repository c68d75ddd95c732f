"""Markdown results tables that name the machine they were measured on: the CPU, or the CUDA card."""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

# TRANSENC_BENCH_RESULTS: another folder (bench/gpu_check.sh collects its files in one)
RESULTS = Path(os.environ.get("TRANSENC_BENCH_RESULTS", Path(__file__).parent / "results"))
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


def machine(device: str = "cpu") -> tuple[str, str]:
    """(the machine's name for file names, a line describing it)."""
    import torch
    import transformers

    if device.startswith("cuda"):
        import triton

        card = torch.cuda.get_device_name(device)
        return card, (f"{card} ({torch.cuda.get_device_properties(device).multi_processor_count} SMs), torch "
                      f"{torch.__version__}, transformers {transformers.__version__}, triton {triton.__version__}, "
                      f"CUDA {torch.version.cuda}")
    name, features = cpu()
    return name, (f"{name}, {os.cpu_count()} logical CPUs, features: {' '.join(features) or 'none of ' + ', '.join(FEATURES)}; "
                  f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads; "
                  f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


def write_table(stem: str, title: str, notes: list[str], header: list[str], rows: list[list],
                device: str = "cpu", folder: Path = RESULTS) -> Path:
    """<folder>/<stem>-<machine>.md: the title, the machine, notes as bullets, then the table."""
    name, line = machine(device)
    path = Path(folder) / f"{stem}-{slug(name)}.md"
    lines = [f"# {title}", "", f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {line}.", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
