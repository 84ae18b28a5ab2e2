# Time lme4 / lmerTest / glmer on the large benchmark designs of mmteach (issue 13).
#
#   Rscript tools/bench_r.R DIR [REPEAT]
#
# DIR holds one CSV per design, written by tools/bench_side_by_side.py from
# mmteach.bench.scale_data (the very data `python -m mmteach bench` fits). Prints JSON:
# per design the median wall time (seconds) of
#   lme4:     the fit alone (lme4::lmer REML, or lme4::glmer Laplace), default control;
#   lmerTest: lmerTest::lmer + summary() (Satterthwaite df), what mmteach's fit_lme returns.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
reps <- if (length(args) > 1) as.integer(args[2]) else 3L

designs <- list(
  glmm_crossed_7584 = list(f = y ~ x + (1 | subj) + (1 | item), family = "binomial"),
  lme_many_effects = list(f = y ~ x + (1 + x | g) + (1 | h) + (1 | k), family = "gaussian"),
  lme_crossed_50k = list(f = y ~ x + (1 | a) + (1 | b), family = "gaussian"),
  # 622 cells x 2 effects = 1,244 random effects for 1,244 rows: lme4 refuses by default
  lme_cell_slopes_ca_amplitude = list(f = res ~ treatment + (1 | midx) + (treatment | cidx),
                                      family = "gaussian",
                                      ctrl = lmerControl(check.nobs.vs.nRE = "ignore"))
)

median_time <- function(expr_fun) {
  expr_fun()  # warm-up, as the Python side
  ts <- replicate(reps, system.time(expr_fun())[["elapsed"]])
  median(ts)
}

out <- list()
for (name in names(designs)) {
  file <- file.path(dir, paste0(name, ".csv"))
  if (!file.exists(file)) next
  d <- read.csv(file)
  spec <- designs[[name]]
  ctrl <- if (is.null(spec$ctrl)) lmerControl() else spec$ctrl
  if (spec$family == "gaussian") {
    t_fit <- median_time(function() lme4::lmer(spec$f, data = d, control = ctrl))
    t_sum <- median_time(function() summary(lmerTest::lmer(spec$f, data = d, control = ctrl)))
    fit <- lme4::lmer(spec$f, data = d, control = ctrl)
  } else {
    t_fit <- median_time(function() lme4::glmer(spec$f, data = d, family = spec$family))
    t_sum <- t_fit
    fit <- lme4::glmer(spec$f, data = d, family = spec$family)
  }
  out[[name]] <- list(lme4 = t_fit, lmerTest = t_sum, loglik = as.numeric(logLik(fit)),
                      fixef = as.list(fixef(fit)))
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "\n")
