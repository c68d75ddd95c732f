"""Every input format, input order, and the reader's handling of bad input."""
import gzip
import json
import random

import numpy as np
import pytest

import corpora
import transenc
from transenc import readers
from transenc.errors import InputError
from transenc.readers import PairReader, read_pairs

PAIRS = [("a cat sits", "a dog runs"), ("rain falls", "a cat sits"), ("a cat sits", "a dog runs"), ("x, \"quoted\"", "y")]


def texts(ps):
    return [ps.pair_texts(i) for i in range(len(ps))]


def write(path, text, mode="w"):
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "bars", "jsonl-text"])
def test_every_format_keeps_pairs_in_input_order(tmp_path, fmt):
    if fmt == "tsv":
        path = write(tmp_path / "p.tsv", "".join(f"{a}\t{b}\textra\n" for a, b in PAIRS))
    elif fmt == "csv":
        rows = "".join(f'"{a.replace(chr(34), 2 * chr(34))}","{b}"\n' for a, b in PAIRS)
        path = write(tmp_path / "p.csv", "sentence1,sentence2\n" + rows)
    elif fmt == "jsonl":
        path = write(tmp_path / "p.jsonl", "".join(json.dumps({"sentence1": a, "sentence2": b}) + "\n" for a, b in PAIRS))
    elif fmt == "jsonl-text":
        path = write(tmp_path / "p.jsonl", "".join(json.dumps({"text_a": a, "text_b": b}) + "\n" for a, b in PAIRS))
    else:
        path = write(tmp_path / "p.txt", "".join(f"{a}||{b}\n" for a, b in PAIRS))
    ps, skipped = read_pairs(path)
    assert skipped == 0
    assert texts(ps) == PAIRS
    assert len(ps.sentences) == 5  # each unique sentence stored once
    assert ps.pairs.dtype == np.int32


def test_csv_picks_named_columns_and_scores(tmp_path):
    path = write(tmp_path / "p.csv", "id,sentence2,score,sentence1\n1,b one,0.5,a one\n2,b two,0.25,a two\n")
    ps, _ = read_pairs(path)
    assert texts(ps) == [("a one", "b one"), ("a two", "b two")]
    assert ps.labels.tolist() == [0.5, 0.25]


def test_csv_without_named_columns_takes_the_first_two(tmp_path):
    path = write(tmp_path / "p.csv", "left,right,other\nl1,r1,z\n")
    assert texts(read_pairs(path)[0]) == [("l1", "r1")]


def test_sts_layout_with_extra_fields(sts):
    ps, _ = read_pairs(sts / "sts-test.csv")
    assert len(ps) == 1379 and ps.labels is not None
    ps, _ = read_pairs(sts / "sts-train.csv")
    assert len(ps) == 5749


@pytest.mark.parametrize("data, reason", [
    (gzip.compress(b"a b\tc d\n"), "a gzip file: decompress it first"),
    ("a b\tc d\n".encode("utf-16"), "UTF-16 text: convert it to UTF-8 first"),
    (b"\xfe\xff" + "a b\tc d\n".encode("utf-16-be"), "UTF-16 text: convert it to UTF-8 first"),
    (b"a b\tc d\re f\tg h\r", "lines end in a carriage return alone"),
])
def test_a_file_that_is_no_text_of_lines_says_what_to_do(tmp_path, data, reason):
    """Read on, each would be 'invalid UTF-8 at byte 1' (or 0), or (CR-ended lines, from classic Mac
    OS or an export) one line of glued sentences: one pair labeled, trained on or mined."""
    for read, name in ((read_pairs, "p.tsv"), (readers.read_sentences, "s.txt")):
        with pytest.raises(InputError, match=reason) as e:
            read(write(tmp_path / name, data))
        assert e.value.line == 0


@pytest.mark.parametrize("data", [b"a b\tc d\r\ne f\tg h\r\n", b"a b\tc d\r", b"a\rb\tc d\ne\tf\n", b"a\rb\tc d"])
def test_crlf_a_last_cr_and_a_cr_inside_a_line_are_text_of_lines(tmp_path, data):
    assert len(read_pairs(write(tmp_path / "p.tsv", data))[0]) >= 1


def test_a_pair_set_in_both_orders_is_its_pairs_then_the_same_pairs_swapped():
    """What a cross-encoder trains on: every pair (a, b), then every pair again as (b, a)."""
    ps = transenc.read_pairs([("a", "b"), ("c", "a"), ("d", "e")])
    both = ps.both_orders()
    np.testing.assert_array_equal(both[:3], ps.pairs)
    np.testing.assert_array_equal(both[3:], ps.pairs[:, ::-1])
    assert [ps.sentences[i] for i in both[4]] == ["a", "c"]


def test_shuffled_duplicates_keep_row_order(tmp_path):
    rng = random.Random(7)
    base = [(f"sentence {i}", f"other {i % 5}") for i in range(50)]
    rows = base + base[:20]
    rng.shuffle(rows)
    path = write(tmp_path / "p.tsv", "".join(f"{a}\t{b}\n" for a, b in rows))
    ps, _ = read_pairs(path)
    assert texts(ps) == rows
    assert len(ps.sentences) == 55


def test_head_keeps_the_first_pairs_and_only_their_sentences(tmp_path):
    rows = [(f"s{i}", f"s{(i * 7) % 13}", i / 10) for i in range(30)]
    ps, _ = read_pairs(write(tmp_path / "p.tsv", "".join(f"{a}\t{b}\t{y}\n" for a, b, y in rows)))
    head = ps.head(6)
    assert texts(head) == [(a, b) for a, b, _ in rows[:6]]
    assert sorted(head.sentences) == sorted({s for a, b, _ in rows[:6] for s in (a, b)})
    assert np.allclose(head.labels, [y for _, _, y in rows[:6]])


@pytest.mark.parametrize("content, line, reason", [
    ("a\tb\nonly one field\n", 2, "expected at least 2"),
    (b"a\tb\nbad \xff byte\tx\n", 2, "invalid UTF-8"),
    ("a\tb\n\tsecond\n", 2, "empty sentence"),
    ("a\tb\nc\t  \n", 2, "empty sentence"),
    ("", 0, "file is empty"),
    ("\n\n  \n", 0, "file is empty"),
])
def test_bad_input_names_file_line_and_reason(tmp_path, content, line, reason):
    path = write(tmp_path / "bad.tsv", content)
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert err.value.line == line and reason in err.value.reason
    assert str(path) in str(err.value)


def test_nan_score_and_bad_json(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "a", "sentence2": "b", "label": NaN}\n')
    with pytest.raises(InputError, match=r"p.jsonl:2: score is not a finite number"):
        read_pairs(path)
    path = write(tmp_path / "q.jsonl", '{"sentence1": "a", "sentence2": "b"}\n{"sentence1": "a"\n')
    with pytest.raises(InputError, match=r"q.jsonl:2: invalid JSON"):
        read_pairs(path)


def test_a_jsonl_score_is_read_under_either_name_and_a_bad_one_is_named_as_written(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 4.5}\n'
                                       '{"sentence1": "c", "sentence2": "d", "label": null, "score": 1}\n'
                                       '{"sentence1": "e", "sentence2": "f", "label": 2, "score": 3}\n')
    assert read_pairs(path)[0].labels.tolist() == [4.5, 1.0, 2.0]  # a null label leaves the score
    for field, value in (("score", '"high"'), ("score", "true"), ("label", '"1"')):
        path = write(tmp_path / "q.jsonl", f'{{"sentence1": "a", "sentence2": "b", "{field}": {value}}}\n')
        with pytest.raises(InputError, match=rf"q.jsonl:1: '{field}' must be a number"):
            read_pairs(path)


def test_a_csv_quote_never_closed_is_a_bad_line_not_the_rest_of_the_file_in_one_sentence(tmp_path):
    path = write(tmp_path / "p.csv", 'sentence1,sentence2\na b,c d\ne f,"g h\ni j,k l\nm n,o p\n')
    with pytest.raises(InputError, match=r"p.csv:3: a quoted field opened on this line is never closed"):
        read_pairs(path)
    for last in ('e f,"g h', '5" tall,"g h'):  # on the last line, an inch mark before it or not
        path = write(tmp_path / "p.csv", f'sentence1,sentence2\na b,c d\n{last}\n')
        with pytest.raises(InputError, match=r"p.csv:3: a quoted field opened on this line is never closed"):
            read_pairs(path)
    # a quoted field over two lines (an inch mark beside one too), quotes doubled inside one, and a lone
    # inch mark are CSV as it is written
    path = write(tmp_path / "q.csv", 'sentence1,sentence2\na b,"c\nd"\n"e ""f""",g\n5" tall,x\n5" y,"z\nw"\n')
    assert read_pairs(path)[0].sentences == ["a b", "c\nd", 'e "f"', "g", '5" tall', "x", '5" y', "z\nw"]


def test_an_unpaired_surrogate_is_a_bad_line(tmp_path):
    """JSON can spell a lone surrogate ("\\ud800"), which has no UTF-8 form: refused by file and line."""
    path = write(tmp_path / "s.jsonl", '{"sentence1": "a", "sentence2": "b"}\n{"sentence1": "a \\ud800 b", "sentence2": "c"}\n')
    with pytest.raises(InputError, match=r"s.jsonl:2: a sentence holds an unpaired surrogate"):
        read_pairs(path)
    assert read_pairs(path, on_error="skip")[1] == 1


def test_skip_mode_counts_bad_lines(tmp_path):
    path = write(tmp_path / "p.tsv", b"a\tb\nnope\nc\t\xfe\n\tz\nd\te\n")
    ps, skipped = read_pairs(path, on_error="skip")
    assert skipped == 3
    assert texts(ps) == [("a", "b"), ("d", "e")]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_pairs(tmp_path / "nope.tsv")
    with pytest.raises(InputError, match="is a folder, not a pairs file"):
        read_pairs(tmp_path)


# ---- the engine's scanner (tsv, bars, sts) against the Python parsers, line by line ----------
PIECES = ["a cat", " dog ", "\x1c", "\x0b", "é café", "\u3000", "\xa0", "", " ", "\x00", "x\ry", "\u2003b", "1.5", " 2 ", "-0",
          "+3", ".5", "5.", "1e5", "e5", "inf", "NaN", "1_0", "1e999", "abc", "٣", "|", "||"]
BYTES = [b"\xff", b"\xe2\x28", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80", b"\xef\xbb\xbf", b"\r", b"\r\n"]


def random_line(rng, sep):
    fields = [rng.choice(PIECES) for _ in range(rng.choice([1, 2, 3, 3, 3, 5, 7, 7, 8]))]
    line = sep.join(fields).encode()
    if rng.random() < 0.15:
        at = rng.randrange(len(line) + 1)
        line = line[:at] + rng.choice(BYTES) + line[at:]
    return line


def python_reading(path, fmt, on_error):
    """The Python parsers' records (the reference) or their error."""
    reader = PairReader(path, fmt, on_error)
    try:
        return [(a, b, None if label is None else float(label)) for a, b, label in reader], reader.skipped
    except InputError as e:
        return str(e)


def scanned_reading(path, fmt, on_error, chunk_pairs, shared):
    from transenc._C import SentenceTable

    reader, table = PairReader(path, fmt, on_error), SentenceTable() if shared else None
    records = []
    try:
        for chunk in reader.chunks(chunk_pairs, table):
            assert 0 < len(chunk.ids) <= chunk_pairs
            texts = chunk.table.texts()
            records += [(texts[a], texts[b], None if np.isnan(y) else float(y)) for (a, b), y in zip(chunk.ids, chunk.labels)]
    except InputError as e:
        return str(e)
    return records, reader.skipped


@pytest.mark.parametrize("header", [b"sentence1\tsentence2\tscore", b"\xef\xbb\xbfText_A\ttext_b", b"sentence1\tsentence2\r"])
def test_a_tsv_header_on_line_1_is_no_pair_to_either_reader(tmp_path, header):
    """A datasets export's header line (column names the csv and jsonl readers know) is left out, by
    the scanner and the Python parsers alike; the same names on a later line are a pair."""
    path = write(tmp_path / "p.tsv", header + b"\na b\tc d\t3\nsentence1\tsentence2\t1\n")
    want = ([("a b", "c d", 3.0), ("sentence1", "sentence2", 1.0)], 0)
    for on_error in ("raise", "skip"):
        assert python_reading(path, None, on_error) == want
        assert scanned_reading(path, None, on_error, 1000, False) == want
    with pytest.raises(InputError, match="file holds no sentence pairs"):
        read_pairs(write(tmp_path / "only.tsv", header + b"\n"))


@pytest.mark.parametrize("fmt, sep", [("tsv", b"\t"), ("bars", b"||")])
def test_a_bom_before_the_first_pair_is_no_part_of_its_sentence(tmp_path, fmt, sep):
    """A file saved with a byte order mark (Windows' Notepad): U+FEFF at the file's start marks the
    encoding and is dropped by both readers; the first pair is a pair like the others."""
    path = write(tmp_path / f"p.{fmt}", b"\xef\xbb\xbfa b" + sep + b"c d\ne" + sep + b"f\n")
    want = ([("a b", "c d", None), ("e", "f", None)], 0)
    assert python_reading(path, fmt, "raise") == want
    assert scanned_reading(path, fmt, "raise", 1000, False) == want


def test_an_empty_sentence_beside_a_nul_is_empty_to_both_readers(tmp_path):
    """The rules in one order for the scanner and the Python parser: a case the random files below met."""
    path = write(tmp_path / "p.tsv", b"a\x00b\t \n")
    assert python_reading(path, "tsv", "raise") == scanned_reading(path, "tsv", "raise", 1000, False) \
        == f"{path}:1: empty sentence"


@pytest.mark.parametrize("fmt, sep", [("tsv", "\t"), ("bars", "||"), ("sts", "\t")])
def test_the_scanner_reads_what_the_python_parsers_read(tmp_path, monkeypatch, fmt, sep):
    """Fresh random files of awkward lines (Unicode whitespace, NUL, bad UTF-8, BOMs, \\r, odd
    numbers, too few fields): the same records, skip counts and first error, whatever the chunk
    and block sizes (blocks of 7 bytes cut lines everywhere)."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 7)
    rng = random.Random()
    for trial in range(60):
        lines = [random_line(rng, sep) for _ in range(rng.randrange(1, 40))]
        end = b"" if rng.random() < 0.3 else b"\n"
        path = write(tmp_path / f"{trial}.{fmt}", b"\n".join(lines) + end)
        for on_error in ("raise", "skip"):
            want = python_reading(path, fmt, on_error)
            for chunk_pairs, shared in ((1, False), (3, True), (1000, False)):
                assert scanned_reading(path, fmt, on_error, chunk_pairs, shared) == want, (lines, on_error)


def demo_mix_in_sts_layout(path):
    """demo_mix's pairs in STS-B's layout (genre, file, year, id, score, the two sentences), with
    STS-B's oddities: extra fields on some lines, stray quotes."""
    rng = random.Random(0)
    lines = []
    for i, (a, b) in enumerate(corpora.demo_mix(1500)):
        a = f'"{a}' if i % 17 == 0 else a
        extra = "\tsource-a\tsource-b" if i % 13 == 0 else ""
        lines.append(f"main-news\tfile-{i % 5}\t2012\t{i:04d}\t{rng.uniform(0, 5):.3f}\t{a}\t{b}{extra}\n")
    return write(path, "".join(lines))


@pytest.mark.parametrize("corpus", ["demo-mix", "sts-b"])
def test_scanner_and_python_agree_on_a_real_file_and_the_writer_bytes(corpus, tmp_path):
    from transenc._C import SentenceTable
    from transenc.writers import score_line

    path = demo_mix_in_sts_layout(tmp_path / "dev.csv") if corpus == "demo-mix" else corpora.sts_b_folder() / "sts-dev.csv"
    want = python_reading(path, "sts", "raise")
    assert scanned_reading(path, "sts", "raise", 500, True) == want
    table = SentenceTable()
    chunk = next(PairReader(path, "sts").chunks(10**6, table))
    scales = 10.0 ** np.arange(-8, 12).repeat(75)[:len(chunk.ids)]  # fixed and exponent notation, and -0, nan, inf
    scores = (np.random.default_rng().standard_normal(len(chunk.ids)) * scales).astype(np.float32)
    scores[:4] = [-0.0, np.nan, -np.nan, np.inf]
    expected = "".join(score_line(a, b, s, False) for (a, b, _), s in zip(want[0], scores.tolist()))
    assert table.format_tsv(chunk.ids, scores) == expected.encode()
    odd = [table.intern(t) for t in ("tab\there", "line\r\nbreak", "plain")]  # as JSONL or CSV may carry
    ids = np.array([odd[:2], odd[1:]], dtype=np.int32)
    expected = score_line("tab\there", "line\r\nbreak", 0.5, False) + score_line("line\r\nbreak", "plain", 0.25, False)
    assert table.format_tsv(ids, np.array([0.5, 0.25], dtype=np.float32)) == expected.encode()
