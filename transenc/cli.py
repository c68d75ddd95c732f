"""The `transenc` command: label, eval, mine, train, data."""
from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from transenc.errors import TransencError, cosine_problem, count_problem
from transenc.precision import DEVICE_HELP, PRECISIONS

STSB_URL = "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz"


def _checked(parse, problem_of):
    """An argparse type: `parse`, then the rule of transenc.errors that the API's keyword obeys too."""
    def check(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = text
        problem = problem_of(value, text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    return check


_positive = _checked(int, count_problem)
_cosine = _checked(float, cosine_problem)


def _file_or_standard_output(text: str) -> str | None:
    """--out as argparse reads it: - is standard output, as it is standard input for the input flags."""
    return None if text == "-" else text


MODE_HELP = ("bi: the cosine of a bi-encoder's two embeddings (default); cross: a cross-encoder's score in [0, 1] "
             "(--model: one transenc train exported, e.g. runs/demo/cross)")


def _add_model_args(p: argparse.ArgumentParser, batch_default: str = "128 bi, 64 cross, 32 cross in int8") -> None:
    p.add_argument("--model", default=None, help="model directory or hub name (default: all-MiniLM-L6-v2)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="rows per batch, on average; batches are length-sorted and on a CPU hold at most 2,048 tokens "
                        f"(default: {batch_default})")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: bf16 on a GPU; on a CPU bf16 where it has AMX, else int8 where it has VNNI or AVX2, "
                        "else fp32 (each measured to agree with fp32); fp32 is exact")


class _Parser(argparse.ArgumentParser):
    """argparse's, with a bad argument said in one line, as every other refusal is (its default prints
    the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"transenc: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="transenc", description="Unsupervised sentence-pair modelling (Trans-Encoder).")
    import transenc  # the package itself, loaded already: its __version__

    parser.add_argument("--version", action="version", version=f"transenc {transenc.__version__}")
    # the commands listed where one is missing ("required: command" would name none)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")

    p = sub.add_parser("label", help="score sentence pairs with a bi-encoder or a cross-encoder")
    p.add_argument("--pairs", required=True,
                   help="pairs file: .tsv, .csv, .jsonl, s1||s2 lines, or STS-B csv; - reads standard input")
    p.add_argument("--format", choices=("tsv", "csv", "jsonl", "bars", "sts"), help="input format (default: by extension)")
    p.add_argument("--mode", choices=("bi", "cross"), default="bi", help=MODE_HELP)
    p.add_argument("--out", type=_file_or_standard_output,
                   help="output file: .tsv (s1, s2, score), .jsonl, or .npy (the float32 scores alone, row i for "
                        "pair i); default, or -: TSV on standard output")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="raise (default): stop at the first bad input line, naming it; skip: leave bad lines out")
    p.add_argument("--chunk-pairs", type=_positive, default=None,
                   help="pairs read, scored and written at a time (default 65536): memory grows with the unique "
                        "sentences (bi), not with the pairs")
    p.add_argument("--resume", action="store_true",
                   help="go on with a stopped run's --out (its complete chunks, and in bi mode its embeddings, "
                        "are kept) where the pairs file, model and settings are the same")
    _add_model_args(p)

    p = sub.add_parser("eval", help="Spearman x 100 on STS sets, or ROC AUC x 100 on 0/1-labeled pairs")
    p.add_argument("--data", required=True, help="a labeled pairs file (- reads standard input), or a folder with "
                                                 "sts-dev.csv/sts-test.csv (STS-B) or SentEval STS12-16/SICK-R")
    p.add_argument("--mode", choices=("bi", "cross"), default="bi", help=MODE_HELP)
    p.add_argument("--metric", choices=("spearman", "auc", "auto"), default="auto",
                   help="auto (default): ROC AUC x 100 where every gold label is 0 or 1, as train's dev checks, else "
                        "Spearman x 100; the metric of each set is said on standard error")
    p.add_argument("--json", help="also write the scores to this JSON file")
    _add_model_args(p)

    p = sub.add_parser("mine", help="candidate pairs from unpaired sentences by exact cosine top-k")
    p.add_argument("--sentences", required=True, help="text file, one sentence per line; - reads standard input")
    p.add_argument("--k", type=_positive, default=5, help="neighbours per sentence (default 5)")
    p.add_argument("--min-score", type=_cosine, default=None,
                   help="drop pairs under this cosine, -1 to 1 (default: keep every pair)")
    p.add_argument("--out", type=_file_or_standard_output,
                   help="pairs file to write (TSV: s1, s2, cosine); default, or -: standard output")
    p.add_argument("--resume", action="store_true",
                   help="go on with the work a stopped run kept for --out (its embeddings and the neighbours "
                        "found) where the sentences file, model and settings are the same")
    _add_model_args(p, batch_default="128")

    p = sub.add_parser("train", help="Trans-Encoder: bi->cross->bi distillation cycles without labels")
    from transenc.train_config import add_train_args

    add_train_args(p)

    p = sub.add_parser("report", help="RUN_DIR/report.html: curves, label plots and scores of a training run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a transenc train --out folder")

    p = sub.add_parser("data", help="download STS-B (needs network access)")
    p.add_argument("--out", default="data", help="folder to put stsbenchmark/ in (default: data)")
    parser.commands = sub.choices  # {name: its parser}
    return parser


def cmd_label(args) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from transenc.readers import CHUNK_PAIRS, PairReader, is_stream
    from transenc.writers import check_output_file, output_format, written_in_place

    check_output_file(args.out, "--out", args.pairs)
    out_format = output_format(args.out)
    if out_format == "npy" and args.on_error == "skip":
        raise TransencError(f"--out {args.out} holds the scores alone, row i for pair i: with --on-error skip they "
                            "would no longer match the input's pairs; write .tsv or .jsonl, which name them")
    streamed = is_stream(Path(args.pairs))  # cannot be read again: nothing to resume from
    if args.resume and (not args.out or streamed):
        raise TransencError("--resume needs --out and a --pairs file: it goes on with the output file a stopped "
                            "run left, for the same pairs")
    reader = PairReader(args.pairs, args.format, args.on_error)
    chunk_pairs = args.chunk_pairs or CHUNK_PAIRS
    # the file's first pass (bi: its sentences; cross: its pairs counted) runs while torch is
    # imported and the model loads
    pool = ThreadPoolExecutor(1)
    first_pass = pool.submit(reader.first_pass, chunk_pairs, sentences=args.mode == "bi")
    pool.shutdown(wait=False)  # the pass runs on; its thread ends with it

    from transenc import distributed
    from transenc.models import resolve_device

    device = distributed.setup(resolve_device(args.device))  # under torchrun: every rank labels a share
    if args.resume and distributed.active():
        raise TransencError("--resume runs in one process: rerun without torchrun, or without --resume")
    a_file = bool(args.out) and not written_in_place(Path(args.out))
    resumable = a_file and not streamed
    # claimed before the model loads: a second label onto the same --out stops at once
    with _one_writer(args.out) if a_file and distributed.is_main() else contextlib.nullcontext():
        _label_claimed(args, reader, first_pass, chunk_pairs, device, resumable, out_format)


def _label_claimed(args, reader, first_pass, chunk_pairs: int, device, resumable: bool, out_format: str) -> None:
    """cmd_label from the model's loading on, with its --out claimed where it is a file (_one_writer);
    `resumable` where the pairs are a file too."""

    from transenc import distributed
    from transenc.kept_rows import kept_rows
    from transenc.labeling import load_scorer, stream_scores
    from transenc.precision import inference_precision
    from transenc.writers import (KEPT_WORK_HINT, background_writes, npy_header, partial_path, resumable_open,
                                  score_rows)

    encoder = load_scorer(args.model, args.mode, device, args.precision)
    precision = inference_precision(device, args.precision)
    scored = functools.partial(stream_scores, encoder, reader, chunk_pairs, args.batch_size, args.precision,
                               distributed.world(), first_pass)
    if not distributed.is_main():
        for _ in scored():  # the other ranks score their shares; rank 0 alone writes
            pass
        return
    settings = _label_settings(args, chunk_pairs, precision) if resumable else None
    output = resumable_open(args.out, settings, args.resume, KEPT_WORK_HINT)
    # bi: the embeddings, encoded before any row is written, are kept as they come (one process;
    # the chunks' size does not change them); else encode holds them in TMPDIR, out of memory
    embeddings = kept_rows(partial_path(args.out, ".embeddings.npy"), {**settings, "chunk_pairs": None},
                           args.resume, Path(args.out), KEPT_WORK_HINT) \
        if args.mode == "bi" and not distributed.active() and resumable else contextlib.nullcontext()
    # the disk writes one chunk while the next is scored; done(n) records the first n rows complete
    with embeddings as kept, output as (f, written, done), background_writes(f) as write:
        if args.resume:
            print(f"transenc: resuming {args.out} after its first {written:,} scores" if written else
                  f"transenc: resuming {args.out}: the embeddings of {kept.rows_kept:,} sentences kept"
                  if kept and kept.rows_kept else
                  f"transenc: {args.out}: no stopped run of these pairs and settings to resume; starting"
                  + _replaces(args.out),
                  file=sys.stderr)
        if out_format == "npy" and not written:
            write(npy_header(first_pass.result().pairs))  # its rows follow: the file's shape is known first
        for chunk, scores in scored(skip=written, kept=kept):
            written += len(scores)
            write(score_rows(chunk, scores, out_format), done and functools.partial(done, written))
    if reader.skipped:
        print(f"transenc: skipped {reader.skipped} bad line(s) in {args.pairs}", file=sys.stderr)
    ran = _what_ran(args.mode, device, precision)  # (resolved already: a named precision stays itself)
    print(f"transenc: wrote {written} scores to {args.out} ({ran})" if args.out else f"transenc: scored {written} pairs ({ran})",
          file=sys.stderr)


def _replaces(out: str) -> str:
    """Where a --resume starts over onto a finished output (a job run again once it is done, say):
    that it will be replaced, not taken up (only a stopped run's work is)."""
    return ": the file already there is replaced when this run ends" if Path(out).is_file() else ""


@contextlib.contextmanager
def _one_writer(out: str):
    """label's or mine's --out file claimed (transenc.claims) before its work kept for --resume, or its
    temporary, is touched: by the lock file .OUT.partial.lock beside it, whatever the input (a
    stream's writer too has a temporary there). Under the claim, the temporaries a killed run left go."""
    from transenc.claims import claimed
    from transenc.writers import partial_path, remove_temporaries, temporaries_of

    with claimed(partial_path(out, ".lock"), f"{out}: another transenc is writing it now; let that one end "
                                             "(or stop it), or choose another --out"):
        remove_temporaries(temporaries_of(out))
        yield


def _label_settings(args, chunk_pairs: int, precision: str) -> dict:
    """What a resumed label shares with the stopped one, so that its rows go on where those ended."""
    return {**_input_and_model(args.pairs, "pairs file", args.model), "format": args.format, "on_error": args.on_error,
            "mode": args.mode, "precision": precision, "batch_size": args.batch_size, "chunk_pairs": chunk_pairs}


def _input_and_model(path: str, what: str, model: str | None) -> dict:
    """The input file as a resumed run recognises it (path, size, modification time), and the model:
    a folder's files the same way, so that other weights copied to the same path start over, never
    mixed with the kept rows. Stat calls only: hashing the weights would cost label its fixed time.
    Hidden files are left out, as models.model_digest does: an --out inside the folder keeps its
    work there as `.NAME.partial*`, which changes between the stop and the --resume."""
    from transenc.readers import not_a_file

    found = Path(path)
    if not found.is_file():  # (mine reads it after: say what is wrong as its reader would)
        raise not_a_file(found, what)
    files = None
    if model and Path(model).exists():
        folder = Path(os.path.realpath(model))  # (Path.resolve raises on a loop of links)
        model = str(folder)
        files = []
        for f in folder.rglob("*"):
            name = f.relative_to(folder)
            if f.is_file() and not any(part.startswith(".") for part in name.parts):
                meta = f.stat()
                files.append([str(name), meta.st_size, meta.st_mtime_ns])
        files.sort()
    meta = found.stat()
    return {"input": os.path.realpath(found), "bytes": meta.st_size, "modified_ns": meta.st_mtime_ns,
            "model": model, "model_files": files}


def cmd_eval(args) -> None:
    from transenc import api
    from transenc.metrics import data_files
    from transenc.models import resolve_device
    from transenc.writers import atomic_open, check_output_file, standard_output

    check_output_file(args.json, "--json")
    for read in data_files(args.data) if args.json else []:  # a data file, or one in the --data folder
        check_output_file(args.json, "--json", read)
    metrics = {}
    # --json opened first: a folder that cannot take it fails before the model loads, not after the scoring
    json_out = atomic_open(args.json, make_folder=True) if args.json else contextlib.nullcontext()
    with json_out as json_file, standard_output() as out:
        device = resolve_device(args.device)

        def each(name, metric, value):  # each set's line as it is scored
            if not metrics:  # what ran, once the data and the model were taken
                print(f"transenc: {_what_ran(args.mode, device, args.precision)}", file=sys.stderr)
            metrics[name] = metric
            print(f"{name}\t{value:.2f}", file=out, flush=True)

        results = api.evaluate(args.data, args.model, args.mode, args.metric, device, args.batch_size,
                               args.precision, each)
        print("transenc: metrics: " + ", ".join(f"{n} {m}" for n, m in metrics.items()), file=sys.stderr)
        if args.json:
            json.dump(results, json_file, indent=2)


def cmd_report(args) -> None:
    from transenc.report import write_report

    try:
        written = write_report(args.run_dir)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        # what a run writes draws (tests/test_report.py); a value of the wrong type or a missing field
        # is a file edited by hand or damaged, and a traceback deep in matplotlib would not say so
        raise TransencError(f"{args.run_dir}: its report cannot be drawn from its metrics.json and "
                            f"cycle*/labels_*.npy ({type(e).__name__}: {e}); was one edited by hand or damaged?") from e
    print(f"transenc: wrote {written}", file=sys.stderr)


def cmd_mine(args) -> None:
    """Writes `s1<TAB>s2<TAB>score` lines to --out (standard output when it is not given)."""

    from transenc import api
    from transenc.readers import is_stream
    from transenc.writers import (KEPT_WORK_HINT, atomic_open, check_output_file, output_format, standard_output,
                                  written_in_place)

    check_output_file(args.out, "--out", args.sentences)
    output_format(args.out, allowed=("tsv",))  # a pairs file, read back by its suffix: .jsonl would not parse
    a_file = args.out is not None and not written_in_place(Path(args.out))
    resumable = a_file and not is_stream(Path(args.sentences))
    if args.resume and not resumable:
        raise TransencError("--resume needs --out and a --sentences file: it goes on with the work a stopped run "
                            "kept for the same sentences")
    kept = contextlib.nullcontext()
    if resumable:
        settings = _mine_settings(args)  # a missing sentences file stops here, before torch loads
        from transenc.mine_checkpoint import mine_checkpoint

        kept = mine_checkpoint(args.out, settings, args.resume)
    with _one_writer(args.out) if a_file else contextlib.nullcontext(), kept as checkpoint:
        if args.resume:
            print(f"transenc: resuming {args.out}: the embeddings of {checkpoint.embeddings.rows_kept:,} sentences "
                  f"and the neighbours of {checkpoint.rows:,} kept" if checkpoint.resumed else
                  f"transenc: {args.out}: no stopped run of these sentences and settings to resume; starting"
                  + _replaces(args.out),
                  file=sys.stderr)
        rows = api.mine_kept(args.sentences, args.k, args.model, args.min_score, args.device, args.batch_size,
                             args.precision, checkpoint)
        with standard_output() if args.out is None else \
                atomic_open(args.out, hint=KEPT_WORK_HINT if checkpoint and checkpoint.kept else None,
                            make_folder=True) as f:
            for a, b, score in rows:
                f.write(f"{a}\t{b}\t{score:.6f}\n")
    from transenc.models import resolve_device

    ran = _what_ran("bi", resolve_device(args.device), args.precision)
    print(f"transenc: wrote {len(rows)} pairs to {args.out} ({ran})" if args.out else
          f"transenc: mined {len(rows)} pairs ({ran})", file=sys.stderr)


def _what_ran(mode: str, device, precision: str) -> str:
    """The summary line's model kind and arithmetic: 'bi-encoder, int8 on cpu'."""
    from transenc.precision import inference_precision

    return f"{mode}-encoder, {inference_precision(device, precision)} on {device}"


def _mine_settings(args) -> dict:
    """What a resumed mine shares with the stopped one, so that its embeddings and neighbours hold."""
    # a missing file stops here, before torch loads
    sentences = _input_and_model(args.sentences, "sentences file", args.model)
    from transenc.models import resolve_device
    from transenc.precision import inference_precision

    device = resolve_device(args.device)
    return {**sentences, "device": str(device), "k": args.k, "precision": inference_precision(device, args.precision),
            "batch_size": args.batch_size}


def cmd_train(args) -> None:
    from transenc.train_config import TrainConfig
    from transenc.training import Trainer

    Trainer(TrainConfig.from_args(args)).train()


def cmd_data(args) -> None:
    import io
    import tarfile
    import urllib.request

    try:
        with urllib.request.urlopen(STSB_URL, timeout=30) as response:
            blob = response.read()
    except OSError as e:
        raise TransencError(f"cannot download STS-B from {STSB_URL} ({e}); are you offline? "
                            "Put its sts-dev.csv and sts-test.csv in a folder by hand: eval --data FOLDER scores "
                            "them, and train --dev FOLDER/sts-dev.csv selects on the first.") from None
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        archive.extractall(Path(args.out), filter="data")
    print(f"transenc: STS-B is in {Path(args.out) / 'stsbenchmark'}", file=sys.stderr)


COMMANDS = {"label": cmd_label, "eval": cmd_eval, "mine": cmd_mine, "train": cmd_train, "report": cmd_report,
            "data": cmd_data}


RESUME_FROM_KEPT = "; the same command with --resume goes on from the work kept"
# Signals that stop a run: SIGTERM (`kill`, job schedulers) and SIGHUP (the terminal or SSH session closed).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
# Each signal the command catches, with the handler it has when nobody chose one: Ctrl-C's too.
DEFAULT_HANDLERS = {signal.SIGINT: signal.default_int_handler, **{signum: signal.SIG_DFL for signum in STOP_SIGNALS}}


class Stopped(BaseException):
    """A stop signal (STOP_SIGNALS). Python's default would end the process on the spot, leaving
    temporary files beside the outputs and spooled input in TMPDIR; as an exception it unwinds as
    Ctrl-C does, and the work a --resume takes up is kept as always."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# A clean-up after a stop still going this long is stuck (a write to a stalled pipe or NFS mount):
# a further stop then ends the process at once.
STUCK_AFTER_S = 10.0
_STOPPED_AT: list[float] = []  # when the first stop came


def _stop(signum, frame):
    """The first stop (Ctrl-C or a stop signal) unwinds the command; later ones are ignored while the
    unwinding keeps the work for --resume and removes the temporaries (a tenth of a second): a second
    exception would break that off, with a traceback, wherever it struck."""
    _STOPPED_AT[:] = [time.monotonic()]
    for caught in DEFAULT_HANDLERS:
        if signal.getsignal(caught) is _stop:
            signal.signal(caught, _ignore)
    raise KeyboardInterrupt if signum == signal.SIGINT else Stopped(signum)


def _ignore(signum, frame):
    """A later stop: nothing, unless the clean-up is stuck (STUCK_AFTER_S), when the signal's default
    ends the process. (A handler, not SIG_IGN: with SIG_IGN, a signal already arrived and not yet
    handled prints "Signal 15 ignored due to race condition".)"""
    if time.monotonic() - _STOPPED_AT[0] > STUCK_AFTER_S:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _catch_stop_signals() -> dict:
    """_stop for Ctrl-C and each stop signal left at its default: one the parent ignores stays ignored
    (`nohup` ignores SIGHUP, so that the run outlives the terminal). Returns the handlers it replaced."""
    return {signum: signal.signal(signum, _stop) for signum, default in DEFAULT_HANDLERS.items()
            if signal.getsignal(signum) == default}


def _resume_hint(args) -> str:
    """What a stopped command kept for --resume: a run folder, or label's and mine's work beside --out
    (not from a stream, which cannot be read again), where any was complete: their files
    `.NAME.partial*` stay only then (a label stopped inside its first chunk keeps none)."""
    from transenc.readers import is_stream
    from transenc.writers import partial_path, size_for_people

    source = getattr(args, "pairs", None) or getattr(args, "sentences", None)
    if args.command == "train":
        return RESUME_FROM_KEPT
    if args.command in ("label", "mine") and args.out and not is_stream(Path(source)):
        kept = partial_path(args.out)
        work = [f for f in kept.parent.glob(glob.escape(kept.name) + "*") if f.suffix != ".lock"]
        if not work:
            return "; no work was complete enough to keep"
        # hidden, and up to gigabytes (a bi-encoder's embeddings): say where and how much
        return RESUME_FROM_KEPT + f" ({size_for_people(_bytes_in(work))} in {kept}*)"
    return ""


def _bytes_in(paths: list[Path]) -> int:
    """The size of these files and folders, all they hold (one that goes meanwhile counts for none)."""
    total = 0
    for path in paths:
        for f in [path] if path.is_file() else path.rglob("*"):
            with contextlib.suppress(OSError):
                total += f.stat().st_size if f.is_file() else 0
    return total


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the command's parser, whose --help lists what it takes
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    except KeyboardInterrupt:  # Ctrl-C while the parser's imports load (~0.1 s): nothing begun, nothing kept
        print("transenc: interrupted", file=sys.stderr)
        return 130
    in_main_thread = threading.current_thread() is threading.main_thread()  # (signal handlers live there alone)
    replaced = _catch_stop_signals() if in_main_thread else {}
    try:
        COMMANDS[args.command](args)
        if args.command in ("label", "train"):
            from transenc import distributed

            distributed.teardown()  # under torchrun: leave the process group once the work is done
    except TransencError as e:
        print(f"transenc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transenc: interrupted" + _resume_hint(args), file=sys.stderr)
        return 130
    except Stopped as e:
        print(f"transenc: stopped ({signal.Signals(e.signum).name})" + _resume_hint(args), file=sys.stderr)
        return 128 + e.signum
    except BrokenPipeError:  # stdout's reader left (`transenc label ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the closing flush has somewhere to go
        return 141  # 128 + SIGPIPE, a shell's code for a writer whose pipe closed
    except OSError as e:  # a failed write (or read) that no command named for itself: one line still, no traceback
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"transenc: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    finally:
        if "transenc.readers" in sys.modules:  # a command that read pairs from a stream: its spool goes
            sys.modules["transenc.readers"].remove_spools()
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
    return 0


def run(argv: list[str] | None = None) -> None:
    """The `transenc` command: main, then leave without the interpreter's finalization. Every file is
    complete by then; what is skipped is torch's teardown, ~1 s of every process on the CPU
    (bench/results/archive/label-breakdown-cpu.md), which under torchrun gloo's threads can also abort.
    A command that never imported torch (an input refused at once) leaves as any program does:
    importing torch to leave would cost it that second."""
    # transformers' warnings (a text over a tokenizer's length, say: transenc cuts and says so itself)
    # and the hub's progress bars off for the process, unless the user set them; the library quiets
    # its loads and saves alone.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    code = main(argv)
    if "torch" not in sys.modules:
        sys.exit(code)
    from transenc import distributed

    distributed.exit_now(code)


if __name__ == "__main__":
    run()
