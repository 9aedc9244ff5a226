"""Input files for ingest tests: a CSV writer and the bad-row cases both CSV parsers must agree on."""

from __future__ import annotations

from pathlib import Path

HEADER = "email,first_name,last_name,country\n"


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


ROW_CASES = [
    # name, file bytes, expected good addresses, expected {line: rule}
    ("broken_quote", HEADER + 'a@example.com,"Ann,Lee,JP\nb@example.com,Bo,Kim,US\n', [], {2: "ragged_row"}),
    ("too_many_fields", HEADER + "a@example.com,A,B,JP,extra\nb@example.com,Bo,Kim,US\n", ["b@example.com"], {2: "ragged_row"}),
    ("too_few_fields", HEADER + "a@example.com,A\nb@example.com,Bo,Kim,US\n", ["b@example.com"], {2: "ragged_row"}),
    ("bom", "\ufeff" + HEADER + "a@example.com,A,B,JP\n", ["a@example.com"], {}),
    ("nul_byte", HEADER + "a@example.com,A\x00nn,B,JP\nb@example.com,Bo,Kim,US\n", ["b@example.com"], {2: "control_characters"}),
    ("long_field", HEADER + "a@example.com," + "x" * 100_000 + ",B,JP\nb@example.com,Bo,Kim,US\n", ["b@example.com"], {2: "field_too_long"}),
    ("megabyte_line", HEADER + "a@example.com," + "x" * 1_048_576 + ",B,JP\nb@example.com,Bo,Kim,US\n", ["b@example.com"], {2: "line_too_long"}),
    ("crlf_in_name", HEADER + 'a@example.com,"Eve\r\nBcc: x@example.org",B,JP\nb@example.com,Bo,Kim,US\n', ["b@example.com"], {2: "control_characters"}),
    ("case_duplicates", HEADER + "Ann@Example.COM,First,B,JP\nann@example.com,Second,B,JP\n", ["Ann@example.com", "ann@example.com"], {}),
    ("domain_case_duplicate", HEADER + "ann@Example.COM,First,B,JP\nann@example.com,Second,B,JP\n", ["ann@example.com"], {2: "duplicate"}),
    ("caseless_provider", HEADER + "Ann@GMail.com,First,B,JP\nann@gmail.com,Second,B,JP\n", ["ann@gmail.com"], {2: "duplicate"}),
    ("crlf_line_endings", HEADER.replace("\n", "\r\n") + "a@example.com,A,B,JP\r\nb@example.com,Bo,Kim,US\r\n", ["a@example.com", "b@example.com"], {}),
    ("blank_lines", HEADER + "\na@example.com,A,B,JP\n\n\nbad,Bo,Kim,US\n", ["a@example.com"], {6: "gx:expect_column_values_to_match_regex(email)"}),
    ("missing_email", HEADER + ",A,B,JP\n", [], {2: "gx:expect_column_values_to_not_be_null(email)"}),
    ("invalid_syntax", HEADER + "a..b@example.com,A,B,JP\nx@localhost,B,C,JP\n", [], {2: "invalid_email", 3: "gx:expect_column_values_to_match_regex(email)"}),
    ("whitespace_and_nfc", HEADER + "  a@example.com  ,  Jose\u0301 ,B,JP\n", ["a@example.com"], {}),
    ("header_only", HEADER, [], {}),
    ("no_trailing_newline", HEADER + "a@example.com,A,B,JP", ["a@example.com"], {}),
    ("embedded_newline_then_bad", HEADER + 'a@example.com,"multi\nline",B,JP\nnot-an-email,C,D,US\nb@example.com,E,F,DE\n', ["b@example.com"], {2: "control_characters", 4: "gx:expect_column_values_to_match_regex(email)"}),
    ("quote_inside_field", HEADER + 'a@example.com,O"Brien,B,JP\nb@example.com,Bo,Kim,US\n', ["a@example.com", "b@example.com"], {}),
    ("formula_injection", HEADER + "a@example.com,=HYPERLINK(\"http://x\"),B,JP\n", ["a@example.com"], {}),
    ("international_domain", HEADER + "a@Bücher.de,A,B,DE\n", ["a@xn--bcher-kva.de"], {}),
]
