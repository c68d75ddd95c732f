"""README.md of an exported model, in the manner of sentence-transformers' model cards: what it was
trained from and how, its dev and test figures (start -> exported, from metrics.json), how to load it."""
from __future__ import annotations

from transenc.metrics import figure


def _figures(before: dict | None, after: dict | None, k: int) -> list[str]:
    """A table row per set: metric, start, exported, difference (two decimals, as metrics.json rounds to)."""
    if not before or not after:
        return []
    rows = []
    for name, s in before["sets"].items():
        if name in after["sets"]:
            a, b = s["models"][k], after["sets"][name]["models"][k]
            rows.append(f"| {name} | {s['metric']} x 100 | {figure(a)} | {figure(b)} | {figure(b - a, '+')} |")
    return rows


def model_card(name: str, k: int, metrics: dict, config: dict) -> str:
    """The card of out/NAME (bi, cross, bi-K, cross-K): model k of the run's start models."""
    kind = "bi" if name.startswith("bi") else "cross"
    start = metrics["start"]
    exported_start = metrics.get("exported", {}).get(name, {}).get("model") == "start"
    cycle = metrics["best_cycle"][name]
    stages = metrics["cycles"][cycle - 1]["stages"]
    after = start if exported_start else stages["bi_train" if kind == "bi" else "cross_label"]
    lengths = metrics["lengths"][k]
    fit = stages["bi_train" if kind == "bi" else "cross_train"]["models"][k]
    start_name, given = metrics["start_names"][k], config["models"][k]  # as named, and as given on the command line
    named = f"`{start_name}`" + (f" ({given})" if given != start_name else "")
    if config.get("simcse"):  # the run's start is the warm-up's model, not the one named
        named += ", after a SimCSE warm-up on the pairs"
    with_dev = bool(start.get("dev"))
    what = ("the start model itself: no trained bi-encoder beat it beyond dev's noise (do no harm)" if exported_start
            else f"cycle {cycle} of {len(metrics['cycles'])}, " + ("chosen on dev" if with_dev else "the last (no dev set)"))
    if exported_start:  # the run's figures, but not its lengths and precision: this model was not trained
        how = (f"- length: used and exported at {lengths[kind + '_export']} tokens (`max_seq_length`)\n"
               f"- the run's bi-encoders, trained at {lengths[kind]} tokens with {fit.get('precision', 'fp32')} steps, were not kept")
    else:
        how = (f"- lengths: trained at {lengths[kind]} tokens; used and exported at {lengths[kind + '_export']} (`max_seq_length`)\n"
               f"- precision: training steps {fit.get('precision', 'fp32')}, labeling and dev checks {metrics['precision']['labeling']}")
    # a cross-encoder's start is the start bi-encoder's cosine: there is no start cross-encoder
    start_column = "start" if kind == "bi" else "start bi-encoder"
    rows = [f"## {split}\n\n| set | metric | {start_column} | exported | change |\n|---|---|---:|---:|---:|\n"
            + "\n".join(_figures(start.get(split), after.get(split), k)) + "\n"
            for split in ("dev", "test") if _figures(start.get(split), after.get(split), k)]
    tables = "\n".join(rows) or "No dev or test set was given."
    chose = ("Dev chose the cycle and\nthe checkpoint; test was never used to choose." if with_dev else
             "With no dev set, the last\ncycle's last step is exported; test was never used to choose.")
    if kind == "bi":
        load = ("from sentence_transformers import SentenceTransformer\n\n"
                f"model = SentenceTransformer(\"{name}\")\n"
                "embeddings = model.encode([\"A man is playing a guitar.\", \"Someone plays an instrument.\"])")
    else:
        load = ("from sentence_transformers import CrossEncoder\n\n"
                f"model = CrossEncoder(\"{name}\")\n"
                "scores = model.predict([(\"A man is playing a guitar.\", \"Someone plays an instrument.\")])")
    return f"""---
library_name: sentence-transformers
tags:
- transenc
- trans-encoder
- {"sentence-similarity" if kind == "bi" else "cross-encoder"}
---

# {name}: a Trans-Encoder {kind}-encoder

Trained without labels by transenc (Trans-Encoder, Liu et al., ICLR 2022) from
{named}: {what}.

- pairs: {metrics["pairs"]["count"]:,} unlabeled pairs over {metrics["pairs"]["sentences"]:,} sentences
- recipe: `{config["recipe"]}`, seed {config["seed"]}; co-teachers: {", ".join(config["teachers"]) or "none"}
{how}

{tables}
Scored by transenc in {metrics["precision"]["labeling"]} at {lengths[kind + "_export"]} tokens (the run's dev-check precision). {chose}

## Usage

```python
{load}
```
"""
