"""GPU: our packed CrossEncoder.predict and BiEncoder.encode against sentence-transformers on the
same random weights, MiniLM-L6-sized and BERT-base-sized, on .device-data/pairs.tsv
(bench/prepare_device_data.py). Writes models-<card>.md to --out.

    python bench/gpu_models.py --out bench/results        # on a CUDA machine
    python bench/gpu_models.py --dry-run --out /tmp/x     # tiny, on the CPU: exercises the code
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transenc.labeling import bi_scores  # noqa: E402
from transenc.models import BiEncoder, CrossEncoder  # noqa: E402
from transenc.packing import padding_efficiency  # noqa: E402
from transenc.readers import read_pairs  # noqa: E402

DATA = REPO / ".device-data"


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, warm_rows: int = 2048):
    """Seconds of one fn(None) (every row), after fn(warm_rows) (a slice) has warmed the CUDA
    context, the kernels and the allocator: one full run each keeps the stage inside its budget."""
    fn(warm_rows)
    sync()
    t = time.perf_counter()
    result = fn(None)
    sync()
    return time.perf_counter() - t, result


def build_models(size: str, folder: Path, dry: bool):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(DATA / "tokenizer"))
    if dry:
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64)
    elif size == "minilm-l6":
        config = BertConfig.from_pretrained(str(DATA / "tokenizer"))
    else:
        config = BertConfig(vocab_size=tokenizer.vocab_size)  # bert-base: 768 x 12 layers
    torch.manual_seed(0)
    bi_dir, cross_dir = folder / f"{size}-bi", folder / f"{size}-cross"
    BertModel(config).save_pretrained(str(bi_dir))
    tokenizer.save_pretrained(str(bi_dir))
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(str(cross_dir))
    tokenizer.save_pretrained(str(cross_dir))
    CrossEncoder.load(cross_dir, "cpu", max_length=128).save(cross_dir)  # the sigmoid activation, for ST
    return bi_dir, cross_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    from sentence_transformers import CrossEncoder as STCrossEncoder, SentenceTransformer

    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    pairs, _ = read_pairs(DATA / "pairs.tsv")
    if args.dry_run:
        from transenc.pairset import PairSet

        pairs = PairSet(pairs.sentences[:400], pairs.pairs[(pairs.pairs < 400).all(1)][:200])
    texts = [pairs.pair_texts(i) for i in range(len(pairs))]
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu-dry-run"
    lines = [f"# Cross-encoder predict and encode on {card}", "",
             f"{len(pairs):,} pairs over {len(pairs.sentences):,} sentences (STS-B based, .device-data/pairs.tsv); "
             f"random weights; torch {torch.__version__}. Anchors: sentence-transformers CrossEncoder.predict "
             "(batch 128) and SentenceTransformer.encode (batch 32, its default), fp32 as they run by default. "
             "Ours: precision auto (bf16 autocast on the GPU), length-sorted token-budget batches; ours s counts "
             "tokenizing, as the anchors do (in brackets: from a ready token cache). One timed run each, after a "
             "2,048-row warm-up.", "",
             "| model | what | anchor s | ours s | ours per s | speed-up | agreement | padding eff. |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    folder = Path(tempfile.mkdtemp(prefix="transenc-gpu-models-"))
    for size in ("minilm-l6", "bert-base"):
        bi_dir, cross_dir = build_models(size, folder, args.dry_run)
        st_ce = STCrossEncoder(str(cross_dir), device=device, max_length=128)
        ours_ce = CrossEncoder.load(cross_dir, device, max_length=128)
        t_a, s_a = timed(lambda n: np.asarray(st_ce.predict(texts[:n], batch_size=128, show_progress_bar=False)))
        # ours from the texts (tokenizing included, as the anchor), and from a ready token cache
        t_o, s_o = timed(lambda n: ours_ce.predict(pairs.sentences, pairs.pairs[:n], batch_size=256,
                                                   show_progress=False))
        cache = ours_ce.token_cache(pairs.sentences)
        t_m, _ = timed(lambda n: ours_ce.predict(cache, pairs.pairs[:n], batch_size=256, show_progress=False))
        eff = padding_efficiency(ours_ce.batches(cache, pairs.pairs, 256))
        rho = spearmanr(s_a, s_o).statistic
        lines.append(f"| {size} | cross-encoder predict | {t_a:.2f} | {t_o:.2f} ({t_m:.2f}) | {len(pairs) / t_o:,.0f} pairs | "
                     f"{t_a / t_o:.1f}x | Spearman vs anchor {rho:.4f} | {eff:.3f} |")
        del st_ce, ours_ce
        st_bi = SentenceTransformer(str(bi_dir), device=device)
        ours_bi = BiEncoder.load(bi_dir, device)
        t_a, e_a = timed(lambda n: st_bi.encode(pairs.sentences[:n], batch_size=32, convert_to_tensor=True,
                                                show_progress_bar=False))
        t_o, e_o = timed(lambda n: ours_bi.encode(pairs.sentences[:n], batch_size=256, show_progress=False))
        cos = torch.nn.functional.cosine_similarity(e_a.float().cpu(), e_o, dim=1).min().item()
        lines.append(f"| {size} | bi-encoder encode | {t_a:.2f} | {t_o:.2f} | {len(pairs.sentences) / t_o:,.0f} sentences | "
                     f"{t_a / t_o:.1f}x | min cosine vs anchor {cos:.4f} | |")
        t_l, _ = timed(lambda n: bi_scores(ours_bi, pairs if n is None else pairs.head(n), batch_size=256,
                                           show_progress=False))
        lines.append(f"| {size} | bi-label (encode + fused pair cosine) | | {t_l:.2f} | {len(pairs) / t_l:,.0f} pairs | | | |")
        del st_bi, ours_bi
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-")
    (out / f"models-{slug}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
