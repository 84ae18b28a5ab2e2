# Broad reference values for mmteach's linear mixed model engine: many more structures than
# tests/r/reference_lme.R (three-level nesting, crossed + nested, crossed random slopes,
# factor random slopes, (f || g) with a factor, factor * numeric interactions, unbalanced
# groups with missing values, numeric and mixed-case text ids, a badly scaled predictor,
# 600 two-row cells, singular slope fits, a fit lme4 warns about).
# Run from the repository root:  Rscript tests/r/reference_lme_broad.R
# Writes tests/reference/lme_broad.json and the simulated data sets tests/data/lmeb_*.csv.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
  library(optimx)  # for allFit()
  library(dfoptim)
})
source("tests/r/common.R")

out <- list()
out$versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")),
  collate = Sys.getlocale("LC_COLLATE"),
  icu = capabilities("ICU")
)

anova_table <- function(fit, ddf) {
  a <- anova(fit, type = 3, ddf = ddf)
  data.frame(term = rownames(a), F = a[["F value"]], num_df = a$NumDF, den_df = a$DenDF,
             p = a[["Pr(>F)"]])
}

ranef_head <- function(fit, k = 5) {
  lapply(ranef(fit), function(r) {
    r <- as.data.frame(r)[seq_len(min(k, nrow(r))), , drop = FALSE]
    list(levels = rownames(r), terms = colnames(r), values = unname(as.matrix(r)))
  })
}

# every warning and message lmer() gives, kept (not printed)
quietly <- function(expr) {
  msgs <- character(0)
  val <- withCallingHandlers(expr,
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m)));
                            invokeRestart("muffleMessage") })
  list(value = val, messages = msgs)
}

summarise_fit <- function(fit, reml, kr, anova_terms) {
  s <- list(
    theta = unname(getME(fit, "theta")),
    sigma = sigma(fit),
    coef_satterthwaite = coef_table(fit, "Satterthwaite"),
    varcorr = varcorr_table(fit),
    loglik = as.numeric(logLik(fit)),
    remlcrit = if (reml) REMLcrit(fit) else NA,
    deviance_ml = as.numeric(deviance(fit, REML = FALSE)),
    aic = AIC(fit), bic = BIC(fit),
    singular = isSingular(fit, tol = 1e-4),
    ranef = ranef_head(fit)
  )
  if (anova_terms) s$anova_satterthwaite <- anova_table(fit, "Satterthwaite")
  if (kr) {
    s$coef_kenward_roger <- coef_table(fit, "Kenward-Roger")
    s$vcov_kr <- unname(as.matrix(pbkrtest::vcovAdj(fit)))
    if (anova_terms) s$anova_kenward_roger <- anova_table(fit, "Kenward-Roger")
  }
  s
}

lmer_case <- function(name, formula, data, reml = TRUE, kr = reml, data_file,
                      factors = character(0), anova_terms = TRUE, note = "", allfit = FALSE) {
  fitq <- quietly(lmerTest::lmer(formula, data = data, REML = reml))
  fit <- fitq$value
  tightq <- quietly(lmerTest::lmer(formula, data = data, REML = reml, control = TIGHT))
  tight <- tightq$value
  allfit_ll <- NULL
  if (allfit) {
    # lme4's own optimisers can stop at a local optimum: try them all (allFit) and, if one
    # finds a better optimum than the tight bobyqa fit, refine that one tightly
    af <- quietly(allFit(fit, verbose = FALSE))$value
    allfit_ll <- sapply(af, function(m) if (inherits(m, "merMod")) as.numeric(logLik(m)) else NA)
    best <- af[[which.max(allfit_ll)]]
    allfit_ll <- c(allfit_ll, tight_bobyqa = as.numeric(logLik(tight)))
    if (max(allfit_ll, na.rm = TRUE) > as.numeric(logLik(tight)) + 1e-6) {
      tightq <- quietly(lmerTest::lmer(formula, data = data, REML = reml, control = TIGHT,
                                       start = list(theta = getME(best, "theta"))))
      tight <- tightq$value
    }
  }
  fml <- deparse(formula, width.cutoff = 500L)
  cs <- list(
    name = name, formula = fml, reml = reml, data_file = data_file, factors = factors,
    note = note,
    nobs = nobs(fit),
    ngrps = as.list(ngrps(fit)),
    fixed_names = colnames(getME(fit, "X")),
    lmer_messages = fitq$messages,
    conv_messages = as.list(fit@optinfo$conv$lme4$messages),
    tight_messages = tightq$messages,
    r_call = sprintf("lmerTest::lmer(%s, data = d, REML = %s)", fml, if (reml) "TRUE" else "FALSE"),
    r_call_tight = sprintf(paste0("lmerTest::lmer(%s, data = d, REML = %s, control = lmerControl(",
                                  "optimizer = \"bobyqa\", optCtrl = list(rhoend = 1e-12, ",
                                  "maxfun = 1e5)))"), fml, if (reml) "TRUE" else "FALSE")
  )
  if (!is.null(allfit_ll)) cs$allfit_loglik <- as.list(allfit_ll)
  cs$default <- summarise_fit(fit, reml, kr, anova_terms)
  cs$tight <- summarise_fit(tight, reml, kr, anova_terms)
  # how far lme4's default stopping rule is from the optimum, on the criterion's scale
  cs$default_gap <- 2 * (as.numeric(logLik(tight)) - as.numeric(logLik(fit)))
  cs
}

cases <- list()
errors <- list()
# write a data set and read it back, so R fits exactly what the CSV holds
wcsv <- function(d, f) {
  path <- file.path("tests", "data", f)
  write.csv(d, path, row.names = FALSE, na = "")
  read.csv(path)
}

# ------------------------------------------------------------ 1. three-level nesting
# regions / sites / plots; site and plot ids repeat inside their parent ("1", "2", ...),
# so only (1 | region/site/plot) makes them distinct. Treatment varies between sites.
set.seed(101)
rows <- list()
for (r in 1:5) {
  a_r <- rnorm(1, 0, 1.0)
  for (s in 1:sample(2:4, 1)) {
    a_s <- rnorm(1, 0, 0.7)
    trt <- sample(c("ctl", "trt"), 1)
    for (p in 1:sample(2:4, 1)) {
      a_p <- rnorm(1, 0, 0.5)
      m <- sample(2:5, 1)
      x <- round(runif(m, 0, 10), 2)
      y <- 5 + 0.3 * x + 0.8 * (trt == "trt") + a_r + a_s + a_p + rnorm(m, 0, 0.6)
      rows[[length(rows) + 1]] <- data.frame(y = round(y, 4), x = x, trt = trt, region = r,
                                             site = s, plot = p)
    }
  }
}
nest3 <- do.call(rbind, rows)
nest3 <- wcsv(nest3, "lmeb_nest3.csv")
cases$nest3_reml <- lmer_case("nest3_reml", y ~ x + trt + (1 | region / site / plot), nest3,
                              TRUE, data_file = "lmeb_nest3.csv")
cases$nest3_ml <- lmer_case("nest3_ml", y ~ x + trt + (1 | region / site / plot), nest3,
                            FALSE, data_file = "lmeb_nest3.csv")
# the same nesting written with ':' explicitly
cases$nest3_colon_reml <- lmer_case(
  "nest3_colon_reml", y ~ x + trt + (1 | region) + (1 | region:site) + (1 | region:site:plot),
  nest3, TRUE, data_file = "lmeb_nest3.csv")

# ------------------------------------------------------------ 2. crossed + nested
# classes nested in schools (class ids repeat), raters crossed with both
set.seed(202)
rows <- list()
rater_eff <- rnorm(8, 0, 0.8)
for (s in 1:6) {
  a_s <- rnorm(1, 0, 1)
  for (cl in 1:sample(2:4, 1)) {
    a_c <- rnorm(1, 0, 0.6)
    m <- sample(3:6, 1)
    rater <- sample(1:8, m, replace = TRUE)
    x <- round(rnorm(m), 3)
    y <- 10 + 0.5 * x + a_s + a_c + rater_eff[rater] + rnorm(m, 0, 0.7)
    rows[[length(rows) + 1]] <- data.frame(y = round(y, 4), x = x, school = s, class = cl,
                                           rater = paste0("R", rater))
  }
}
cn <- do.call(rbind, rows)
cn <- wcsv(cn, "lmeb_crossnest.csv")
cases$crossnest_reml <- lmer_case("crossnest_reml", y ~ x + (1 | school / class) + (1 | rater),
                                  cn, TRUE, data_file = "lmeb_crossnest.csv")
cases$crossnest_ml <- lmer_case("crossnest_ml", y ~ x + (1 | school / class) + (1 | rater),
                                cn, FALSE, data_file = "lmeb_crossnest.csv")

# ------------------------------------------------------------ 3. crossed with a random slope
set.seed(303)
S <- 16
I <- 12
cs_d <- expand.grid(subj = 1:S, item = 1:I)
cs_d <- cs_d[runif(nrow(cs_d)) > 0.15, ]
a_s <- rnorm(S, 0, 1)
b_s <- rnorm(S, 0, 0.4)
a_i <- rnorm(I, 0, 0.7)
cs_d$x <- round(runif(nrow(cs_d), -1, 1), 3)
cs_d$y <- round(2 + 0.6 * cs_d$x + a_s[cs_d$subj] + b_s[cs_d$subj] * cs_d$x + a_i[cs_d$item] +
                  rnorm(nrow(cs_d), 0, 0.5), 4)
cs_d$subj <- sprintf("s%02d", cs_d$subj)
cs_d$item <- sprintf("i%02d", cs_d$item)
cs_d <- wcsv(cs_d, "lmeb_crossslope.csv")
cases$crossslope_reml <- lmer_case("crossslope_reml", y ~ x + (x | subj) + (1 | item), cs_d,
                                   TRUE, data_file = "lmeb_crossslope.csv")
cases$crossslope_ml <- lmer_case("crossslope_ml", y ~ x + (x | subj) + (1 | item), cs_d,
                                 FALSE, data_file = "lmeb_crossslope.csv")

# ------------------------------------------------------------ 4. factor random slopes
# 3-level within-group factor f; also a crossed factor h with more levels than g (so lme4
# puts (1 | h) first although (f | g) has more random effects)
set.seed(404)
G <- 16
rows <- list()
for (g in 1:G) {
  u <- rnorm(3, 0, c(1, 0.6, 0.5))
  for (lv in 1:3) for (rep in 1:4) {
    rows[[length(rows) + 1]] <- data.frame(g = g, f = c("lo", "mid", "hi")[lv],
                                           y = 3 + c(0, 0.5, 1.2)[lv] + u[1] + (lv > 1) * u[lv] +
                                             rnorm(1, 0, 0.5))
  }
}
fs <- do.call(rbind, rows)
fs$h <- sample(sprintf("h%02d", 1:40), nrow(fs), replace = TRUE)
fs$y <- round(fs$y + rnorm(40, 0, 0.4)[as.integer(factor(fs$h))], 4)
fs$x <- round(rnorm(nrow(fs)), 3)
fs <- wcsv(fs, "lmeb_fslope.csv")
cases$fslope_reml <- lmer_case("fslope_reml", y ~ f + (f | g), fs, TRUE,
                               data_file = "lmeb_fslope.csv", factors = "g")
cases$fslope_ml <- lmer_case("fslope_ml", y ~ f + (f | g), fs, FALSE,
                             data_file = "lmeb_fslope.csv", factors = "g")
cases$fslope_zero_reml <- lmer_case("fslope_zero_reml", y ~ f + (0 + f | g), fs, TRUE,
                                    data_file = "lmeb_fslope.csv", factors = "g")
# lme4 1.1 expands (f || g) to (1 | g) + (0 + f | g): for a factor the second term has one
# indicator per level, all correlated (the double bar does not make factor levels independent)
cases$fslope_dbar_reml <- lmer_case("fslope_dbar_reml", y ~ f + (f || g), fs, TRUE,
                                    data_file = "lmeb_fslope.csv", factors = "g",
                                    note = "(f || g) == (1 | g) + (0 + f | g) in lme4")
cases$fslope_crossed_reml <- lmer_case("fslope_crossed_reml", y ~ f + x + (f | g) + (1 | h), fs,
                                       TRUE, data_file = "lmeb_fslope.csv", factors = "g")
cases$noint_reml <- lmer_case("noint_reml", y ~ 0 + f + (1 | g), fs, TRUE,
                              data_file = "lmeb_fslope.csv", factors = "g")

# ------------------------------------------------------------ 5. factor * numeric interaction
set.seed(505)
rows <- list()
for (g in 1:14) {
  a <- rnorm(1, 0, 0.9)
  b <- rnorm(1, 0, 0.3)
  n <- sample(9:15, 1)
  f <- sample(c("A", "B", "C"), n, replace = TRUE)
  x <- round(runif(n, 0, 5), 3)
  y <- 1 + c(A = 0, B = 0.5, C = -0.4)[f] + (0.4 + c(A = 0, B = 0.3, C = -0.2)[f]) * x + a +
    b * x + rnorm(n, 0, 0.6)
  rows[[length(rows) + 1]] <- data.frame(g = g, f = f, x = x, y = round(y, 4))
}
fx <- do.call(rbind, rows)
fx <- wcsv(fx, "lmeb_fxint.csv")
cases$fxint_reml <- lmer_case("fxint_reml", y ~ f * x + (1 | g), fx, TRUE,
                              data_file = "lmeb_fxint.csv", factors = "g")
cases$fxint_slope_reml <- lmer_case("fxint_slope_reml", y ~ f * x + (x | g), fx, TRUE,
                                    data_file = "lmeb_fxint.csv", factors = "g")
cases$fxint_slope_ml <- lmer_case("fxint_slope_ml", y ~ f * x + (x | g), fx, FALSE,
                                  data_file = "lmeb_fxint.csv", factors = "g")

# ------------------------------------------------------------ 6. unbalanced, missing values
set.seed(606)
sizes <- c(1, 1, 2, 2, 3, 4, 5, 7, 9, 12, 15, 20)
un <- do.call(rbind, lapply(seq_along(sizes), function(j) {
  n <- sizes[j]
  z <- round(rnorm(1), 3)
  x <- round(rnorm(n, 2, 1), 3)
  data.frame(g = j, z = z, x = x,
             y = round(1 + 0.5 * x - 0.7 * z + rnorm(1, 0, 0.8) + rnorm(n, 0, 0.6), 4))
}))
un$y[sample(nrow(un), 8)] <- NA
un$x[sample(nrow(un), 5)] <- NA
un$g[sample(nrow(un), 2)] <- NA
un <- wcsv(un, "lmeb_unbal.csv")
cases$unbal_reml <- lmer_case("unbal_reml", y ~ x + z + (1 | g), un, TRUE,
                              data_file = "lmeb_unbal.csv", factors = "g")
cases$unbal_ml <- lmer_case("unbal_ml", y ~ x + z + (1 | g), un, FALSE,
                            data_file = "lmeb_unbal.csv", factors = "g")
cases$unbal_slope_reml <- lmer_case("unbal_slope_reml", y ~ x + z + (x | g), un, TRUE,
                                    data_file = "lmeb_unbal.csv", factors = "g")

# ------------------------------------------------------------ 7. numeric ids, numeric factor
# ids are scattered numbers (one non-integer); dose (2, 10, 100) is a numeric column used as a
# factor, so its levels sort numerically (2 < 10 < 100), not as text ("10" < "100" < "2")
set.seed(707)
ids <- c(sample(100:99999, 14), 12.5)
nid <- do.call(rbind, lapply(ids, function(id) {
  n <- sample(4:8, 1)
  dose <- sample(c(2, 10, 100), n, replace = TRUE)
  data.frame(id = id, dose = dose,
             y = round(4 + c(0, 0.4, 1.1)[match(dose, c(2, 10, 100))] + rnorm(1, 0, 0.7) +
                         rnorm(n, 0, 0.5), 4))
}))
nid <- wcsv(nid, "lmeb_numid.csv")
nid_f <- nid
nid_f$dose <- factor(nid_f$dose)
cases$numid_reml <- lmer_case("numid_reml", y ~ dose + (1 | id), nid_f, TRUE,
                              data_file = "lmeb_numid.csv", factors = "dose")

# ------------------------------------------------------------ 8. text ids with mixed case
# subject labels differ only in case ("ma" and "mA" are two subjects); the text treatment
# "ctrl", "Drug", "placebo" is a factor whose reference level R picks by its collation
set.seed(808)
subs <- c("ma", "mA", "Ma", "mb", "MB", "mouse10", "Mouse2", "mouse2", "b_1", "B-1", "z9", "Z10")
mc <- do.call(rbind, lapply(subs, function(s) {
  n <- sample(5:9, 1)
  trt <- sample(c("ctrl", "Drug", "placebo"), n, replace = TRUE)
  data.frame(subj = s, trt = trt,
             y = round(2 + c(ctrl = 0, Drug = 0.9, placebo = 0.1)[trt] + rnorm(1, 0, 0.6) +
                         rnorm(n, 0, 0.5), 4))
}))
mc <- wcsv(mc, "lmeb_mixcase.csv")
out$collation <- list(subj = levels(factor(mc$subj)), trt = levels(factor(mc$trt)))
cases$mixcase_reml <- lmer_case("mixcase_reml", y ~ trt + (1 | subj), mc, TRUE,
                                data_file = "lmeb_mixcase.csv")

# ------------------------------------------------------------ 9. badly scaled predictor
set.seed(909)
sc <- do.call(rbind, lapply(1:15, function(g) {
  n <- sample(6:10, 1)
  x <- round(rnorm(n, 12000, 2500), 1)
  data.frame(g = g, x = x, w = round(rnorm(n), 3),
             y = round(3 + 2e-4 * x + 0.3 * rnorm(1) * 1 + rnorm(1, 0, 0.8) + rnorm(n, 0, 0.5), 4))
}))
sc <- wcsv(sc, "lmeb_scaled.csv")
cases$scaled_reml <- lmer_case("scaled_reml", y ~ x + w + (1 | g), sc, TRUE,
                               data_file = "lmeb_scaled.csv", factors = "g")
cases$scaled_ml <- lmer_case("scaled_ml", y ~ x + w + (1 | g), sc, FALSE,
                             data_file = "lmeb_scaled.csv", factors = "g")

# ------------------------------------------------------------ 10. 600 cells with 2 rows each
set.seed(1010)
M <- 12
cells_per <- 50
mm <- do.call(rbind, lapply(1:M, function(m) {
  a_m <- rnorm(1, 0, 0.5)
  do.call(rbind, lapply(1:cells_per, function(k) {
    a_c <- rnorm(1, 0, 0.8)
    data.frame(mouse = m, cell = (m - 1) * cells_per + k, trt = c(1, 2),
               y = round(2 + 0.3 * c(0, 1) + a_m + a_c + rnorm(2, 0, 0.6), 4))
  }))
}))
mm <- wcsv(mm, "lmeb_many.csv")
mm_f <- mm
mm_f$trt <- factor(mm_f$trt)
cases$many_cells_reml <- lmer_case("many_cells_reml", y ~ trt + (1 | cell), mm_f, TRUE,
                                   data_file = "lmeb_many.csv", factors = "trt")
cases$many_nested_reml <- lmer_case("many_nested_reml", y ~ trt + (1 | mouse / cell), mm_f, TRUE,
                                    data_file = "lmeb_many.csv", factors = "trt")
cases$many_nested_ml <- lmer_case("many_nested_ml", y ~ trt + (1 | mouse / cell), mm_f, FALSE,
                                  data_file = "lmeb_many.csv", factors = "trt")

# ------------------------------------------------------------ 11. singular fits with a slope
set.seed(1111)
ss <- do.call(rbind, lapply(1:10, function(g) {
  x <- round(runif(10, 0, 3), 3)
  data.frame(g = g, x = x, y = round(1 + 0.8 * x + rnorm(1, 0, 0.9) + rnorm(10, 0, 0.7), 4))
}))
ss <- wcsv(ss, "lmeb_singslope.csv")
cases$singslope_reml <- lmer_case("singslope_reml", y ~ x + (x | g), ss, TRUE,
                                  data_file = "lmeb_singslope.csv", factors = "g")
cases$singslope_ml <- lmer_case("singslope_ml", y ~ x + (x | g), ss, FALSE,
                                data_file = "lmeb_singslope.csv", factors = "g")
cases$singslope_uncorr_reml <- lmer_case("singslope_uncorr_reml", y ~ x + (x || g), ss, TRUE,
                                         data_file = "lmeb_singslope.csv", factors = "g")

# ------------------------------------------------------------ 12. a fit lme4 warns about
# 25 groups, a 4 x 4 random-effects covariance (intercept, a numeric slope on a scale of
# ~50 and two factor contrasts): lme4's default fit stops with "Model failed to converge"
set.seed(4)
cw <- do.call(rbind, lapply(1:25, function(j) {
  x1 <- rnorm(12, 50, 10)
  f <- sample(c("a", "b", "c"), 12, TRUE)
  data.frame(g = j, x1 = x1, f = f,
             y = 1 + rnorm(1, 0, 1) + (0.05 + rnorm(1, 0, 0.03)) * x1 +
               (f == "b") * rnorm(1, 0, 0.5) + rnorm(12, 0, 1))
}))
cw <- wcsv(cw, "lmeb_convwarn.csv")
cases$convwarn_reml <- lmer_case("convwarn_reml", y ~ x1 + f + (x1 + f | g), cw, TRUE,
                                 data_file = "lmeb_convwarn.csv", factors = "g")

# ------------------------------------------------------------ 13. nested random slopes
# (x | school/class): a correlated intercept and slope for schools and for classes in schools
set.seed(1313)
rows <- list()
for (s in 1:8) {
  u_s <- rnorm(2, 0, c(1, 0.4))
  for (cl in 1:sample(3:5, 1)) {
    u_c <- rnorm(2, 0, c(0.6, 0.25))
    m <- sample(5:8, 1)
    x <- round(runif(m, -2, 2), 3)
    rows[[length(rows) + 1]] <- data.frame(
      school = s, class = cl, x = x,
      y = round(1 + 0.5 * x + u_s[1] + u_s[2] * x + u_c[1] + u_c[2] * x + rnorm(m, 0, 0.4), 4))
  }
}
ns <- do.call(rbind, rows)
ns <- wcsv(ns, "lmeb_nestslope.csv")
cases$nestslope_reml <- lmer_case("nestslope_reml", y ~ x + (x | school / class), ns, TRUE,
                                  data_file = "lmeb_nestslope.csv")
cases$nestslope_ml <- lmer_case("nestslope_ml", y ~ x + (x | school / class), ns, FALSE,
                                data_file = "lmeb_nestslope.csv")
# random slope without a fixed slope
cases$slope_nofixed_reml <- lmer_case("slope_nofixed_reml", y ~ 1 + (x | school), ns, TRUE,
                                      data_file = "lmeb_nestslope.csv")

# ------------------------------------------------------------ 14. crossed random slopes
cases$crossslope2_reml <- lmer_case("crossslope2_reml", y ~ x + (x | subj) + (x | item), cs_d,
                                    TRUE, data_file = "lmeb_crossslope.csv")

# ------------------------------------------------------------ 15. two large crossed factors
# 150 x 100 levels, 1500 rows: the second factor is a dense 100 x 100 Schur complement
set.seed(1515)
A <- 150
B <- 100
bc <- data.frame(a = sample(1:A, 1500, replace = TRUE), b = sample(1:B, 1500, replace = TRUE))
bc$x <- round(rnorm(1500), 3)
bc$y <- round(5 + 0.2 * bc$x + rnorm(A, 0, 0.7)[bc$a] + rnorm(B, 0, 0.5)[bc$b] +
                rnorm(1500, 0, 1), 4)
bc <- wcsv(bc, "lmeb_bigcross.csv")
cases$bigcross_reml <- lmer_case("bigcross_reml", y ~ x + (1 | a) + (1 | b), bc, TRUE,
                                 data_file = "lmeb_bigcross.csv", factors = c("a", "b"))
cases$bigcross_ml <- lmer_case("bigcross_ml", y ~ x + (1 | a) + (1 | b), bc, FALSE, kr = FALSE,
                               data_file = "lmeb_bigcross.csv", factors = c("a", "b"))

# ------------------------------------------------------------ 16. large theta, large offset
# group sd 40 against residual sd 0.05 (theta ~ 800) around a mean of 1e5
set.seed(1616)
lt <- do.call(rbind, lapply(1:9, function(g) {
  n <- sample(4:7, 1)
  x <- round(runif(n), 3)
  data.frame(g = g, x = x, y = round(1e5 + 3 * x + rnorm(1, 0, 40) + rnorm(n, 0, 0.05), 4))
}))
lt <- wcsv(lt, "lmeb_bigtheta.csv")
cases$bigtheta_reml <- lmer_case("bigtheta_reml", y ~ x + (1 | g), lt, TRUE,
                                 data_file = "lmeb_bigtheta.csv", factors = "g")
cases$bigtheta_ml <- lmer_case("bigtheta_ml", y ~ x + (1 | g), lt, FALSE,
                               data_file = "lmeb_bigtheta.csv", factors = "g")

# ------------------------------------------------------------ 17. a crossed factor with no variance
set.seed(1717)
zc <- expand.grid(subj = 1:12, item = 1:8)
zc$x <- round(rnorm(nrow(zc)), 3)
zc$y <- round(1 + 0.4 * zc$x + rnorm(12, 0, 0.8)[zc$subj] + rnorm(nrow(zc), 0, 0.6), 4)
zc <- wcsv(zc, "lmeb_zerocross.csv")
cases$zerocross_reml <- lmer_case("zerocross_reml", y ~ x + (1 | subj) + (1 | item), zc, TRUE,
                                  data_file = "lmeb_zerocross.csv", factors = c("subj", "item"))

# ------------------------------------------------------------ 18. factor x factor, an empty cell
# a (3 levels) x b (2 levels) with the cell a3:b2 never observed: lme4 drops the aliased
# column "fixed-effect model matrix is rank deficient so dropping 1 column / coefficient"
set.seed(1818)
ff <- do.call(rbind, lapply(1:12, function(g) {
  n <- 10
  a <- sample(c("a1", "a2", "a3"), n, replace = TRUE)
  b <- ifelse(a == "a3", "b1", sample(c("b1", "b2"), n, replace = TRUE))
  data.frame(g = g, a = a, b = b,
             y = round(2 + (a == "a2") * 0.5 + (b == "b2") * 0.3 + (a == "a2" & b == "b2") * 0.4 +
                         rnorm(1, 0, 0.7) + rnorm(n, 0, 0.5), 4))
}))
ff <- wcsv(ff, "lmeb_factors.csv")
cases$ffint_reml <- lmer_case("ffint_reml", y ~ a * b + (1 | g), ff, TRUE,
                              data_file = "lmeb_factors.csv", factors = "g")
ff_full <- ff[!(ff$a == "a3"), ]
cases$ffint_full_reml <- lmer_case("ffint_full_reml", y ~ a * b + (1 | g), ff_full, TRUE,
                                   data_file = "lmeb_factors.csv", factors = "g",
                                   note = "rows with a == 'a3' dropped before fitting")
cases$ffint_full_reml$subset <- "a != 'a3'"

# ------------------------------------------------------------ 19. lme4 stuck at a local optimum
# Random designs from a stress test on which lme4's optimisers stop at different local
# optima on the boundary (for the nested one both the default fit and the tight bobyqa refit
# stop at worse ones); the best of allFit() is the reference here, and mmteach finds it too.
stress_data <- function(seed, per_row_c) {
  sdpick <- function() sample(c(0, 0.05, 0.3, 1, 3), 1, prob = c(0.2, 0.1, 0.3, 0.3, 0.1))
  set.seed(seed)
  type <- sample(1:11, 1)
  G <- sample(4:25, 1)
  H <- sample(3:6, 1)
  rows <- list()
  ua <- matrix(rnorm(G * 3), G) %*% diag(c(sdpick(), sdpick(), sdpick()))
  ub <- matrix(rnorm(G * H * 2), G * H) %*% diag(c(sdpick(), sdpick()))
  cc <- rnorm(8) * sdpick()
  for (g in 1:G) for (h in 1:sample(1:H, 1)) {
    m <- sample(1:6, 1)
    x <- round(rnorm(m, 1, 1), 3)
    x2 <- round(runif(m), 3)
    if (per_row_c) kk <- sample(1:3, m, TRUE)
    f <- sample(c("a", "b", "c"), m, TRUE)
    k1 <- sample(1:3, 1)
    if (!per_row_c) kk <- k1
    c3 <- sample(1:8, m, TRUE)
    fi <- match(f, c("a", "b", "c"))
    y <- 1 + 0.5 * x + ua[g, 1] + ua[g, 2] * x + ub[(g - 1) * H + h, 1] +
      ub[(g - 1) * H + h, 2] * x + cc[c3] + ifelse(fi > 1, ua[g, 3] * (fi - 1), 0) + 0.3 * x2 +
      rnorm(m, 0, 0.5)
    rows[[length(rows) + 1]] <- data.frame(y = round(y, 4), x = x, a = g, b = h)
  }
  do.call(rbind, rows)
}
lo1 <- wcsv(stress_data(3001, FALSE), "lmeb_localopt1.csv")
cases$localopt_slope_ml <- lmer_case("localopt_slope_ml", y ~ x + (x | a), lo1, FALSE,
                                     data_file = "lmeb_localopt1.csv", factors = "a",
                                     allfit = TRUE)
lo2 <- wcsv(stress_data(7015, TRUE), "lmeb_localopt2.csv")
cases$localopt_nestslope_reml <- lmer_case("localopt_nestslope_reml", y ~ x + (x | a / b), lo2,
                                           TRUE, data_file = "lmeb_localopt2.csv", allfit = TRUE)

# ------------------------------------------------------------ 20. weights
# lmer(..., weights = w) is a different model (residual variance sigma^2 / w); mmteach has no
# weights option at all, so there is nothing to compare; the test checks the option is absent.
out$weights_note <- "fit_lme has no weights argument"

# ------------------------------------------------------------ 21. nlme: containment df
# nlme::lme with the same random structure; its df follow the containment rule, which
# mmteach's df_method = "containment" reproduces (and its R code must name the nesting in
# nlme's order, outermost first)
nlme_case <- function(name, fixed, random, data, method, data_file, mmteach_formula,
                      factors = character(0)) {
  fit <- nlme::lme(fixed, random = random, data = data, method = method, na.action = na.omit,
                   control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100,
                                        opt = "optim"))
  tt <- summary(fit)$tTable
  random_text <- paste(deparse(substitute(random), width.cutoff = 500L), collapse = "")
  list(name = name, fixed = deparse(fixed), random = random_text,
       method = method, data_file = data_file, factors = factors,
       mmteach_formula = mmteach_formula,
       coef = data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                         df = tt[, "DF"], t = tt[, "t-value"], p = tt[, "p-value"],
                         row.names = NULL),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit), sigma = fit$sigma)
}
suppressPackageStartupMessages(library(nlme))
nlmes <- list()
nlmes$nest3 <- nlme_case("nest3", y ~ x + trt, list(region = ~ 1, site = ~ 1, plot = ~ 1), nest3,
                         "REML", "lmeb_nest3.csv", "y ~ x + trt + (1 | region/site/plot)")
nlmes$nest3_ml <- nlme_case("nest3_ml", y ~ x + trt, list(region = ~ 1, site = ~ 1, plot = ~ 1),
                            nest3, "ML", "lmeb_nest3.csv", "y ~ x + trt + (1 | region/site/plot)")
nlmes$nestslope <- nlme_case("nestslope", y ~ x, list(school = ~ x, class = ~ x), ns, "REML",
                             "lmeb_nestslope.csv", "y ~ x + (x | school/class)")
nlmes$fxint <- nlme_case("fxint", y ~ f * x, ~ 1 | g, fx, "REML", "lmeb_fxint.csv",
                         "y ~ f * x + (1 | g)", "g")
nlmes$unbal <- nlme_case("unbal", y ~ x + z, ~ 1 | g, un, "REML", "lmeb_unbal.csv",
                         "y ~ x + z + (1 | g)", "g")
nlmes$singslope_diag <- nlme_case("singslope_diag", y ~ x, list(g = pdDiag(~ x)), ss, "REML",
                                  "lmeb_singslope.csv", "y ~ x + (x || g)", "g")
out$nlme <- nlmes

out$cases <- cases
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null",
                  dataframe = "rows", matrix = "rowmajor"),
           "tests/reference/lme_broad.json")
cat("wrote tests/reference/lme_broad.json with", length(cases), "cases\n")
