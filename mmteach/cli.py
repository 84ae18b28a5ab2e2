"""Command line: ``python -m mmteach fit|compare|simulate|bench|datasets``.

Instructors use it to prepare a class (the same numbers the app shows, as R-like tables
or JSON). Bad input exits with status 2 and a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mmteach.errors import MMTeachError
from mmteach.results import Comparison, FitResult, clean_json

DF_METHODS = ("satterthwaite", "kenward-roger", "containment", "z")


def _fmt(x: Any, digits: int = 6) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "NA"
        if math.isinf(x):
            return "Inf"
        if x != 0 and (abs(x) < 1e-4 or abs(x) >= 1e6):
            return f"{x:.{digits - 2}e}"
        return f"{x:.{digits}g}"
    return str(x)


def format_table(df: pd.DataFrame) -> str:
    """A plain fixed-width table (like R's print of a matrix)."""
    cells = [[str(c) for c in df.columns]] + [[_fmt(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(r[j]) for r in cells) for j in range(len(cells[0]))]
    numeric = [j > 0 and pd.api.types.is_numeric_dtype(df.iloc[:, j]) for j in range(df.shape[1])]
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(v.rjust(w) if numeric[j] else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_text(result: FitResult, data_label: str = "") -> str:
    """An R-summary-like text of a fit."""
    out = [f"{result.method} fit ({result.model}): {result.formula}"]
    if data_label:
        out.append(f"Data: {data_label}")
    g = ", ".join(f"{name} {n}" for name, n in result.groups)
    out.append(f"Number of obs: {result.n_obs}" + (f"; groups: {g}" if g else ""))
    if not math.isnan(result.loglik):
        out.append(
            f"logLik {_fmt(result.loglik, 8)}  AIC {_fmt(result.aic, 8)}  BIC {_fmt(result.bic, 8)}"
            + (f"  REML criterion {_fmt(result.reml_criterion, 8)}" if not math.isnan(result.reml_criterion) else "")
        )
    if result.varcomps:
        out += ["", "Random effects:", format_table(result.variance_components())]
    for c in result.correlations:
        out.append(f"  corr({c.term1}, {c.term2} | {c.group}) = {_fmt(c.corr, 4)}")
    heading = ("posterior mean, SD and 95% credible interval" if result.model == "bayes"
               else f"df: {result.df_method}")
    out += ["", f"Fixed effects ({heading}):", format_table(result.tidy())]
    if result.singular:
        out.append("\nboundary (singular) fit: see messages")
    if result.messages:
        out += ["", "Messages:"] + [f"- {m}" for m in result.messages]
    out += ["", "R:", result.r_code()]
    return "\n".join(out)


def comparison_text(cmp: Comparison) -> str:
    lines = [
        f"Reduced: {cmp.reduced}",
        f"Full:    {cmp.full}",
        f"logLik reduced {_fmt(cmp.loglik_reduced, 8)}, full {_fmt(cmp.loglik_full, 8)}",
        f"Chisq = {_fmt(cmp.chisq, 7)} on {cmp.df} df, p = {_fmt(cmp.p_value, 4)}",
    ]
    if not math.isnan(cmp.p_value_boundary):
        lines.append(f"Boundary-corrected (50:50 chi-bar-square) p = {_fmt(cmp.p_value_boundary, 4)}")
        lines.append(cmp.boundary_note)
    if cmp.bootstrap_samples:
        lines.append(
            f"Parametric bootstrap p = {_fmt(cmp.bootstrap_p_value, 4)} "
            f"({cmp.bootstrap_samples} samples, {cmp.bootstrap_failed} failed refits)"
        )
        lines.append(
            f"Parametric bootstrap p, PBmodcomp's convention (LRT* <= 0 left out) = "
            f"{_fmt(cmp.bootstrap_p_value_pbmodcomp, 4)} ({cmp.bootstrap_positive} positive LRT*)"
        )
        lines.append(cmp.bootstrap_note)
    lines += [f"- {m}" for m in cmp.messages]
    if cmp.r_call:
        lines += ["", "R:", cmp.r_call]
    return "\n".join(lines)


def _load(data: str) -> tuple[pd.DataFrame, str]:
    from mmteach.datasets import resolve_data

    frame = resolve_data(data)
    label = str(frame.attrs.get("source_label", ""))
    return frame, f"{data} ({label})" if label else str(data)


def _cmd_fit(args: argparse.Namespace) -> dict[str, Any] | str:
    data, label = _load(args.data)
    if args.bayes:
        from mmteach.bayes import fit_bayes_glmm

        if not args.family:
            raise MMTeachError("--bayes fits a Bayesian GLMM: add --family binomial or poisson.")
        result = fit_bayes_glmm(data, args.formula, family=args.family, factors=args.factor,
                                b_prior_sd=args.prior_sd)
    elif args.family:
        from mmteach.glmm import fit_glmm

        result = fit_glmm(data, args.formula, family=args.family, link=args.link, nagq=args.nagq,
                          factors=args.factor)
    else:
        from mmteach.formula import parse_formula

        if parse_formula(args.formula, [str(c) for c in data.columns]).has_random:
            from mmteach.lme import fit_lme

            result = fit_lme(data, args.formula, factors=args.factor, reml=not args.ml,
                             df_method=args.df, allow_unidentifiable=args.allow_unidentifiable)
        else:
            from mmteach.lm import fit_lm

            result = fit_lm(data, args.formula, factors=args.factor)
    if args.pooling or args.profile:
        return _pooling_profile(args, result)
    if args.json:
        out = result.to_dict()
        out["data_source"] = label
        return out
    return summary_text(result, label)


def _pooling_profile(args: argparse.Namespace, result: Any) -> dict[str, Any] | str:
    """``fit --pooling``: per-mouse own / LME / pooled estimates; ``fit --profile``: SD profile."""
    from mmteach.pooling import partial_pooling
    from mmteach.profile import profile_sd

    out: dict[str, Any] = {}
    text: list[str] = []
    if args.pooling:
        pp = partial_pooling(result)
        out["pooling"] = pp.table.to_dict(orient="records")
        text += [format_table(pp.table), pp.sentence()]
    if args.profile:
        pr = profile_sd(result)
        out["profile"] = {**pr.glance().iloc[0].to_dict(), "advice": pr.advice()}
        text += [f"{pr.term} SD {pr.estimate:.4g}, {pr.level:.0%} profile interval "
                 f"[{pr.conf_low:.4g}, {pr.conf_high:.4g}] (ML, as lme4's profile)", pr.advice()]
    return out if args.json else "\n\n".join(text)


def _cmd_compare(args: argparse.Namespace) -> dict[str, Any] | str:
    from mmteach.compare import compare_models

    data, label = _load(args.data)
    if args.bayes:
        return _bayes_factor(args, data, label)
    kwargs: dict[str, Any] = {"factors": args.factor}
    if args.family:
        kwargs.update(family=args.family, bootstrap=args.bootstrap, seed=args.seed)
    elif args.bootstrap:
        raise MMTeachError("--bootstrap is available for GLMMs: add --family binomial or poisson.")
    cmp = compare_models(data, args.full, args.reduced, **kwargs)
    if args.json:
        out = cmp.to_dict()
        out["data_source"] = label
        return out
    return (f"Data: {label}\n" if label else "") + comparison_text(cmp)


def _bayes_factor(args: argparse.Namespace, data: pd.DataFrame, label: str) -> dict[str, Any] | str:
    from mmteach.bayes import bayes_factor, fit_bayes_glmm

    if not args.family:
        raise MMTeachError("--bayes compares Bayesian GLMMs: add --family binomial or poisson.")
    fits = [fit_bayes_glmm(data, f, family=args.family, factors=args.factor,
                           b_prior_sd=args.prior_sd) for f in (args.full, args.reduced)]
    bf = bayes_factor(*fits)
    if args.json:
        return {"bf10": bf.bf10, "log_bf10": bf.log_bf10, "log_ml_full": bf.log_ml1,
                "log_ml_reduced": bf.log_ml0, "prior_sd": args.prior_sd, "data_source": label}
    return ((f"Data: {label}\n" if label else "")
            + f"Bayes factor of {bf.formula} against {bf.reduced}: BF10 = {bf.bf10:.4g} "
            f"(log {bf.log_bf10:.4f}; log marginal likelihoods {bf.log_ml1:.4f} and "
            f"{bf.log_ml0:.4f}); slopes normal(0, {args.prior_sd:g}), SDs half-Cauchy(0, 5).\n\n"
            f"R:\n{bf.r_code()}")


def _floats(text: str) -> tuple[float, ...] | float:
    parts = [float(p) for p in text.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else tuple(parts)


def _cmd_simulate(args: argparse.Namespace) -> dict[str, Any] | str:
    from mmteach import simulate

    common = {"reps": args.reps, "seed": args.seed}
    if args.study == "power":
        return _power(args)
    if args.study == "report":
        result = simulate.simulate_report(
            n_classes=args.n_classes, n_per_class=args.n_per_class, beta=(args.beta0, args.beta1),
            sd_b0=args.sd_b0, sd_b1=args.sd_b1, sigma_w=args.sigma_w, x_low=args.x_low,
            x_high=args.x_high, redraw_random_effects=args.redraw, **common,
        )
    else:
        mice = tuple(int(m) for m in args.mice_per_condition.split(","))
        result = simulate.simulate_type1(
            mice_per_condition=mice, cells_per_mouse=args.cells_per_mouse or 50,
            icc=_floats(args.icc or ",".join(str(v) for v in simulate.EXAMPLE1_ICC)),
            alpha=args.alpha, **common,
        )
    return result.to_dict() if args.json else result.summary_text()


def _power(args: argparse.Namespace) -> dict[str, Any] | str:
    from mmteach.power import Design, simulate_power

    icc = _floats(args.icc) if args.icc is not None else 0.3
    if not isinstance(icc, float):
        raise ValueError("The power study takes one ICC (the same in every condition), e.g. --icc 0.3.")
    design = Design(kind=args.kind, conditions=args.conditions, mice=args.mice,
                    cells_per_mouse=args.cells_per_mouse or 20, icc=icc, effect=args.effect,
                    slope_sd=args.slope_sd)
    if args.dask:
        from mmteach.power import power_grid

        grid = power_grid([design], reps=args.reps, alpha=args.alpha, seed=args.seed, dask=args.dask)
        return {"study": "power", "design": design.__dict__, "grid": grid.to_dict(orient="records")}
    result = simulate_power(design, reps=args.reps, alpha=args.alpha, seed=args.seed)
    return result.to_dict() if args.json else result.summary_text()


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any] | str:
    from mmteach.bench import run_benchmarks

    timings = run_benchmarks(args.names or None)
    if args.json:
        return timings
    return "\n".join(f"{k:32s} {v * 1000:10.2f} ms" for k, v in timings.items())


def _cmd_datasets(args: argparse.Namespace) -> dict[str, Any] | str:
    from mmteach.datasets import list_datasets

    table = list_datasets()
    if args.json:
        return {"datasets": table.to_dict(orient="records")}
    return format_table(table[["name", "title", "label"]])


def _cmd_read(args: argparse.Namespace) -> dict[str, Any] | str:
    from mmteach.reader import guess_roles

    data, label = _load(args.data)
    roles = guess_roles(data)
    out = {"data": label, "rows": len(data), "columns": [str(c) for c in data.columns],
           "read_notes": list(data.attrs.get("read_notes", [])), "response": roles.response,
           "group": roles.group, "predictors": list(roles.predictors), "factors": list(roles.factors),
           "family": roles.family, "formula": roles.formula(), "reasons": list(roles.reasons)}
    if args.json:
        return out
    return "\n".join([f"{label}: {len(data)} rows; columns {', '.join(out['columns'])}",
                      *(f"read: {n}" for n in out["read_notes"]),
                      f"suggested model: {out['formula'] or 'choose the grouping column yourself'} "
                      f"({roles.family})", *roles.reasons])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmteach",
        description="Pooled vs mixed-effects analyses of clustered data, checked against R.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("data", help="a CSV/TSV path or a built-in data set name (see 'datasets')")

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--factor", action="append", default=[], metavar="COL",
                       help="treat this numeric column as a factor (repeatable)")
        p.add_argument("--family", choices=("binomial", "poisson"), help="fit a GLMM")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--bayes", action="store_true",
                       help="Bayesian GLMM with the book's brms priors (needs --family)")
        p.add_argument("--prior-sd", type=float, default=10.0,
                       help="SD of the normal prior on slopes with --bayes (default 10)")

    fit = sub.add_parser("fit", help="fit an LM, LME or GLMM and print its table")
    data_args(fit)
    fit.add_argument("formula", help='lme4 formula, e.g. "res ~ treatment_idx + (1|midx)"')
    model_args(fit)
    method = fit.add_mutually_exclusive_group()
    method.add_argument("--reml", action="store_true", default=True, help="REML (default)")
    method.add_argument("--ml", action="store_true", help="maximum likelihood")
    fit.add_argument("--df", choices=DF_METHODS, default="satterthwaite", help="df method for t tests")
    fit.add_argument("--link", choices=("logit", "probit", "log"), help="GLMM link")
    fit.add_argument("--nagq", type=int, default=1, help="adaptive Gauss-Hermite points (GLMM)")
    fit.add_argument("--allow-unidentifiable", action="store_true",
                     help="fit a model lme4 refuses (as nlme does)")
    fit.add_argument("--pooling", action="store_true",
                     help="LME: each group's own, partially pooled (LME) and pooled estimate")
    fit.add_argument("--profile", action="store_true",
                     help="LME: profile of a random-effect SD and its likelihood interval")
    fit.set_defaults(func=_cmd_fit)

    cmp = sub.add_parser("compare", help="likelihood-ratio test of nested models")
    data_args(cmp)
    cmp.add_argument("full")
    cmp.add_argument("reduced")
    model_args(cmp)
    cmp.add_argument("--bootstrap", type=int, default=0, metavar="N", help="parametric bootstrap samples")
    cmp.add_argument("--seed", type=int, default=1)
    cmp.set_defaults(func=_cmd_compare)

    sim = sub.add_parser("simulate", help="Monte Carlo report, type I error study or design power")
    sim.add_argument("study", choices=("report", "typeI", "power"))
    sim.add_argument("--reps", type=int, default=1000)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--json", action="store_true")
    sim.add_argument("--n-classes", type=int, default=40)
    sim.add_argument("--n-per-class", type=int, default=50)
    sim.add_argument("--beta0", type=float, default=5.0)
    sim.add_argument("--beta1", type=float, default=2.0)
    sim.add_argument("--sd-b0", type=float, default=1.0)
    sim.add_argument("--sd-b1", type=float, default=2.0)
    sim.add_argument("--sigma-w", type=float, default=1.0)
    sim.add_argument("--x-low", type=float, default=1.0, help="X ~ round(U(x_low, x_high))")
    sim.add_argument("--x-high", type=float, default=20.0)
    sim.add_argument("--redraw", action="store_true", help="draw new random effects per replicate")
    sim.add_argument("--mice-per-condition", default="7,6,3,3,5")
    sim.add_argument("--cells-per-mouse", type=int, default=None,
                     help="cells per mouse (default 50 for typeI, 20 for power)")
    sim.add_argument("--icc", default=None,
                     help="one ICC, or one per condition for typeI (default: Example 1's; 0.3 for power)")
    sim.add_argument("--alpha", type=float, default=0.05)
    # power (design planner): a design like Example 1 (between) or Examples 2/3 (within)
    sim.add_argument("--kind", choices=("between", "within"), default="between",
                     help="power: each mouse in one condition, or every mouse in both")
    sim.add_argument("--conditions", type=int, default=2, help="power: number of conditions")
    sim.add_argument("--mice", type=int, default=6,
                     help="power: mice per condition (between) or in total (within)")
    sim.add_argument("--effect", type=float, default=0.5,
                     help="power: true difference in SDs of one cell (0 gives the type I error)")
    sim.add_argument("--slope-sd", type=float, default=0.0,
                     help="power (within): SD of the treatment effect between mice")
    sim.add_argument("--dask", metavar="SCHEDULER", default=None,
                     help="power: run on the Dask cluster at this scheduler address")
    sim.set_defaults(func=_cmd_simulate)

    bench = sub.add_parser("bench", help="median timings in seconds")
    bench.add_argument("names", nargs="*")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=_cmd_bench)

    rd = sub.add_parser("read", help="read a data file as the app's upload page does; suggest a model")
    data_args(rd)
    rd.add_argument("--json", action="store_true")
    rd.set_defaults(func=_cmd_read)

    ds = sub.add_parser("datasets", help="list the built-in data sets")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(func=_cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        out = args.func(args)
    except (MMTeachError, FileNotFoundError, ValueError, KeyError) as err:
        message = " ".join(str(err).split()) if not isinstance(err, KeyError) else f"unknown name {err}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    if isinstance(out, str):
        print(out)
    else:
        print(json.dumps(clean_json(out), indent=2, allow_nan=False, default=str))
    return 0
