# Reference values for the simulation part of mmteach (issue 6).
#
# Run from the repository root:   Rscript tests/r/reference_simulate.R
# Writes tests/reference/simulate.json and the single replicates tests/data/sim_*.csv.
# pytest never runs R; it reads the JSON written here.
#
# Report design (Monte Carlo report): Y = (5 + b0) + (2 + b1) X + e, X = round(runif(n, 1, 20)),
# fitted with lme4::lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE) and lme4's default optimiser
# (nloptwrap / BOBYQA).  Type I design (Example 1): y = b_mouse + e with no condition effect,
# fitted with lmerTest::lmer(y ~ condition + (1 | mouse)) and anova() (type III, Satterthwaite),
# the pooled lm(y ~ condition) F test and the one-way ANOVA of the mouse means.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

dir.create("tests/reference", showWarnings = FALSE, recursive = TRUE)
dir.create("tests/data", showWarnings = FALSE, recursive = TRUE)

# --- report design -------------------------------------------------------------------------
make_report <- function(seed, K, n, beta, sd_b0, sd_b1, sigma_w) {
  set.seed(seed)
  rows <- vector("list", K)
  for (i in seq_len(K)) {
    x <- round(runif(n, min = 1, max = 20))
    b <- c(rnorm(1, 0, sd_b0), rnorm(1, 0, sd_b1))
    y <- (beta[1] + b[1]) + (beta[2] + b[2]) * x + rnorm(n, 0, sigma_w)
    rows[[i]] <- data.frame(Y = y, X = x, class = i)
  }
  do.call(rbind, rows)
}

# True Var(beta-hat) = (sum_i X_i' V_i^-1 X_i)^-1 with V_i = Z_i D Z_i' + sigma^2 I, Z_i = X_i.
true_vcov <- function(dat, sd_b0, sd_b1, sigma_w) {
  D <- diag(c(sd_b0^2, sd_b1^2))
  acc <- matrix(0, 2, 2)
  for (i in unique(dat$class)) {
    X <- cbind(1, dat$X[dat$class == i])
    V <- X %*% D %*% t(X) + diag(sigma_w^2, nrow(X))
    acc <- acc + t(X) %*% solve(V) %*% X
  }
  solve(acc)
}

# lme4's default optimiser stops when the deviance changes by < 1e-8 or so, which leaves
# theta a few 1e-4 from the optimum on small data; the reference values come from a refit
# with tight tolerances (same model, same deviance function), and the default fit's REML
# criterion is kept to show the batch fitter reaches at least as low a deviance.
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 0,
                                    ftol_rel = 0, maxeval = 1e5))

summarise_report <- function(name, dat, design) {
  fit0 <- lmer(Y ~ 1 + X + (1 + X | class), data = dat, REML = TRUE)
  fit <- lmer(Y ~ 1 + X + (1 + X | class), data = dat, REML = TRUE, control = tight)
  vc <- as.data.frame(VarCorr(fit))
  pooled <- summary(stats::lm(Y ~ X, data = dat))$coefficients
  tv <- true_vcov(dat, design$sd_b0, design$sd_b1, design$sigma_w)
  list(
    data = paste0("tests/data/", name, ".csv"),
    design = design,
    r_call = paste("lme4::lmer(Y ~ 1 + X + (1 + X | class), data = dat, REML = TRUE,",
                   "control = lmerControl(optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15,",
                   "xtol_rel = 0, ftol_rel = 0)))"),
    reml_criterion_default = unname(REMLcrit(fit0)),
    fixef_default = as.list(fixef(fit0)),
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    theta = unname(getME(fit, "theta")),
    sd_intercept = vc$sdcor[vc$grp == "class" & vc$var1 == "(Intercept)" & is.na(vc$var2)],
    sd_slope = vc$sdcor[vc$grp == "class" & vc$var1 == "X" & is.na(vc$var2)],
    corr = vc$sdcor[vc$grp == "class" & !is.na(vc$var2)],
    sigma = sigma(fit),
    reml_criterion = unname(REMLcrit(fit)),
    singular = isSingular(fit),
    pooled_lm_se = as.list(pooled[, "Std. Error"]),
    true_vcov = unname(tv),
    true_se = sqrt(diag(tv))
  )
}

report_cases <- list(
  sim_report = list(seed = 101, K = 40, n = 50, beta = c(5, 2), sd_b0 = 1, sd_b1 = 2, sigma_w = 1),
  sim_report_small = list(seed = 202, K = 8, n = 10, beta = c(1, 0.5), sd_b0 = 2, sd_b1 = 0.3,
                          sigma_w = 2),
  # No intercept variance at all and few classes: lmer's estimate of it is (near) zero.
  sim_report_nearzero = list(seed = 303, K = 10, n = 15, beta = c(5, 2), sd_b0 = 0, sd_b1 = 0.5,
                             sigma_w = 3)
)

out <- list(versions = list(R = R.version.string,
                            lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest"))))
out$report <- list()
for (name in names(report_cases)) {
  d <- report_cases[[name]]
  dat <- make_report(d$seed, d$K, d$n, d$beta, d$sd_b0, d$sd_b1, d$sigma_w)
  write.csv(dat, paste0("tests/data/", name, ".csv"), row.names = FALSE)
  out$report[[name]] <- summarise_report(name, dat, d)
}

# --- type I design -------------------------------------------------------------------------
make_typeI <- function(seed, mice, cells, icc, total_var = 1) {
  set.seed(seed)
  rows <- list()
  m <- 0
  for (cond in seq_along(mice)) {
    for (k in seq_len(mice[cond])) {
      m <- m + 1
      nm <- if (length(cells) == 1) cells else cells[m]
      b <- rnorm(1, 0, sqrt(icc[cond] * total_var))
      y <- b + rnorm(nm, 0, sqrt((1 - icc[cond]) * total_var))
      rows[[m]] <- data.frame(y = y, condition = cond, mouse = m)
    }
  }
  do.call(rbind, rows)
}

summarise_typeI <- function(name, dat, design) {
  dat$condition <- factor(dat$condition)
  dat$mouse <- factor(dat$mouse)
  fit <- lmerTest::lmer(y ~ condition + (1 | mouse), data = dat, REML = TRUE)
  a <- anova(fit)  # type III, Satterthwaite
  vc <- as.data.frame(VarCorr(fit))
  co <- summary(fit)$coefficients
  pooled <- anova(stats::lm(y ~ condition, data = dat))
  means <- aggregate(y ~ mouse + condition, data = dat, FUN = mean)
  mm <- anova(stats::lm(y ~ condition, data = means))
  list(
    data = paste0("tests/data/", name, ".csv"),
    design = design,
    r_call = "anova(lmerTest::lmer(y ~ condition + (1 | mouse), data = dat, REML = TRUE))",
    fixef = as.list(fixef(fit)),
    se = as.list(co[, "Std. Error"]),
    coef_df = as.list(co[, "df"]),
    theta = unname(getME(fit, "theta")),
    sd_mouse = vc$sdcor[vc$grp == "mouse"],
    sigma = sigma(fit),
    reml_criterion = unname(REMLcrit(fit)),
    singular = isSingular(fit),
    lme_F = a[["F value"]][1], lme_numdf = a[["NumDF"]][1], lme_ddf = a[["DenDF"]][1],
    lme_p = a[["Pr(>F)"]][1],
    lm_F = pooled[["F value"]][1], lm_p = pooled[["Pr(>F)"]][1],
    means_F = mm[["F value"]][1], means_p = mm[["Pr(>F)"]][1]
  )
}

icc1 <- c(0.62094868, 0.33006327, 0.01780304, 0.62810904, 0.53694579)
set.seed(404)
unbal_cells <- sample(20:80, 24, replace = TRUE)
typeI_cases <- list(
  sim_typeI = list(seed = 11, mice = c(7, 6, 3, 3, 5), cells = 50, icc = icc1),
  sim_typeI_unbalanced = list(seed = 12, mice = c(7, 6, 3, 3, 5), cells = unbal_cells, icc = icc1),
  # Tiny ICC: the mouse variance is estimated at (or near) zero.
  sim_typeI_boundary = list(seed = 13, mice = c(3, 3, 3), cells = 10, icc = c(0.001, 0.001, 0.001))
)
out$typeI <- list()
for (name in names(typeI_cases)) {
  d <- typeI_cases[[name]]
  dat <- make_typeI(d$seed, d$mice, d$cells, d$icc)
  write.csv(dat, paste0("tests/data/", name, ".csv"), row.names = FALSE)
  out$typeI[[name]] <- summarise_typeI(name, dat, d)
}

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/simulate.json")
cat("wrote tests/reference/simulate.json\n")
