"""A training run's folder: which stages are done (state.json), the figures (metrics.json), and
the files rank 0 alone writes. A stage is marked done only once its outputs are on disk, so
`--resume` restarts at the first unfinished one."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from transenc import distributed
from transenc.errors import TransencError
from transenc.writers import (atomic_dir, atomic_open, check_output_parents, free_space_warning, remove_temporaries,
                              writing)

STAGES = ("bi_label", "cross_train", "cross_label", "bi_train")
# What a failed write of a run says to do: a stage is marked done only once its files are complete.
RESUME_HINT = "free space (or fix the folder's permissions), then rerun with --resume; nothing finished is lost"


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


def _changed(recorded: dict, config: dict, also: dict | None = None) -> list[str]:
    """The settings in which a resumed run differs from the recorded one, `cycles` apart (it may grow);
    of "content", the files whose content changed. `also`: a second value each key may have been
    recorded with by an older transenc. What an older run did not record of content is taken up as
    it was."""
    changed = []
    for key in sorted((set(recorded) | set(config)) - {"cycles"}):
        was, now = recorded.get(key), config.get(key)
        if key == "content" and isinstance(was, dict) and isinstance(now, dict):
            # a file under both names whose content changed; one named anew is its option's change
            changed += [f"what {name} holds" for name in sorted(set(was) & set(now)) if was[name] != now[name]]
        elif was != now and not (key == "content" and was is None) and not (key in (also or {}) and was == also[key]):
            changed.append(_OPTIONS.get(key, "--" + key.replace("_", "-")))
    return changed


_OPTIONS = {"models": "--model", "teachers": "--teacher"}  # the settings by the options that set them


class Run:
    """The state of one training run folder: finished stages, metrics, model paths."""

    def __init__(self, out: Path, config: dict, resume: bool, also_recorded_as: dict | None = None):
        self.out = out
        if out.exists() and not out.is_dir():
            raise TransencError(f"--out {out} is a file; a run is written to a folder")
        check_output_parents(out, "--out")
        self.state_path = out / "state.json"
        if self.state_path.is_file() and not resume:
            raise TransencError(f"{out} already holds a run; pass --resume (resume=True in Python) to continue it or choose another --out")
        if resume and self.state_path.is_file():
            self.state = _read_state(self.state_path)
            recorded = self.state["config"]
            # A run may be resumed with more cycles (continue a finished run), never with fewer.
            if recorded.get("cycles", 0) > config.get("cycles", 0):
                raise TransencError(f"{out} holds a run of {recorded['cycles']} cycles; --resume takes that many or more")
            changed = _changed(recorded, config, also_recorded_as)
            if changed:
                raise TransencError(f"{out} holds a run with other settings ({', '.join(changed)}); --resume needs "
                                    "the same arguments, and files that hold what they held")
            recorded["cycles"] = config.get("cycles")
        else:
            others = _not_a_runs(out)
            if others:
                raise TransencError(f"--out {out} holds files and no run ({', '.join(others[:3])}"
                                    f"{', …' if len(others) > 3 else ''}); a run writes its models, cycles and report "
                                    "there: choose a new or empty folder")
            with writing(out, RESUME_HINT):
                out.mkdir(parents=True, exist_ok=True)
            self.state = {"config": config, "done": [], "metrics": {"cycles": []}}
        self.recorded = self.state_path.is_file()  # else no settings say whose its files are
        self.identity = _identity(out)

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
        self.check_still_there()
        write_text(self.out / "metrics.json", json.dumps(self.state["metrics"], indent=2))
        write_text(self.state_path, json.dumps(self.state, indent=2))  # last: what it marks done is on disk

    def check_still_there(self) -> None:
        """Stops the run (TransencError) if its folder was removed or replaced under it. Its writes do
        not make the folder again, but a new one may be there (another run's, the user's): marking
        the stages before done there would leave a run no --resume can finish."""
        if _identity(self.out) != self.identity:
            raise TransencError(f"{self.out} was removed or replaced while this run wrote to it; the run stops. "
                                "Start it again (in an empty --out)")

    def remove_leftovers(self) -> None:
        """Under the run's claim: what a killed run left half-written (a model, a steps file), and
        the dev scores of one killed before its first state save, which no settings say are of
        this run's models (scores are kept by model name: start-0 may have been another model)."""
        remove_temporaries(self.out.rglob(".*"))
        if not self.recorded:
            for kept in (self.out / SCORES).glob("*.npz"):
                if KEPT_SCORES.fullmatch(kept.name):
                    kept.unlink(missing_ok=True)

    def cycle_metrics(self, cycle: int) -> dict:
        cycles = self.state["metrics"]["cycles"]
        while len(cycles) < cycle:
            cycles.append({"cycle": len(cycles) + 1, "stages": {}})
        return cycles[cycle - 1]

    def folder(self, name: str) -> Path:
        with writing(self.out / name, RESUME_HINT):
            (self.out / name).mkdir(exist_ok=True)
        return self.out / name


# A model's dev scores as DevScores keeps them in out/scores/ (kept_scores_name), and the files'
# names as a new run tells them from the user's
SCORES = "scores"
KEPT_SCORES = re.compile(r"[^/]+@\d+\.\w+\.(dev|test)\.npz")


def kept_scores_name(model: str, length: int, precision: str, split: str) -> str:
    return f"{model}@{length}.{precision}.{split}"  # + ".npz": KEPT_SCORES


def _not_a_runs(out: Path) -> list[str]:
    """The files of a folder without a run's state besides those a run writes before its first
    state save (its start's dev scores, a SimCSE warm-up): the user's, which a run would replace or
    mix with its own. Hidden ones (.DS_Store, temporaries) aside."""
    def a_runs(path: Path) -> bool:
        if path.name == SCORES and path.is_dir() and not path.is_symlink():
            return all(f.name.startswith(".") or KEPT_SCORES.fullmatch(f.name) for f in path.iterdir())
        return re.fullmatch(r"simcse-\d+", path.name) is not None and path.is_dir()

    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and not a_runs(p))


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(folder)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, hint=RESUME_HINT) as f:
        f.write(text)


def save_model(encoder, target: Path, group=None) -> None:
    """The model's folder complete, or not there at all (rank 0 of the group alone writes)."""
    if distributed.is_main(group):
        with atomic_dir(target, RESUME_HINT) as folder:
            encoder.save(folder)


def save_array(path: Path, values: np.ndarray) -> None:
    if distributed.is_main():
        with atomic_open(path, binary=True, hint=RESUME_HINT) as f:
            np.save(f, values)


def check_free_space(out: Path, model_folders: list[str], cycles: int) -> None:
    """Warn, with the figures, when the run's checkpoints (a bi- and a cross-encoder per model and cycle),
    exports (two per model) and the running fit's step save (weights, AdamW's two moments and the best
    weights so far: four times the largest model) will not fit where they go. Labels and scores are
    small beside them."""
    per_model = [sum(f.stat().st_size for f in Path(m).glob("*")
                     if f.suffix in (".safetensors", ".bin") and f.is_file()) for m in model_folders]
    step_save = 4 * max(per_model, default=0)
    warning = free_space_warning(out, sum(per_model) * (2 * cycles + 2) + step_save)
    if warning and distributed.is_main():
        print(warning, file=sys.stderr)
