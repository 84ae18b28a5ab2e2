# Reference rejection rates for the design planner (mmteach/power.py, issue 14).
#
# Run from the repository root:   Rscript tests/r/reference_power.R
# Writes tests/reference/power.json.  A plain lme4 + lmerTest loop (as simr::powerSim does,
# without simr): each replicate simulates every cell, fits lm / t.test / lmerTest::lmer and
# records whether p < 0.05.  Kept small (300 replicates per point) so it runs in about two
# minutes; the Python test compares rates within Monte Carlo error of both simulations.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

between_rep <- function(mice, cells, icc, effect) {
  mouse <- factor(rep(1:(2 * mice), each = cells))
  cond <- factor(rep(rep(1:2, each = mice), each = cells))
  y <- effect * (cond == "2") + rnorm(2 * mice, 0, sqrt(icc))[mouse] +
    rnorm(length(mouse), 0, sqrt(1 - icc))
  means <- tapply(y, mouse, mean)
  mcond <- factor(rep(1:2, each = mice))
  fit <- suppressMessages(lmer(y ~ cond + (1 | mouse)))
  c(pooled_lm = anova(lm(y ~ cond))[["Pr(>F)"]][1],
    mouse_means = t.test(means ~ mcond, var.equal = TRUE)$p.value,
    lme = anova(fit)[["Pr(>F)"]][1],
    singular = isSingular(fit))
}

within_rep <- function(mice, cells, icc, effect, slope_sd) {
  n0 <- cells %/% 2
  n1 <- cells - n0
  mouse <- factor(rep(1:mice, each = cells))
  x <- rep(c(rep(0, n0), rep(1, n1)), mice)
  s <- rnorm(mice, 0, slope_sd)
  y <- (effect + s[mouse]) * x + rnorm(mice, 0, sqrt(icc))[mouse] +
    rnorm(length(x), 0, sqrt(1 - icc))
  d <- tapply(y[x == 1], mouse[x == 1], mean) - tapply(y[x == 0], mouse[x == 0], mean)
  ri <- suppressMessages(lmer(y ~ x + (1 | mouse)))
  rs <- suppressMessages(lmer(y ~ x + (1 + x | mouse)))
  c(pooled_lm = summary(lm(y ~ x))$coefficients["x", 4],
    mouse_means = t.test(d)$p.value,
    lme = summary(ri)$coefficients["x", "Pr(>|t|)"],
    lme_slope = summary(rs)$coefficients["x", "Pr(>|t|)"],
    singular = isSingular(rs))
}

reps <- 300
points <- list(
  list(kind = "between", mice = 6, cells_per_mouse = 10, icc = 0.3, effect = 0, slope_sd = 0),
  list(kind = "between", mice = 6, cells_per_mouse = 10, icc = 0.3, effect = 1, slope_sd = 0),
  list(kind = "within", mice = 8, cells_per_mouse = 20, icc = 0.3, effect = 0, slope_sd = 0.5),
  list(kind = "within", mice = 8, cells_per_mouse = 20, icc = 0.3, effect = 0.5, slope_sd = 0.2)
)
out <- list()
set.seed(20261130)
for (i in seq_along(points)) {
  p <- points[[i]]
  res <- replicate(reps, if (p$kind == "between") {
    between_rep(p$mice, p$cells_per_mouse, p$icc, p$effect)
  } else {
    within_rep(p$mice, p$cells_per_mouse, p$icc, p$effect, p$slope_sd)
  })
  pv <- res[rownames(res) != "singular", , drop = FALSE]
  out[[i]] <- list(design = p, reps = reps,
                   rejection_rate = as.list(rowMeans(pv < 0.05)),
                   singular_rate = mean(res["singular", ]))
}
write_json(list(points = out, alpha = 0.05), "tests/reference/power.json", auto_unbox = TRUE,
           digits = NA, pretty = TRUE)
