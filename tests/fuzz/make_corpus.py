"""Odd and hostile inputs for the fuzz suite: data files, original-format files and formulas.

``python tests/fuzz/make_corpus.py OUT_DIR`` writes the files; the tests call
:func:`make_files` into a temporary folder. Everything is generated from a fixed seed, so
the corpus is the same on every run. Each file is small (the largest is ~1.2 MB, the
10,000-mouse design of issue 15) so the whole suite runs in about a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SEED = 15


def _design(rng: np.random.Generator, groups: int, per: int, *, sep: str = ",",
            names: tuple[str, str, str] = ("res", "treatment", "mouse")) -> str:
    """A plausible table: a response, a 2-level treatment between mice, a mouse id."""
    mouse = np.repeat(np.arange(1, groups + 1), per)
    treat = np.repeat(rng.integers(1, 3, groups), per)
    res = 1 + 0.5 * treat + np.repeat(rng.normal(size=groups), per) + rng.normal(size=mouse.size)
    lines = [sep.join(names)] + [f"{r:.4f}{sep}{t}{sep}{m}" for r, t, m in zip(res, treat, mouse)]
    return "\n".join(lines) + "\n"


def _rows(header: list[str], rows: list[list[object]], sep: str = ",") -> str:
    return "\n".join([sep.join(header)] + [sep.join(str(v) for v in r) for r in rows]) + "\n"


def _generic_files(rng: np.random.Generator) -> dict[str, bytes]:
    base = _design(rng, 8, 4)
    lines = base.splitlines()
    body = lines[1:]
    files: dict[str, str | bytes] = {
        # empty and nearly empty
        "empty.csv": b"",
        "whitespace.csv": "   \n\n  \t\n",
        "header_only.csv": "res,treatment,mouse\n",
        "one_row.csv": "res,treatment,mouse\n1.0,1,1\n",
        "one_column.csv": "res\n1\n2\n3\n",
        "no_header_numbers.csv": "\n".join(body) + "\n",
        # encodings and bytes
        "bom.csv": "\ufeff" + base,
        "latin1.csv": base.replace("treatment", "trait\u00e9ment").encode("latin-1"),
        "utf16.csv": base.encode("utf-16"),
        "png_header.csv": b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 400, dtype=np.uint8)),
        "nul_bytes.csv": base.replace(",1,", ",\x00,").encode(),
        "crlf.csv": base.replace("\n", "\r\n"),
        "cr_only.csv": base.replace("\n", "\r"),
        # separators and quoting
        "excel_sep_line.csv": "sep=,\n" + base,
        "trailing_commas.csv": "\n".join(ln + "," for ln in lines) + "\n",
        "semicolon_decimal_comma.csv": base.replace(",", ";").replace(".", ","),
        "tabs.tsv": base.replace(",", "\t"),
        "mixed_separators.csv": lines[0] + "\n" + "\n".join(
            ln.replace(",", ";") if i % 2 else ln for i, ln in enumerate(body)) + "\n",
        "ragged_rows.csv": lines[0] + "\n" + "\n".join(
            ln + (",9,9" if i % 5 == 0 else "") for i, ln in enumerate(body)) + "\n",
        "unbalanced_quote.csv": lines[0] + "\n" + '"1.0,1,1\n' + "\n".join(body) + "\n",
        "quoted_newlines.csv": 'res,treatment,"mouse\nid"\n' + "\n".join(body) + "\n",
        "whitespace_separated.txt": base.replace(",", "   "),
        # names
        "duplicate_names.csv": base.replace("res,treatment,mouse", "res,res,mouse"),
        "empty_name.csv": base.replace("res,treatment,mouse", "res,,mouse"),
        "formula_names.csv": base.replace("res,treatment,mouse", "a+b,(1|x),y~"),
        "spaces_accents.csv": base.replace("res,treatment,mouse", "amplitude (\u00b5V),tr\u00e9atment,mouse id"),
        "markdown_names.csv": base.replace(
            "res,treatment,mouse", "**bold** [click](http://example.invalid),<b>x</b>,$\\alpha$"),
        "script_name.csv": base.replace("res,treatment,mouse", "res,<script>alert(1)</script>,mouse"),
        "backtick_names.csv": base.replace("res,treatment,mouse", "r`es,tr\\eat,`m`"),
        "long_name.csv": base.replace("res,treatment,mouse", "r" * 10_000 + ",treatment,mouse"),
        "reserved_names.csv": base.replace("res,treatment,mouse", "if,TRUE,function"),
        "numeric_names.csv": base.replace("res,treatment,mouse", "1,2,3"),
        "many_columns.csv": ",".join(f"c{j}" for j in range(2000)) + "\n" + "\n".join(
            ",".join(f"{v:.3f}" for v in rng.normal(size=2000)) for _ in range(5)) + "\n",
        # values
        "inf_predictor.csv": _rows(["res", "x", "mouse"], [[f"{rng.normal():.3f}", "inf" if i == 3 else i % 4,
                                                           i // 4] for i in range(32)]),
        "inf_response.csv": base.replace(lines[3].split(",")[0], "-inf", 1),
        "nan_text.csv": base.replace(lines[2].split(",")[0], "NaN", 1),
        "huge_values.csv": _rows(["res", "treatment", "mouse"], [[f"{1e300 * (1 + rng.random()):.6g}", i % 2,
                                                                  i // 4] for i in range(32)]),
        "tiny_values.csv": _rows(["res", "treatment", "mouse"], [[f"{1e-300 * (1 + rng.random()):.6g}", i % 2,
                                                                  i // 4] for i in range(32)]),
        "id_1e19.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.normal():.3f}", i % 2,
                                                              "1e19" if i < 8 else i // 4] for i in range(32)]),
        "id_uint64.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.normal():.3f}", i % 2,
                                                                10**19 + i // 4] for i in range(32)]),
        "negative_zero.csv": base.replace(",1\n", ",-0\n"),
        "text_in_response.csv": base.replace(lines[4].split(",")[0], "oops", 1),
        "text_response_numeric_predictor.csv": _rows(["group_name", "value", "mouse"], [
            [f"g{i % 3}", f"{rng.normal():.3f}", i // 4] for i in range(32)]),
        "booleans.csv": _rows(["res", "flag", "mouse"], [[f"{rng.normal():.3f}", "TRUE" if i % 2 else "FALSE",
                                                          i // 4] for i in range(32)]),
        "dates.csv": _rows(["res", "day", "mouse"], [[f"{rng.normal():.3f}", f"2024-01-{1 + i % 28:02d}",
                                                      i // 4] for i in range(32)]),
        "percent.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.integers(1, 99)}%", i % 2, i // 4]
                                                              for i in range(32)]),
        "thousands.csv": _rows(["res", "treatment", "mouse"], [[f'"{rng.integers(1000, 9000):,}"', i % 2,
                                                                 i // 4] for i in range(32)]),
        "csv_injection.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.normal():.3f}", i % 2,
                                                                    "=HYPERLINK(\"http://x\")" if i < 4 else i // 4]
                                                                   for i in range(32)]),
        "huge_cell.csv": "res,treatment,mouse\n" + "1," + "x" * 200_000 + ",1\n" + "\n".join(body) + "\n",
        # designs that cannot be fitted as asked
        "constant_response.csv": _rows(["res", "treatment", "mouse"], [[2.5, i % 2, i // 4] for i in range(32)]),
        "constant_predictor.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.normal():.3f}", 1, i // 4]
                                                                        for i in range(32)]),
        "near_collinear.csv": _near_collinear(rng),
        "perfect_fit.csv": _rows(["res", "x", "mouse"], [[2 * i + 1, i, i // 4] for i in range(32)]),
        "one_group.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.normal():.3f}", i % 2, 1] for i in range(32)]),
        "two_groups.csv": _design(rng, 2, 6),
        "every_row_own_group.csv": _rows(["res", "treatment", "mouse"], [[f"{rng.normal():.3f}", i % 2, i]
                                                                         for i in range(40)]),
        "all_missing_response.csv": _rows(["res", "treatment", "mouse"], [["NA", i % 2, i // 4] for i in range(32)]),
        "missing_ids.csv": base.replace(",1\n", ",\n"),
        "binary_response.csv": _rows(["lick", "dff", "mouse"], [[int(rng.random() < 0.4), f"{rng.normal():.3f}",
                                                                i // 8] for i in range(64)]),
        "many_groups_2_rows.csv": _design(rng, 1000, 2),
        "wide_text_levels.csv": _rows(["res", "cell", "mouse"], [[f"{rng.normal():.3f}", f"cell{i}", i // 4]
                                                                 for i in range(400)]),
        "negative_counts.csv": _rows(["res", "treatment", "mouse"], [[-(i % 5), i % 2, i // 4] for i in range(32)]),
        "semicolon.csv": base.replace(",", ";"),
        "ten_thousand_mice.csv": _design(rng, 10_000, 3),
    }
    return {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()}


def _near_collinear(rng: np.random.Generator) -> str:
    x1 = rng.normal(size=40)
    x2 = 2 * x1 + rng.normal(scale=1e-6, size=40)
    y = x1 + rng.normal(size=40)
    return _rows(["res", "x1", "x2", "mouse"], [[f"{a:.6f}", f"{b:.9f}", f"{c:.9f}", i // 5]
                                               for i, (a, b, c) in enumerate(zip(y, x1, x2))])


def _original_files(rng: np.random.Generator) -> dict[str, bytes]:
    """Files named like the published originals (they go through the original readers)."""
    def ex2(rows: int, mice: int, res: str | None = None) -> str:
        out = ["res,treatment_idx,midx"]
        for i in range(rows):
            out.append(f"{res or f'{rng.random():.3f}'},{5 + i % 4},{1 + i % mice}")
        return "\n".join(out) + "\n"

    def ex3(res: str) -> str:
        return "res,treatment,midx,cidx\n" + "\n".join(
            f"{res if i == 0 else f'{rng.random():.3f}'},{1 + i % 2},{1 + i // 10},{1 + i // 2}"
            for i in range(40)) + "\n"

    files = {
        "orig_header_only/Example2.txt": "res,treatment_idx,midx\n",
        "orig_header_only/Example3.txt": "res,treatment,midx,cidx\n",
        "orig_header_only/waterlick_sim.txt": "mouseID lick dff\n",
        "orig_blank_rows/Example2.txt": "res,treatment_idx,midx\n,,\n,,\n",
        "orig_1000_mice/Example2.txt": ex2(3000, 1000),
        "orig_huge/Example3.txt": ex3("1e300"),
        "orig_inf/Example3.txt": ex3("inf"),
        "orig_id_1e19/waterlick_sim.txt": "mouseID lick dff\n" + "\n".join(
            f"{'1e19' if i < 5 else 1 + i // 5} {i % 2} {rng.normal():.3f}" for i in range(40)) + "\n",
        "orig_wrong_codes/Example2.txt": "res,treatment_idx,midx\n" + "\n".join(
            f"{rng.random():.3f},{9 + i % 2},{1 + i // 4}" for i in range(16)) + "\n",
        "orig_lick_not_binary/waterlick_sim.txt": "mouseID lick dff\n" + "\n".join(
            f"{1 + i // 5} {i % 3} {rng.normal():.3f}" for i in range(40)) + "\n",
    }
    return {k: v.encode() for k, v in files.items()}


def make_files(out: Path) -> list[Path]:
    """Write the corpus under ``out``; returns the paths (generic files first)."""
    rng = np.random.default_rng(SEED)
    paths = []
    for name, raw in {**_generic_files(rng), **_original_files(rng)}.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        paths.append(path)
    return paths


# Odd and hostile formulas, for data with columns res, treatment, mouse, cell and n.
FORMULAS: list[str] = [
    "res ~ treatment + (1 | mouse)",
    "res ~ treatment + (1 | mouse/cell)",
    "res ~ treatment + (1 | mouse) + (1 | cell)",
    "res ~ treatment + (treatment || mouse)",
    "[Log in again](http://example.invalid/login)",
    "res ~ treatment + [click](http://example.invalid)",
    "<script>alert(1)</script> ~ treatment",
    "res ~ **bold** + (1 | mouse)",
    "__import__('os').system('ls') ~ treatment",
    "res ~ eval(treatment) + (1 | mouse)",
    "res ~ log(treatment) + (1 | mouse)",
    "log(res) ~ treatment",
    "res ~ treatment^2",
    "res ~ .",
    "~ treatment",
    "res ~",
    "res ~ treatment +",
    "res ~ treatment + (1 | )",
    "res ~ treatment + ( | mouse)",
    "res ~ treatment + (1 | mouse",
    "res ~ treatment + 1 | mouse)",
    "res ~ " + "*".join(["treatment"] * 30),
    "res ~ " + "(" * 1000 + "treatment" + ")" * 1000,
    "res ~ treatment + (1 | " + "(" * 30 + "mouse" + ")" * 30 + ")",
    "res ~ " + " + ".join(["treatment"] * 600),
    "res ~ treatment + (1 | mouse) " + "x" * 100_000,
    "res ~ `treatment + (1 | mouse)",
    "res ~ `` + (1 | mouse)",
    "res ~ treatment\n+ (1 | mouse)",
    "res\t~\ttreatment\t+\t(1|mouse)",
    "res ~ treatment\x00 + (1 | mouse)",
    "res ~ treatment + (1 | mouse) \U0001f42d",
    "res ~ \u202etreatment + (1 | mouse)",
    "res ~ 0",
    "res ~ 1 - 1",
    "res ~ treatment + (0 | mouse)",
    "cbind(res, n - res) ~ treatment + (1 | mouse)",
    "res ~ treatment + (1 | mouse) + (1 | mouse)",
    "res ~ factor(factor(treatment)) + (1 | mouse)",
    "res ~ treatment + (1 | factor(mouse))",
    "res ~ treatment + (1 | nonexistent)",
    "res ~ res + (1 | mouse)",
    "res ~ mouse + (1 | mouse)",
    "res ~ treatment + (cell | mouse)",
    "RES ~ Treatment + (1 | Mouse)",
]


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz_corpus")
    written = make_files(target)
    print(f"{len(written)} files under {target}; {len(FORMULAS)} formulas in FORMULAS")
