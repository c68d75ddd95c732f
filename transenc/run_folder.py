"""A training run's folder: which stages are done (state.json), the figures (metrics.json), and
the files rank 0 alone writes. A stage is marked done only once its outputs are on disk, so
`--resume` restarts at the first unfinished one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from transenc import distributed
from transenc.errors import TransencError
from transenc.writers import atomic_open

STAGES = ("bi_label", "cross_train", "cross_label", "bi_train")


def _read_state(path: Path) -> dict:
    """state.json as Run writes it, or a clear error (a damaged file must not end in a traceback)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TransencError(f"{path}: cannot resume, the run's state is damaged ({e}); "
                            "start again with another --out") from None
    fields = {"config": dict, "done": list, "metrics": dict}
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in fields.items()):
        raise TransencError(f"{path}: cannot resume, the run's state is damaged (expected an object with "
                            "'config', 'done' and 'metrics'); start again with another --out")
    return state


class Run:
    """The state of one training run folder: finished stages, metrics, model paths."""

    def __init__(self, out: Path, config: dict, resume: bool):
        self.out = out
        if out.exists() and not out.is_dir():
            raise TransencError(f"--out {out} is a file; a run is written to a folder")
        self.state_path = out / "state.json"
        if self.state_path.is_file() and not resume:
            raise TransencError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        if resume and self.state_path.is_file():
            self.state = _read_state(self.state_path)
            recorded = self.state["config"]
            # A run may be resumed with more cycles (continue a finished run), never with fewer.
            if recorded.get("cycles", 0) > config.get("cycles", 0):
                raise TransencError(f"{out} holds a run of {recorded['cycles']} cycles; --resume takes that many or more")
            if {**recorded, "cycles": None} != {**config, "cycles": None}:
                raise TransencError(f"{out} holds a run with other settings; --resume needs the same arguments")
            recorded["cycles"] = config.get("cycles")
        else:
            out.mkdir(parents=True, exist_ok=True)
            self.state = {"config": config, "done": [], "metrics": {"cycles": []}}

    @property
    def metrics(self) -> dict:
        return self.state["metrics"]

    def done(self, key: str) -> bool:
        return key in self.state["done"]

    def finish(self, key: str) -> None:
        self.state["done"].append(key)
        self.save()

    def save(self) -> None:
        if not distributed.is_main():  # under torchrun every rank keeps the state, rank 0 writes it
            return
        with atomic_open(self.state_path) as f:
            json.dump(self.state, f, indent=2)
        with atomic_open(self.out / "metrics.json") as f:
            json.dump(self.state["metrics"], f, indent=2)

    def cycle_metrics(self, cycle: int) -> dict:
        cycles = self.state["metrics"]["cycles"]
        while len(cycles) < cycle:
            cycles.append({"cycle": len(cycles) + 1, "stages": {}})
        return cycles[cycle - 1]


def save_model(encoder, target: Path) -> None:
    if distributed.is_main():
        encoder.save(target)


def save_array(path: Path, values: np.ndarray) -> None:
    if distributed.is_main():
        np.save(path, values)
