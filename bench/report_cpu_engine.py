"""Measures the CPU engine against its anchors and writes bench/results/cpu-engine-<cpu>.md.

    PYTHONPATH=. python bench/report_cpu_engine.py [--rounds 3]

Every comparison runs its contenders round-robin in one process (so machine load hits them
alike) and keeps each one's best round. Peak memory is measured in a fresh subprocess per
contender: peak RSS (VmHWM) after running it minus peak RSS once the input data exist. faiss runs
with its OpenBLAS kernels pinned (workloads.pin_faiss_blas_kernels), and once more, in a
subprocess, as it comes (OpenBLAS auto-detection) for the record.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

import workloads as w
from results_writer import write_table

def best_times(contenders: dict, rounds: int) -> dict:
    """Round-robin timing: name -> best seconds over `rounds`."""
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def maxrss_mb() -> float:
    """Peak resident memory of this process so far. VmHWM rather than ru_maxrss: a child's
    ru_maxrss starts from its parent's resident size at fork, which would swamp the probe."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- memory probes: each runs in its own process ---------------------------------------


def probe(name: str) -> dict:
    if name.startswith("topk:"):
        queries, corpus = w.topk_data()
        base = maxrss_mb()
        method = name.split(":", 1)[1]
        if method == "faiss":
            w.topk_faiss(w.faiss_index(corpus), queries)  # IndexFlat keeps its own copy of the corpus
        elif method == "semantic_search":
            w.topk_semantic_search(queries, corpus)
        elif method == "torch":
            w.topk_torch(queries, corpus)
        else:
            w.topk_ours(queries, corpus)
    else:
        a, b = w.pair_data()
        base = maxrss_mb()
        (w.pair_torch if name == "pair:torch" else w.pair_ours)(a, b)
    return {"data_mb": base, "extra_mb": maxrss_mb() - base}


def measure_memory(name: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--probe", name], check=True, capture_output=True, text=True, env=os.environ
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---- the comparisons -------------------------------------------------------------------


def matmul_rates(rounds: int) -> dict:
    """GFLOP/s of torch.mm at 4096 x 384 x 1536 in fp32 and bf16: is a bf16 pass worth it?"""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4096, 384, generator=gen), torch.randn(384, 1536, generator=gen)
    ab, bb = a.bfloat16(), b.bfloat16()
    torch.mm(a, b), torch.mm(ab, bb)  # warm-up
    best = best_times({"fp32": lambda: torch.mm(a, b), "bf16": lambda: torch.mm(ab, bb)}, rounds + 2)
    return {name: 2 * 4096 * 384 * 1536 / t / 1e9 for name, t in best.items()}


def topk_rows(rounds: int) -> list[dict]:
    import faiss

    queries, corpus = w.topk_data()
    index = w.faiss_index(corpus)
    ids = {
        "faiss": w.topk_faiss(index, queries),
        "semantic_search": w.semantic_search_ids(w.topk_semantic_search(queries, corpus)),
        "torch": w.topk_torch(queries, corpus),
        "ours": w.topk_ours(queries, corpus),
    }
    contenders = {
        "faiss": lambda: w.topk_faiss(index, queries),
        "semantic_search": lambda: w.topk_semantic_search(queries, corpus),
        "torch": lambda: w.topk_torch(queries, corpus),
        "ours": lambda: w.topk_ours(queries, corpus),
    }
    best = best_times(contenders, rounds)
    # Single-threaded, like for like: faiss / torch with one OpenMP thread, ours with one worker.
    threads = faiss.omp_get_max_threads(), torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    os.environ["TRANSENC_THREADS"] = "1"
    try:
        best_1t = best_times({"faiss": contenders["faiss"], "ours": contenders["ours"]}, max(1, rounds - 1))
    finally:
        faiss.omp_set_num_threads(threads[0])
        torch.set_num_threads(threads[1])
        del os.environ["TRANSENC_THREADS"]
    memory = {name: measure_memory(f"topk:{name}") for name in contenders}

    labels = {
        "faiss": f"faiss-cpu IndexFlatIP (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'auto')})",
        "semantic_search": "sentence_transformers util.semantic_search",
        "torch": "torch mm + topk (4,096-query chunks)",
    }
    size = f"corpus {w.CORPUS:,} x {w.DIM}, {w.QUERIES:,} queries, k={w.K}, fp32"
    flops = 2 * w.CORPUS * w.QUERIES * w.DIM
    rows = []
    for name, label in labels.items():
        rows.append(
            {
                "what": "exact cosine top-k",
                "size": size,
                "anchor": label,
                "anchor_s": best[name],
                "ours_s": best["ours"],
                "extra": f"ours {w.QUERIES / best['ours']:,.0f} q/s ({flops / best['ours'] / 1e9:.0f} GFLOP/s); "
                f"anchor {w.QUERIES / best[name]:,.0f} q/s",
                "ids": f"anchor {w.ids_agreement(ids[name], ids['faiss']):.2f} / ours {w.ids_agreement(ids['ours'], ids['faiss']):.2f}",
                "mem": f"anchor {memory[name]['extra_mb']:,.0f} / ours {memory['ours']['extra_mb']:,.0f}",
            }
        )
    rows.append(
        {
            "what": "exact cosine top-k, 1 thread each",
            "size": size,
            "anchor": "faiss-cpu IndexFlatIP as above, omp 1 thread; ours TRANSENC_THREADS=1",
            "anchor_s": best_1t["faiss"],
            "ours_s": best_1t["ours"],
            "extra": f"ours {w.QUERIES / best_1t['ours']:,.0f} q/s; anchor {w.QUERIES / best_1t['faiss']:,.0f} q/s",
            "ids": "(as above)",
            "mem": "",
        }
    )
    return rows


def faiss_as_it_comes(rounds: int) -> dict:
    """In this process OPENBLAS_CORETYPE is unset: faiss vs ours, round-robin."""
    queries, corpus = w.topk_data()
    index = w.faiss_index(corpus)
    return best_times({"faiss": lambda: w.topk_faiss(index, queries), "ours": lambda: w.topk_ours(queries, corpus)}, rounds)


def faiss_default_row(rounds: int) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_CORETYPE"}
    env["OPENBLAS_VERBOSE"] = "2"  # each OpenBLAS (numpy's, faiss's) prints the core it picked
    out = subprocess.run(
        [sys.executable, __file__, "--faiss-as-it-comes", "--rounds", str(rounds)],
        check=True, capture_output=True, text=True, env=env,
    )
    best = json.loads(out.stdout.strip().splitlines()[-1])
    said = (out.stdout + out.stderr).splitlines()
    cores = sorted({line.split(":", 1)[1].strip() for line in said if line.startswith("Core:")})
    return {
        "what": "exact cosine top-k",
        "size": f"corpus {w.CORPUS:,} x {w.DIM}, {w.QUERIES:,} queries, k={w.K}, fp32",
        "anchor": f"faiss-cpu IndexFlatIP as installed (OpenBLAS auto-detected cores: {', '.join(cores) or '?'})",
        "anchor_s": best["faiss"],
        "ours_s": best["ours"],
        "extra": f"ours {w.QUERIES / best['ours']:,.0f} q/s; anchor {w.QUERIES / best['faiss']:,.0f} q/s (separate process)",
        "ids": "",
        "mem": "",
    }


def pair_rows(rounds: int) -> list[dict]:
    a, b = w.pair_data()
    ah, bh, ab, bb = a.half(), b.half(), a.bfloat16(), b.bfloat16()
    best = best_times(
        {
            "torch": lambda: w.pair_torch(a, b),
            "floor": lambda: w.read_floor(a, b),
            "ours": lambda: w.pair_ours(a, b),
            "ours_f16": lambda: w.pair_ours(ah, bh),
            "ours_bf16": lambda: w.pair_ours(ab, bb),
        },
        rounds,
    )
    err = float((w.pair_ours(a[:10000], b[:10000]) - w.pair_torch(a[:10000], b[:10000])).abs().max())
    memory = {name: measure_memory(f"pair:{name}") for name in ("torch", "ours")}
    size = f"{w.PAIRS:,} pairs x {w.DIM}"
    gbs = lambda nbytes, t: f"{nbytes / t / 1e9:.1f} GB/s"  # noqa: E731
    fp32_bytes = 2 * a.numel() * 4
    return [
        {
            "what": "pair cosine",
            "size": size + ", fp32",
            "anchor": "torch F.cosine_similarity",
            "anchor_s": best["torch"],
            "ours_s": best["ours"],
            "extra": f"ours {gbs(fp32_bytes, best['ours'])}, anchor {gbs(fp32_bytes, best['torch'])}; max |diff| {err:.1e}",
            "ids": "",
            "mem": f"anchor {memory['torch']['extra_mb']:,.0f} / ours {memory['ours']['extra_mb']:,.0f}",
        },
        {
            "what": "pair cosine vs reading the inputs",
            "size": size + ", fp32",
            "anchor": "torch a.sum() + b.sum() (memory read floor)",
            "anchor_s": best["floor"],
            "ours_s": best["ours"],
            "extra": f"floor {gbs(fp32_bytes, best['floor'])}",
            "ids": "",
            "mem": "",
        },
        {
            "what": "pair cosine, fp16 / bf16 inputs",
            "size": size + ", fp16 / bf16 (no fp32 copy)",
            "anchor": "ours on the fp32 inputs",
            "anchor_s": best["ours"],
            "ours_s": best["ours_bf16"],
            "extra": f"fp16 {best['ours_f16'] * 1e3:,.0f} ms ({gbs(fp32_bytes / 2, best['ours_f16'])}), "
            f"bf16 {best['ours_bf16'] * 1e3:,.0f} ms ({gbs(fp32_bytes / 2, best['ours_bf16'])})",
            "ids": "",
            "mem": "",
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--faiss-as-it-comes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.faiss_as_it_comes:
        print(json.dumps(faiss_as_it_comes(args.rounds)))
        return
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return
    blas_core = w.pin_faiss_blas_kernels()

    import faiss
    import sentence_transformers

    from transenc import _C

    mm = matmul_rates(args.rounds)
    rows = topk_rows(args.rounds) + [faiss_default_row(args.rounds)] + pair_rows(args.rounds)
    ratio = mm["bf16"] / mm["fp32"]
    notes = [
        f"`python bench/report_cpu_engine.py --rounds {args.rounds}`: best of {args.rounds} round-robin rounds per "
        "contender in one process; peak extra memory in a fresh process per contender: peak RSS (VmHWM) after the "
        "call minus peak RSS once the inputs exist (faiss's includes the copy of the corpus IndexFlatIP keeps)",
        f"faiss-cpu {faiss.__version__}, sentence-transformers {sentence_transformers.__version__}; engine threads "
        f"{_C.threads()}, variant {_C.variant()}; faiss's bundled OpenBLAS with OPENBLAS_CORETYPE={blas_core} "
        "(workloads.pin_faiss_blas_kernels); the row 'as installed' lets OpenBLAS pick its kernels itself",
        "Data: random normal rows (numpy seed 0 / 1); top-k rows L2-normalised so IndexFlatIP is cosine",
        "speed-up: anchor time / ours time",
        f"torch.mm 4096 x 384 x 1536: fp32 {mm['fp32']:.0f} GFLOP/s, bf16 {mm['bf16']:.0f} GFLOP/s (bf16 / fp32 = "
        f"{ratio:.2f}): " + ("a bf16 candidate pass with an exact fp32 re-rank could not beat the exact fp32 pass here"
                             if ratio <= 1.0 else "a bf16 candidate pass with an exact fp32 re-rank is worth building"),
    ]
    header = ["what", "size", "anchor", "anchor ms", "ours ms", "speed-up", "ids = faiss, % of queries (anchor / ours)",
              "peak extra memory, MB (anchor / ours)", "notes"]
    table = [[r["what"], r["size"], r["anchor"], f"{r['anchor_s'] * 1e3:,.0f}", f"{r['ours_s'] * 1e3:,.0f}",
              f"{r['anchor_s'] / r['ours_s']:.2f}x", r["ids"], r["mem"], r["extra"]] for r in rows]
    print(write_table("cpu-engine", "CPU engine: `transenc._C` against its anchors", notes, header, table))

if __name__ == "__main__":
    main()
