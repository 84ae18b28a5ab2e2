"""Write the upload corpus: real-world shapes of the same small table (encodings, delimiters, Excel quirks).

Run ``python tests/data/uploads/make_uploads.py`` from the repository root; it rewrites the files
and ``expected.json`` (rows, columns and guessed roles of each file, or the words of its refusal).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(20261130)

# 6 mice x 2 conditions (within mouse) x 6 cells: mouse, cell, condition, amplitude, depth_um
ROWS = []
for m in range(1, 7):
    shift = rng.normal(0, 0.5)
    for c in range(1, 7):
        depth = int(rng.integers(100, 400))
        for cond in ("saline", "ketamine"):
            amp = 2 + shift + (0.4 if cond == "ketamine" else 0) + rng.normal(0, 0.3)
            ROWS.append((f"M{m}", f"M{m}c{c}", cond, round(amp, 3), depth))
HEAD = ["mouse", "cell", "condition", "amplitude", "depth_um"]
N = len(ROWS)
ROLES = {"group": "mouse", "response": "amplitude", "family": "gaussian"}


def table(sep: str = ",", head: list[str] = HEAD, rows: list = ROWS, dec: str = ".", quote: bool = False,
          nl: str = "\n", na_row: int | None = None, na: str = "NA") -> str:
    def cell(v: object) -> str:
        t = str(v).replace(".", dec) if isinstance(v, float) else str(v)
        return f'"{t}"' if quote else t
    lines = [sep.join(f'"{h}"' if quote else h for h in head)]
    for i, r in enumerate(rows):
        vals = [cell(v) for v in r]
        if na_row is not None and i == na_row:
            vals[3] = na
        lines.append(sep.join(vals))
    return nl.join(lines) + nl


FILES: dict[str, tuple[bytes, dict]] = {}


def add(name: str, data: str | bytes, expect: dict | None = None, encoding: str = "utf-8") -> None:
    raw = data if isinstance(data, bytes) else data.encode(encoding)
    exp = {"rows": N, "columns": HEAD, **ROLES} if expect is None else expect
    FILES[name] = (raw, exp)


def ok(**kw: object) -> dict:
    return {"rows": N, "columns": HEAD, **ROLES, **kw}


add("01_plain_comma.csv", table())
add("02_utf8_bom.csv", "\ufeff" + table())
add("03_utf16_excel_unicode_text.txt", table("\t", nl="\r\n").encode("utf-16"))
add("04_utf16le_no_bom.tsv", table("\t").encode("utf-16-le"))
add("05_cp1252_micro_sign.csv", table(head=["mouse", "cell", "condition", "amplitude (µV)", "depth_um"]),
    ok(columns=["mouse", "cell", "condition", "amplitude (µV)", "depth_um"], response="amplitude (µV)"),
    encoding="cp1252")
add("06_semicolon_decimal_comma.csv", table(";", dec=","))
add("07_excel_sep_line_semicolon.csv", "sep=;\r\n" + table(";", dec=",", nl="\r\n"))
add("08_excel_sep_line_comma.csv", "sep=,\n" + table())
add("09_tab.tsv", table("\t"))
add("10_whitespace_write_table.txt", table(" "))
rn = ['""'] + [f'"{h}"' for h in HEAD]
add("11_r_write_csv_rownames.csv", ",".join(rn) + "\n" + "".join(
    f'"{i + 1}",' + ",".join(f'"{v}"' if isinstance(v, str) else str(v) for v in r) + "\n"
    for i, r in enumerate(ROWS)))
add("12_trailing_empty_columns.csv", "".join(line + ",,,\n" for line in table().splitlines()))
add("13_trailing_empty_rows.csv", table() + ",,,,\n,,,,\n\n\n")
add("14_crlf.csv", table(nl="\r\n"))
add("15_old_mac_cr.csv", table(nl="\r"))
add("16_all_quoted.csv", table(quote=True))
add("17_na_spellings.csv", table(na_row=3, na="#N/A").replace("\n" + ",".join(map(str, ROWS[5])),
                                                              "\n" + ",".join(map(str, ROWS[5][:3])) + ",,"
                                                              + str(ROWS[5][4])))
lick = [(f"{m}", int(rng.random() < 0.4 + 0.05 * m), round(float(rng.normal(3, 1)), 3))
        for m in range(1, 9) for _ in range(20)]
add("18_binary_response.csv", "mouseID,lick,dff\n" + "".join(f"{a},{b},{c}\n" for a, b, c in lick),
    {"rows": 160, "columns": ["mouseID", "lick", "dff"], "group": "mouseID", "response": "lick",
     "family": "binomial"})
add("19_true_false_response.csv", "animal,correct,dff\n" + "".join(
    f"{a},{'TRUE' if b else 'FALSE'},{c}\n" for a, b, c in lick),
    {"rows": 160, "columns": ["animal", "correct", "dff"], "group": "animal", "response": "correct",
     "family": "binomial"})
add("20_no_grouping_column.csv", "dose,weight\n" + "".join(
    f"{i / 10},{round(5 + i / 7 + float(rng.normal()), 3)}\n" for i in range(40)),
    {"rows": 40, "columns": ["dose", "weight"], "group": None, "response": "weight", "family": "gaussian"})
between = [(f"M{m}", "drug" if m > 3 else "vehicle", round(float(1 + 0.3 * (m > 3) + rng.normal(0, .4)), 3))
           for m in range(1, 7) for _ in range(8)]
add("21_between_mouse_design.csv", "mouse,condition,amplitude\n" + "".join(f"{a},{b},{c}\n" for a, b, c in between),
    {"rows": 48, "columns": ["mouse", "condition", "amplitude"], "group": "mouse", "response": "amplitude",
     "family": "gaussian"})
add("22_duplicate_headers.csv", table(head=["mouse", "cell", "amplitude", "amplitude", "depth_um"]),
    {"error": "more than one column named 'amplitude'"})
add("23_header_only.csv", ",".join(HEAD) + "\n", {"error": "0 row(s)"})
add("24_empty.csv", "", {"error": "is empty"})
add("25_single_column.csv", "amplitude\n" + "".join(f"{r[3]}\n" for r in ROWS), {"error": "1 column(s)"})
add("26_pipe_delimited.txt", table("|"))
add("27_comment_lines.csv", "# exported by ScanImage analysis\n# date 2026-11-30\n" + table())
add("28_spaces_and_units.csv", table(head=["Mouse ID", "Cell", "Condition", "Amplitude (dF/F)", "Depth (um)"]),
    ok(columns=["Mouse ID", "Cell", "Condition", "Amplitude (dF/F)", "Depth (um)"], group="Mouse ID",
       response="Amplitude (dF/F)"))
wide_head = HEAD + ["session", "experimenter", "rig", "laser_mw", "objective", "notes", "zoom"]
add("29_many_columns.csv", table(head=wide_head, rows=[r + (1, "AB", "rig2", 30, "16x", "ok", 2.0) for r in ROWS]),
    ok(columns=wide_head))
add("30_row_number_first.csv", table(head=["row"] + HEAD, rows=[(i + 1, *r) for i, r in enumerate(ROWS)]),
    ok(columns=["row"] + HEAD))
add("31_tab_decimal_comma.txt", table("\t", dec=","))
add("32_dash_for_missing.csv", table(na_row=7, na="-"))
add("33_excel_workbook.xlsx", b"PK\x03\x04" + bytes(range(256)) * 4, {"error": "Save As > CSV"})
add("34_subject_day.csv", "subject,day,score\n" + "".join(
    f"S{s},day{d},{round(float(10 + d + rng.normal()), 2)}\n" for s in range(1, 9) for d in range(1, 5)
    for _ in range(3)),
    {"rows": 96, "columns": ["subject", "day", "score"], "group": "subject", "response": "score",
     "family": "gaussian"})
add("35_utf8_umlaut_header.csv", table(head=["Maus", "Zelle", "Bedingung", "Amplitude_µV", "Tiefe_µm"]),
    {"rows": N, "columns": ["Maus", "Zelle", "Bedingung", "Amplitude_µV", "Tiefe_µm"], "group": None,
     "response": "Amplitude_µV", "family": "gaussian"})
add("36_ragged_rows.csv", table() + "M9,M9c1,saline,2.1,200,extra,fields\n", {"error": "could not be read"})
add("37_semicolon_dot_decimal.csv", table(";"))
add("39_r_write_table_rownames.txt", " ".join(f'"{h}"' for h in HEAD) + "\n" + "".join(
    f'"{i + 1}" ' + " ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in r) + "\n"
    for i, r in enumerate(ROWS)))
add("40_header_shorter_by_one_comma.csv", ",".join(HEAD) + "\n" + "".join(
    f"{i + 1}," + ",".join(map(str, r)) + "\n" for i, r in enumerate(ROWS)))
add("38_numeric_mouse_codes.csv", table(rows=[(int(r[0][1:]), *r[1:]) for r in ROWS]))


def main() -> None:
    for old in HERE.glob("[0-9][0-9]_*"):
        old.unlink()
    expected = {}
    for name, (raw, exp) in FILES.items():
        (HERE / name).write_bytes(raw)
        expected[name] = exp
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(FILES)} files written to {HERE}")


if __name__ == "__main__":
    main()
