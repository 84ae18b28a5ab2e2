# Reference values for the built-in reconstructions (datasets/*.csv): every calibration
# target of issue 3, computed by R on the committed files.
# Run from the repository root: Rscript tests/r/reference_datasets.R
# Writes tests/reference/datasets.json (with the sha256 of each CSV it used).
suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(lmerTest)
  library(nlme)
  library(openssl)
})

sha <- function(path) paste(as.character(openssl::sha256(file(path))), collapse = "")
coef_table <- function(s) {
  # summary()$coefficients / tTable as a list of named columns
  out <- list(term = rownames(s))
  for (j in colnames(s)) out[[j]] <- unname(s[, j])
  out
}
lrt <- function(a) list(loglik = a$logLik, df = a$df, L_ratio = a$L.Ratio[2], p_value = a[["p-value"]][2])
quant7 <- function(x) unname(quantile(x, c(0, 0.25, 0.5, 0.75, 1), type = 7))

# ---------------------------------------------------------------- Example 2: ca_frequency
f_path <- "datasets/ca_frequency.csv"
ex2 <- read.csv(f_path)
ex2$treatment_idx <- factor(ex2$treatment_idx)
counts <- table(ex2$midx, ex2$treatment_idx)
fit_lm <- lm(res ~ treatment_idx, data = ex2)
s_lm <- summary(fit_lm)
fit_lmer <- lmerTest::lmer(res ~ treatment_idx + (1 | midx), data = ex2, REML = TRUE)
vc <- as.data.frame(VarCorr(fit_lmer))
# The slides' table is this ML fit: its Satterthwaite df (4.90 for the intercept; 1723.5,
# 1720.3, 1719.6) and SEs come out only with REML = FALSE.
fit_lmer_ml <- lmerTest::lmer(res ~ treatment_idx + (1 | midx), data = ex2, REML = FALSE)
vc_ml <- as.data.frame(VarCorr(fit_lmer_ml))
fit_lme_ml <- nlme::lme(res ~ treatment_idx, random = ~ 1 | midx, data = ex2, method = "ML")
fit_lme_ml0 <- nlme::lme(res ~ 1, random = ~ 1 | midx, data = ex2, method = "ML")
medians <- tapply(ex2$res, list(ex2$midx, ex2$treatment_idx), median)
ca_frequency <- list(
  sha256 = sha(f_path),
  n = nrow(ex2),
  counts = unclass(unname(as.matrix(counts))),   # rows mouse 1-4, columns time 1-4
  range = range(ex2$res),
  skewness = mean((ex2$res - mean(ex2$res))^3) / sd(ex2$res)^3,
  medians = unname(medians),
  # lm(res ~ treatment_idx, data = ex2)
  lm = c(coef_table(s_lm$coefficients), list(sigma = s_lm$sigma, r_squared = s_lm$r.squared,
         fstatistic = unname(s_lm$fstatistic),
         residual_quantiles = quant7(residuals(fit_lm)))),
  # lmerTest::lmer(res ~ treatment_idx + (1|midx), REML = TRUE); Satterthwaite df
  lmer = c(coef_table(summary(fit_lmer)$coefficients),
           list(vcov_names = vc$grp, variance = vc$vcov, reml_criterion = unname(REMLcrit(fit_lmer)))),
  # lmerTest::lmer(res ~ treatment_idx + (1|midx), REML = FALSE); Satterthwaite df
  lmer_ml = c(coef_table(summary(fit_lmer_ml)$coefficients),
              list(vcov_names = vc_ml$grp, variance = vc_ml$vcov,
                   loglik = as.numeric(logLik(fit_lmer_ml)))),
  # nlme::lme(res ~ treatment_idx, random = ~1|midx, method = "ML"), containment df
  lme_ml = c(coef_table(summary(fit_lme_ml)$tTable),
             list(loglik = as.numeric(logLik(fit_lme_ml)),
                  overall_lrt_p = anova(fit_lme_ml0, fit_lme_ml)[["p-value"]][2]))
)

# ---------------------------------------------------------------- Example 3: ca_amplitude
a_path <- "datasets/ca_amplitude.csv"
ex3_all <- read.csv(a_path)
ex3 <- ex3_all[!is.na(ex3_all$res), ]
wide <- reshape(ex3_all[, c("res", "treatment", "midx", "cidx")], idvar = c("midx", "cidx"),
                timevar = "treatment", direction = "wide")
wide <- wide[complete.cases(wide), ]
cors <- sapply(split(wide, wide$midx), function(w) cor(w$res.1, w$res.2))
ctl <- lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 1000)
o1 <- lme(res ~ treatment, random = ~ 1 | midx / cidx, data = ex3, method = "ML")
o2 <- lme(res ~ treatment, random = list(midx = ~ 1, cidx = ~ 1), data = ex3, method = "ML")
o3 <- lme(res ~ treatment, random = list(midx = ~ 1, cidx = ~ treatment), data = ex3,
          method = "ML", control = ctl)
o4 <- lme(res ~ treatment, random = list(midx = ~ treatment, cidx = ~ 1), data = ex3,
          method = "ML", control = ctl)
o5 <- lme(res ~ treatment, random = list(midx = ~ treatment, cidx = ~ treatment), data = ex3,
          method = "ML", control = ctl)
lme_summary <- function(o) c(coef_table(summary(o)$tTable), list(loglik = as.numeric(logLik(o)),
                             aic = AIC(o), bic = BIC(o)))
s_lm3 <- summary(lm(res ~ treatment, data = ex3))
t_eq <- t.test(ex3$res[ex3$treatment == 1], ex3$res[ex3$treatment == 2], var.equal = TRUE)
t_welch <- t.test(ex3$res[ex3$treatment == 1], ex3$res[ex3$treatment == 2])
ca_amplitude <- list(
  sha256 = sha(a_path),
  n_rows = nrow(ex3_all), n_missing = sum(is.na(ex3_all$res)),
  n_cells = length(unique(ex3_all$cidx)), n_mice = length(unique(ex3_all$midx)),
  cells_per_mouse = unname(as.vector(table(ex3_all$midx[ex3_all$treatment == 1]))),
  range_baseline = range(ex3$res[ex3$treatment == 1]),
  range_24h = range(ex3$res[ex3$treatment == 2]),
  correlations = unname(cors), correlation_median = median(cors),
  # summary(lm(res ~ treatment, data = Ex3[!is.na(Ex3$res), ]))
  lm = c(coef_table(s_lm3$coefficients), list(sigma = s_lm3$sigma)),
  t_test_equal_var_p = t_eq$p.value, t_test_welch_p = t_welch$p.value,
  # lme(res ~ treatment, random = ..., method = "ML"), obj1..obj5 as in the book
  obj1 = lme_summary(o1), obj2 = lme_summary(o2), obj3 = lme_summary(o3),
  obj4 = lme_summary(o4), obj5 = lme_summary(o5),
  anova_1_3 = lrt(anova(o1, o3)), anova_1_4 = lrt(anova(o1, o4)),
  anova_3_5 = lrt(anova(o3, o5)), anova_4_5 = lrt(anova(o4, o5))
)

# ---------------------------------------------------------------- Example 4: water_lick
w_path <- "datasets/water_lick.csv"
wl <- read.csv(w_path)
mouse_num <- wl$mouseID
wl$mouseID <- factor(wl$mouseID)
g1 <- glmer(lick ~ dff + (1 | mouseID), data = wl, family = binomial)
g0 <- glmer(lick ~ (1 | mouseID), data = wl, family = binomial)
water_lick <- list(
  sha256 = sha(w_path),
  n = nrow(wl), n_correct = sum(wl$lick), n_mice = nlevels(wl$mouseID),
  trials_per_mouse = unname(as.vector(table(wl$mouseID))),
  mouse_summary = c(quant7(mouse_num), mean(mouse_num)),   # min, Q1, median, Q3, max, mean
  dff_summary = c(quant7(wl$dff), mean(wl$dff)),
  # glmer(lick ~ dff + (1|mouseID), family = binomial), Laplace
  glmer = c(coef_table(summary(g1)$coefficients),
            list(mouse_sd = attr(VarCorr(g1)$mouseID, "stddev")[[1]],
                 loglik = as.numeric(logLik(g1)))),
  # anova(g0, g1): LRT for dff
  lrt_p = anova(g0, g1)[["Pr(>Chisq)"]][2]
)

out <- list(r_version = R.version.string,
            lme4 = as.character(packageVersion("lme4")),
            nlme = as.character(packageVersion("nlme")),
            ca_frequency = ca_frequency, ca_amplitude = ca_amplitude, water_lick = water_lick)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/datasets.json")
cat("wrote tests/reference/datasets.json\n")
