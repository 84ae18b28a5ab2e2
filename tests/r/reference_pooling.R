# Reference values for partial pooling, the mouse-means analysis and SD profiles (issue 14).
#
# Run from the repository root:   Rscript tests/r/reference_pooling.R
# Writes tests/reference/pooling.json and tests/data/profile_singular.csv.
#   * ranef(fit, condVar = TRUE): conditional modes and their conditional SDs (lme4);
#   * the summary-statistics analysis: lm on aggregate() means per mouse (and condition);
#   * confint(fit, method = "profile") for the random-effect SDs, with lme4's default fit and
#     a tightly converged refit (the profile starts from the optimum, so both are kept).
#     lme4 profiles the ML deviance even for a REML fit, so REML and ML fits give one interval.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
source("tests/r/common.R")

freq <- read.csv("datasets/ca_frequency.csv")
freq$treatment_idx <- factor(freq$treatment_idx)
freq$midx <- factor(freq$midx)
amp <- read.csv("datasets/ca_amplitude.csv")
amp$treatment <- factor(amp$treatment)
amp$midx <- factor(amp$midx)

ranef_case <- function(formula, data, reml) {
  fit <- lmer(formula, data = data, REML = reml, control = TIGHT)
  re <- ranef(fit, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")  # k x k x levels
  k <- ncol(re)
  sds <- t(sapply(seq_len(nrow(re)), function(i) sqrt(diag(matrix(pv[, , i], k, k)))))
  if (k == 1) sds <- matrix(sds, ncol = 1)
  list(formula = deparse(formula, width.cutoff = 500L), reml = reml,
       levels = rownames(re), terms = colnames(re),
       modes = unname(as.matrix(re)), cond_sd = unname(sds),
       coef = unname(as.matrix(coef(fit)[[1]][, colnames(re), drop = FALSE])))
}

means_case <- function(data, response, condition, group, within) {
  f <- as.formula(paste(response, "~", condition, "+", group))
  m <- aggregate(f, data = data, FUN = mean)
  fm <- if (within) as.formula(paste(response, "~", condition, "+", group)) else
    as.formula(paste(response, "~", condition))
  s <- summary(lm(fm, data = m))$coefficients
  keep <- !startsWith(rownames(s), group)
  list(terms = rownames(s)[keep], estimate = unname(s[keep, 1]), se = unname(s[keep, 2]),
       p = unname(s[keep, 4]), df = summary(lm(fm, data = m))$df[2])
}

profile_case <- function(formula, data, reml) {
  fit0 <- lmer(formula, data = data, REML = reml)
  fit <- lmer(formula, data = data, REML = reml, control = TIGHT)
  ci <- confint(fit, method = "profile", parm = "theta_", oldNames = FALSE)
  ci0 <- confint(fit0, method = "profile", parm = "theta_", oldNames = FALSE)
  vc <- as.data.frame(VarCorr(fit))
  list(formula = deparse(formula, width.cutoff = 500L), reml = reml,
       names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]),
       lower_default = unname(ci0[, 1]), upper_default = unname(ci0[, 2]),
       sd = vc$sdcor, singular = isSingular(fit))
}

# A small data set with a singular fit: 5 mice x 8 cells, no true mouse variance.
seed <- 1
repeat {  # the first seed whose fit is singular (mouse SD estimated as 0)
  set.seed(seed)
  sing <- data.frame(mouse = factor(rep(1:5, each = 8)), x = factor(rep(1:2, 20)))
  sing$y <- 0.3 * (sing$x == "2") + rnorm(40)
  if (isSingular(lmer(y ~ x + (1 | mouse), data = sing))) break
  seed <- seed + 1
}
write.csv(sing, "tests/data/profile_singular.csv", row.names = FALSE)

out <- list(
  ranef = list(
    amp_ri = ranef_case(res ~ treatment + (1 | midx), amp, TRUE),
    amp_rs = ranef_case(res ~ treatment + (1 + treatment | midx), amp, TRUE),
    freq_ri_ml = ranef_case(res ~ treatment_idx + (1 | midx), freq, FALSE)
  ),
  means = list(
    freq = means_case(freq, "res", "treatment_idx", "midx", TRUE),
    amp = means_case(amp, "res", "treatment", "midx", TRUE)
  ),
  profile = list(
    amp_ri = profile_case(res ~ treatment + (1 | midx), amp, TRUE),
    amp_ri_ml = profile_case(res ~ treatment + (1 | midx), amp, FALSE),
    singular = profile_case(y ~ x + (1 | mouse), sing, TRUE),
    freq_two = profile_case(res ~ treatment_idx + (1 | midx) + (1 | midx:treatment_idx), freq, FALSE)
  )
)
write_json(out, "tests/reference/pooling.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
