"""The fast CSV path (NumPy record scan + Polars) gives exactly what the csv module gives."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.ingest.csvscan import parse_region, parse_region_reference, record_ends, split_at_last_record
from tests.support.inputs import ROW_CASES

COLUMNS = ["email", "first_name", "last_name", "country"]


def same(data: bytes, delimiter=","):
    fast = parse_region(data, COLUMNS, delimiter, 2)
    ref = parse_region_reference(data.decode("utf-8", "replace"), COLUMNS, delimiter, 2)
    keep_fast = [i for i in range(len(fast.lines)) if not fast.blank[i] and fast.field_counts[i] == len(COLUMNS)]
    keep_ref = [i for i in range(len(ref.lines)) if not ref.blank[i] and ref.field_counts[i] == len(COLUMNS)]
    assert [int(fast.lines[i]) for i in keep_fast] == [int(ref.lines[i]) for i in keep_ref]
    assert fast.raw_text(keep_fast) == ref.raw_text(keep_ref)
    assert fast.frame[keep_fast].equals(ref.frame[keep_ref])
    bad_fast = [int(fast.lines[i]) for i in range(len(fast.lines)) if not fast.blank[i] and fast.field_counts[i] != 4]
    bad_ref = [int(ref.lines[i]) for i in range(len(ref.lines)) if not ref.blank[i] and ref.field_counts[i] != 4]
    assert bad_fast == bad_ref


def test_every_bad_input_case_parses_the_same_both_ways():
    for _name, text, _, _ in ROW_CASES:
        body = text.split("\n", 1)[1] if "\n" in text else ""
        same(body.encode("utf-8"))


FIELD = st.text(alphabet='ab,"\n\r é;', max_size=8)


@given(st.lists(st.lists(FIELD, min_size=1, max_size=6), max_size=12))
@example([["", "", "", ""], [" "]])  # a whitespace-only line is blank in both parsers
@settings(max_examples=300, deadline=None)
def test_random_csv_parses_the_same_both_ways(rows):
    text = "".join(",".join('"' + f.replace('"', '""') + '"' if any(c in f for c in ',"\n\r') else f for f in row) + "\n"
                   for row in rows)
    same(text.encode("utf-8"))


def test_record_ends_ignore_newlines_inside_quotes():
    data = b'a,"x\ny",b\nc,d\n'
    assert record_ends(data).tolist() == [9, 13]
    assert split_at_last_record(b'a,b\nc,"open\n') == 4
