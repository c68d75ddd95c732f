"""What the GPU machine is sent for bench/gpu_check.sh: .device-data/ (git-ignored, carried; under 60 MiB).

    python scripts/device_data.py              # here, first (needs STS-B and the all-MiniLM-L6-v2 package)
    python scripts/device_data.py --restore    # there (bench/gpu_check.sh runs it): minilm-fp32/

pairs.tsv: 19k pairs over ~30k sentences (the 8,567 unique STS-B pairs, the same lower-cased, random
re-pairings): the labeling workload; stsb_unlabeled.tsv: the 8,567 pairs, the training workload;
sts/: STS-B dev and test; minilm/: the real all-MiniLM-L6-v2 with fp16 weights (45 MB instead of 91).
`--restore` writes minilm-fp32/ with fp32 weights: the original's speed, its values up to fp16
rounding (~5e-4). site/: pytest-benchmark and its dependency (pure Python, not installed there).
"""
from __future__ import annotations

import random
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import workloads as w  # noqa: E402
from transenc.models import resolve_model  # noqa: E402

MINILM_FILES = ("config.json", "config_sentence_transformers.json", "modules.json", "sentence_bert_config.json",
                "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "1_Pooling/config.json")


def write_pairs(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{a}\t{b}\n" for a, b in rows)


def convert_weights(source: Path, target: Path, dtype) -> None:
    from safetensors.torch import load_file, save_file

    save_file({k: v.to(dtype).contiguous() for k, v in load_file(str(source)).items()}, str(target),
              metadata={"format": "pt"})


def copy_distribution(name: str, site: Path) -> None:
    """An installed pure-Python distribution's files, dist-info included (pytest finds plugins by
    their entry points), into `site`; its command-line scripts (outside site-packages) left out."""
    dist = metadata.distribution(name)
    for file in dist.files:
        source = Path(dist.locate_file(file))
        if ".." not in file.parts and source.suffix != ".pyc" and source.is_file():
            (site / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, site / file)


def prepare(out: Path = w.DEVICE_DATA) -> None:
    pairs = w.sts_unique_pairs()
    rows = [pairs.pair_texts(i) for i in range(len(pairs))]
    out.mkdir(exist_ok=True)
    write_pairs(out / "stsb_unlabeled.tsv", rows)
    rows += [(a.lower(), b.lower()) for a, b in rows]
    rng = random.Random(0)
    sentences = sorted({s for pair in rows for s in pair})
    while len(rows) < 19_000:
        rows.append((rng.choice(sentences), rng.choice(sentences)))
    write_pairs(out / "pairs.tsv", rows)
    (out / "sts").mkdir(exist_ok=True)
    for split in ("dev", "test"):
        shutil.copy(w.sts_dir() / f"sts-{split}.csv", out / "sts" / f"sts-{split}.csv")
    model, minilm = resolve_model(None), out / "minilm"
    (minilm / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (minilm / "2_Normalize").mkdir(exist_ok=True)
    for name in MINILM_FILES:
        shutil.copy(model / name, minilm / name)
    convert_weights(model / "model.safetensors", minilm / "model.safetensors", torch.float16)
    needs = [re.split(r"[ <>=!~;\[]", r)[0] for r in metadata.requires("pytest-benchmark") if "extra ==" not in r]
    for name in ["pytest-benchmark"] + [n for n in needs if n != "pytest"]:
        copy_distribution(name, out / "site")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(rows)} pairs over {len(sentences)} sentences, {len(pairs)} unique STS-B pairs, "
          f"MiniLM in fp16 -> {out} ({size / 2**20:.1f} MiB)")


def restore(folder: Path = w.DEVICE_DATA) -> None:
    """minilm/ with fp32 weights, as minilm-fp32/ (the layout `transenc --model DIR` loads)."""
    source, target = folder / "minilm", folder / "minilm-fp32"
    shutil.copytree(source, target, dirs_exist_ok=True)
    convert_weights(source / "model.safetensors", target / "model.safetensors", torch.float32)
    print(f"all-MiniLM-L6-v2 in fp32 -> {target}")


if __name__ == "__main__":
    restore() if "--restore" in sys.argv[1:] else prepare()
