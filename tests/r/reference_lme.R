# Reference values for mmteach's linear mixed model engine.
# Run from the repository root:  Rscript tests/r/reference_lme.R
# Writes tests/reference/lme.json and the simulated/exported data sets tests/data/lme_*.csv.
# Example 1 is read from ../shared/data/example1_pcreb.csv (never copied into the repo).
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(nlme)
  library(pbkrtest)
  library(jsonlite)
})
source("tests/r/common.R")

out <- list()
out$versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")),
  nlme = as.character(packageVersion("nlme"))
)

lmer_case <- function(name, formula, data, reml = TRUE, kr = reml, data_file = NULL,
                      factors = character(0), anova_terms = FALSE) {
  fit <- lmerTest::lmer(formula, data = data, REML = reml)
  cs <- list(
    name = name, formula = deparse(formula, width.cutoff = 500L), reml = reml,
    data_file = data_file, factors = factors,
    nobs = nobs(fit),
    ngrps = as.list(ngrps(fit)),
    theta = unname(getME(fit, "theta")),
    sigma = sigma(fit),
    coef_satterthwaite = coef_table(fit, "Satterthwaite"),
    varcorr = varcorr_table(fit),
    loglik = as.numeric(logLik(fit)),
    remlcrit = if (reml) REMLcrit(fit) else NA,
    deviance_ml = as.numeric(deviance(fit, REML = FALSE)),
    aic = AIC(fit), bic = BIC(fit),
    singular = isSingular(fit, tol = 1e-4),
    vcov = unname(as.matrix(vcov(fit))),
    ranef = lapply(ranef(fit), function(r) list(levels = rownames(r), terms = colnames(r),
                                                values = unname(as.matrix(r)))),
    r_call = sprintf("lmerTest::lmer(%s, REML = %s)", deparse(formula, width.cutoff = 500L),
                     if (reml) "TRUE" else "FALSE")
  )
  # The same model refitted with a much tighter optimiser: lme4's default stopping rule leaves
  # theta within about 1e-5 of the optimum, which shows in flat likelihoods; the tight fit
  # is the optimum itself.
  tight <- update(fit, control = lmerControl(optimizer = "bobyqa",
                                             optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
  st <- summary(tight)$coefficients
  cs$tight <- list(theta = unname(getME(tight, "theta")), loglik = as.numeric(logLik(tight)),
                   estimate = unname(st[, "Estimate"]), se = unname(st[, "Std. Error"]))
  if (kr) {
    cs$coef_kenward_roger <- coef_table(fit, "Kenward-Roger")
    cs$vcov_kr <- unname(as.matrix(pbkrtest::vcovAdj(fit)))
  }
  if (anova_terms) {
    a1 <- anova(fit, type = 3, ddf = "Satterthwaite")
    cs$anova_satterthwaite <- data.frame(term = rownames(a1), F = a1[["F value"]],
                                         num_df = a1$NumDF, den_df = a1$DenDF,
                                         p = a1[["Pr(>F)"]])
    if (kr) {
      a2 <- anova(fit, type = 3, ddf = "Kenward-Roger")
      cs$anova_kenward_roger <- data.frame(term = rownames(a2), F = a2[["F value"]],
                                           num_df = a2$NumDF, den_df = a2$DenDF,
                                           p = a2[["Pr(>F)"]])
    }
  }
  cs
}

lrt_case <- function(name, full, reduced, data, data_file = NULL, factors = character(0)) {
  f1 <- lmerTest::lmer(full, data = data, REML = TRUE)
  f0 <- lmerTest::lmer(reduced, data = data, REML = TRUE)
  a <- anova(f1, f0, refit = TRUE)  # lme4 refits both by ML
  list(name = name, full = deparse(full, width.cutoff = 500L),
       reduced = deparse(reduced, width.cutoff = 500L), data_file = data_file, factors = factors,
       chisq = a$Chisq[2], df = a$Df[2], p = a[["Pr(>Chisq)"]][2],
       loglik_full = a$logLik[2], loglik_reduced = a$logLik[1],
       aic_full = a$AIC[2], aic_reduced = a$AIC[1], bic_full = a$BIC[2], bic_reduced = a$BIC[1])
}

nlme_case <- function(name, fixed, random, data, method = "REML", data_file = NULL,
                      factors = character(0), mmteach_formula = NULL) {
  fit <- nlme::lme(fixed, random = random, data = data, method = method,
                   control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100,
                                        opt = "optim"))
  tt <- summary(fit)$tTable
  list(name = name, fixed = deparse(fixed), random = deparse(random), method = method,
       data_file = data_file, factors = factors, mmteach_formula = mmteach_formula,
       coef = data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                         df = tt[, "DF"], t = tt[, "t-value"], p = tt[, "p-value"],
                         row.names = NULL),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit), sigma = fit$sigma)
}

cases <- list()
lrts <- list()
nlmes <- list()
lme4_errors <- list()

# ---------------------------------------------------------------- Example 1 (real data)
ex1_path <- file.path("..", "shared", "data", "example1_pcreb.csv")
if (file.exists(ex1_path)) {
  ex1 <- read.csv(ex1_path)
  ex1$treatment_idx <- factor(ex1$treatment_idx)
  ex1$midx <- factor(ex1$midx)
  lmfit <- lm(res ~ treatment_idx, data = ex1)
  sl <- summary(lmfit)
  out$example1_lm <- list(
    coef = data.frame(term = rownames(sl$coefficients), estimate = sl$coefficients[, 1],
                      se = sl$coefficients[, 2], t = sl$coefficients[, 3],
                      p = sl$coefficients[, 4], row.names = NULL),
    sigma = sl$sigma, df = sl$df[2], fstat = unname(sl$fstatistic[1]))
  cases$ex1_reml <- lmer_case("ex1_reml", res ~ treatment_idx + (1 | midx), ex1, TRUE,
                              data_file = "EXAMPLE1", factors = c("treatment_idx", "midx"),
                              anova_terms = TRUE)
  cases$ex1_ml <- lmer_case("ex1_ml", res ~ treatment_idx + (1 | midx), ex1, FALSE,
                            data_file = "EXAMPLE1", factors = c("treatment_idx", "midx"),
                            anova_terms = TRUE)
  lrts$ex1 <- lrt_case("ex1", res ~ treatment_idx + (1 | midx), res ~ 1 + (1 | midx), ex1,
                       data_file = "EXAMPLE1", factors = c("treatment_idx", "midx"))
  nlmes$ex1 <- nlme_case("ex1", res ~ treatment_idx, ~ 1 | midx, ex1, "REML",
                         data_file = "EXAMPLE1", factors = c("treatment_idx", "midx"),
                         mmteach_formula = "res ~ treatment_idx + (1 | midx)")
}

# ---------------------------------------------------------------- sleepstudy
data("sleepstudy", package = "lme4")
write.csv(sleepstudy, "tests/data/lme_sleepstudy.csv", row.names = FALSE)
ss_file <- "lme_sleepstudy.csv"
cases$sleep_slope_reml <- lmer_case("sleep_slope_reml", Reaction ~ Days + (Days | Subject),
                                    sleepstudy, TRUE, data_file = ss_file, factors = "Subject")
cases$sleep_slope_ml <- lmer_case("sleep_slope_ml", Reaction ~ Days + (Days | Subject),
                                  sleepstudy, FALSE, data_file = ss_file, factors = "Subject")
cases$sleep_uncorr_reml <- lmer_case("sleep_uncorr_reml", Reaction ~ Days + (Days || Subject),
                                     sleepstudy, TRUE, data_file = ss_file, factors = "Subject")
cases$sleep_uncorr_ml <- lmer_case("sleep_uncorr_ml", Reaction ~ Days + (Days || Subject),
                                   sleepstudy, FALSE, data_file = ss_file, factors = "Subject")
cases$sleep_int_reml <- lmer_case("sleep_int_reml", Reaction ~ Days + (1 | Subject),
                                  sleepstudy, TRUE, data_file = ss_file, factors = "Subject")
sleepstudy$period <- cut(sleepstudy$Days, c(-1, 2, 5, 9), labels = c("a", "b", "c"))
write.csv(sleepstudy, "tests/data/lme_sleepstudy_period.csv", row.names = FALSE)
cases$sleep_period_reml <- lmer_case("sleep_period_reml", Reaction ~ period + (1 | Subject),
                                     sleepstudy, TRUE, data_file = "lme_sleepstudy_period.csv",
                                     factors = "Subject", anova_terms = TRUE)
cases$sleep_period_slope_reml <- lmer_case(
  "sleep_period_slope_reml", Reaction ~ period + (Days | Subject), sleepstudy, TRUE,
  data_file = "lme_sleepstudy_period.csv", factors = "Subject", anova_terms = TRUE)
lrts$sleep_slope <- lrt_case("sleep_slope", Reaction ~ Days + (Days | Subject),
                             Reaction ~ Days + (1 | Subject), sleepstudy, ss_file, "Subject")
lrts$sleep_int <- lrt_case("sleep_int", Reaction ~ Days + (1 | Subject),
                           Reaction ~ Days + (1 | Subject), sleepstudy, ss_file, "Subject")
lrts$sleep_int$note <- "degenerate (same model); not used"
lrts$sleep_int <- NULL
nlmes$sleep_int <- nlme_case("sleep_int", Reaction ~ Days, ~ 1 | Subject, sleepstudy, "REML",
                             data_file = ss_file, factors = "Subject",
                             mmteach_formula = "Reaction ~ Days + (1 | Subject)")
nlmes$sleep_slope <- nlme_case("sleep_slope", Reaction ~ Days, ~ Days | Subject, sleepstudy,
                               "REML", data_file = ss_file, factors = "Subject",
                               mmteach_formula = "Reaction ~ Days + (Days | Subject)")

# ---------------------------------------------------------------- nested, Example-3-like
set.seed(20240517)
n_mice <- 8
cells <- sample(30:80, n_mice, replace = TRUE)
rows <- list()
cid <- 0
for (m in seq_len(n_mice)) {
  a_m <- rnorm(1, 0, 0.5)
  b_m <- rnorm(1, 0, 0.3)
  for (k in seq_len(cells[m])) {
    cid <- cid + 1
    a_c <- rnorm(1, 0, 0.7)
    b_c <- rnorm(1, 0, 0.4)
    for (tr in 1:2) {
      res <- 2 + 0.4 * (tr == 2) + a_m + b_m * (tr == 2) + a_c + b_c * (tr == 2) + rnorm(1, 0, 0.6)
      rows[[length(rows) + 1]] <- data.frame(res = res, treatment = tr, midx = m, cidx = cid)
    }
  }
}
nest <- do.call(rbind, rows)
write.csv(nest, "tests/data/lme_nested.csv", row.names = FALSE)
nest$treatment <- factor(nest$treatment)
nest$midx <- factor(nest$midx)
nest$cidx <- factor(nest$cidx)
nf <- "lme_nested.csv"
nfac <- c("treatment", "midx", "cidx")
cases$nest_obj1_ml <- lmer_case("nest_obj1_ml", res ~ treatment + (1 | midx / cidx), nest, FALSE,
                                data_file = nf, factors = nfac)
cases$nest_obj1_reml <- lmer_case("nest_obj1_reml", res ~ treatment + (1 | midx / cidx), nest,
                                  TRUE, data_file = nf, factors = nfac, anova_terms = TRUE)
cases$nest_obj2_ml <- lmer_case("nest_obj2_ml", res ~ treatment + (1 | midx) + (1 | cidx), nest,
                                FALSE, data_file = nf, factors = nfac)
cases$nest_obj4_ml <- lmer_case("nest_obj4_ml", res ~ treatment + (treatment | midx) + (1 | cidx),
                                nest, FALSE, data_file = nf, factors = nfac)
cases$nest_obj4_reml <- lmer_case("nest_obj4_reml",
                                  res ~ treatment + (treatment | midx) + (1 | cidx),
                                  nest, TRUE, data_file = nf, factors = nfac)
for (spec in list(list("obj3", res ~ treatment + (1 | midx) + (treatment | cidx)),
                  list("obj5", res ~ treatment + (treatment | midx) + (treatment | cidx)))) {
  msg <- tryCatch({ lmer(spec[[2]], data = nest, REML = FALSE); "" },
                  error = function(e) conditionMessage(e))
  lme4_errors[[spec[[1]]]] <- list(formula = deparse(spec[[2]], width.cutoff = 500L),
                                   message = msg)
  # lme4 with the check switched off reaches the same maximum nlme should reach
  ign <- lmer(spec[[2]], data = nest, REML = FALSE,
              control = lmerControl(check.nobs.vs.nRE = "ignore"))
  lme4_errors[[spec[[1]]]]$loglik_ignore_check <- as.numeric(logLik(ign))
}
nlmes$nest_obj1_ml <- nlme_case("nest_obj1_ml", res ~ treatment, ~ 1 | midx / cidx, nest, "ML",
                                nf, nfac, "res ~ treatment + (1 | midx/cidx)")
nlmes$nest_obj1_reml <- nlme_case("nest_obj1_reml", res ~ treatment, ~ 1 | midx / cidx, nest,
                                  "REML", nf, nfac, "res ~ treatment + (1 | midx/cidx)")
nlmes$nest_obj3_ml <- nlme_case("nest_obj3_ml", res ~ treatment,
                                list(midx = ~ 1, cidx = ~ treatment), nest, "ML", nf, nfac,
                                "res ~ treatment + (1 | midx) + (treatment | cidx)")
nlmes$nest_obj5_ml <- nlme_case("nest_obj5_ml", res ~ treatment,
                                list(midx = ~ treatment, cidx = ~ treatment), nest, "ML", nf, nfac,
                                "res ~ treatment + (treatment | midx) + (treatment | cidx)")
nlmes$nest_obj4_ml <- nlme_case("nest_obj4_ml", res ~ treatment,
                                list(midx = ~ treatment, cidx = ~ 1), nest, "ML", nf, nfac,
                                "res ~ treatment + (treatment | midx) + (1 | cidx)")
lrts$nest_cell <- lrt_case("nest_cell", res ~ treatment + (1 | midx / cidx),
                           res ~ treatment + (1 | midx), nest, nf, nfac)
lrts$nest_trt <- lrt_case("nest_trt", res ~ treatment + (1 | midx / cidx),
                          res ~ 1 + (1 | midx / cidx), nest, nf, nfac)
lrts$nest_slope <- lrt_case("nest_slope", res ~ treatment + (treatment | midx) + (1 | cidx),
                            res ~ treatment + (1 | midx) + (1 | cidx), nest, nf, nfac)

# ---------------------------------------------------------------- crossed: Penicillin
data("Penicillin", package = "lme4")
write.csv(Penicillin, "tests/data/lme_penicillin.csv", row.names = FALSE)
cases$penicillin_reml <- lmer_case("penicillin_reml", diameter ~ 1 + (1 | plate) + (1 | sample),
                                   Penicillin, TRUE, data_file = "lme_penicillin.csv",
                                   factors = c("plate", "sample"))
cases$penicillin_ml <- lmer_case("penicillin_ml", diameter ~ 1 + (1 | plate) + (1 | sample),
                                 Penicillin, FALSE, data_file = "lme_penicillin.csv",
                                 factors = c("plate", "sample"))
lrts$penicillin_sample <- lrt_case("penicillin_sample", diameter ~ 1 + (1 | plate) + (1 | sample),
                                   diameter ~ 1 + (1 | plate), Penicillin, "lme_penicillin.csv",
                                   c("plate", "sample"))

# ---------------------------------------------------------------- near-zero group variance
set.seed(7)
ok <- FALSE
seed <- 1
while (!ok) {
  set.seed(seed)
  g <- rep(1:10, each = 8)
  z <- rep(rnorm(10), each = 8)          # between-group covariate, constant within g
  x <- rnorm(80)
  y <- 1 + 0.8 * z + 0.5 * x + rnorm(80)  # no group variance at all
  nz <- data.frame(y = y, z = z, x = x, g = g)
  fit <- lmer(y ~ z + x + (1 | g), data = nz)
  ok <- isSingular(fit)
  seed <- seed + 1
}
write.csv(nz, "tests/data/lme_nearzero.csv", row.names = FALSE)
nz$g <- factor(nz$g)
cases$nearzero_reml <- lmer_case("nearzero_reml", y ~ z + x + (1 | g), nz, TRUE,
                                 data_file = "lme_nearzero.csv", factors = "g")
cases$nearzero_ml <- lmer_case("nearzero_ml", y ~ z + x + (1 | g), nz, FALSE,
                               data_file = "lme_nearzero.csv", factors = "g")

# ---------------------------------------------------------------- random slope only / uncorrelated
set.seed(11)
G <- 12
rs <- do.call(rbind, lapply(seq_len(G), function(j) {
  x <- runif(15, 0, 4)
  data.frame(g = j, x = x,
             y = 3 + rnorm(1, 0, 0.8) + (1 + rnorm(1, 0, 0.5)) * x + rnorm(15, 0, 0.7))
}))
write.csv(rs, "tests/data/lme_slopes.csv", row.names = FALSE)
rs$g <- factor(rs$g)
cases$slope_only_reml <- lmer_case("slope_only_reml", y ~ x + (0 + x | g), rs, TRUE,
                                   data_file = "lme_slopes.csv", factors = "g")
cases$slope_uncorr_reml <- lmer_case("slope_uncorr_reml", y ~ x + (1 | g) + (0 + x | g), rs, TRUE,
                                     data_file = "lme_slopes.csv", factors = "g")
cases$slope_uncorr_ml <- lmer_case("slope_uncorr_ml", y ~ x + (1 | g) + (0 + x | g), rs, FALSE,
                                   data_file = "lme_slopes.csv", factors = "g")
cases$slope_corr_reml <- lmer_case("slope_corr_reml", y ~ x + (x | g), rs, TRUE,
                                   data_file = "lme_slopes.csv", factors = "g")

out$cases <- cases
out$lrt <- lrts
out$nlme <- nlmes
out$lme4_errors <- lme4_errors
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null",
                  dataframe = "rows", matrix = "rowmajor"),
           "tests/reference/lme.json")
cat("wrote tests/reference/lme.json\n")
