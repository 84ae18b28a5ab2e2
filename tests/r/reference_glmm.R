# Reference values for the GLMM part of mmteach (issue 4).
#
# Run from the repository root:   Rscript tests/r/reference_glmm.R
# Writes tests/reference/glmm.json and the simulated data sets tests/data/glmm_*.csv.
# pytest never runs R; it reads the JSON written here.
#
# Every fit uses lme4::glmer with its defaults (Laplace unless nAGQ is given,
# bobyqa then Nelder_Mead); vcov() is the default, i.e. from the finite-difference
# Hessian of the stage-2 deviance (use.hessian = TRUE).

suppressPackageStartupMessages({
  library(lme4)
  library(geepack)
  library(pbkrtest)
  library(jsonlite)
})

dir.create("tests/reference", showWarnings = FALSE, recursive = TRUE)
dir.create("tests/data", showWarnings = FALSE, recursive = TRUE)

# glmer's defaults stop PIRLS at a relative change of 1e-7 in the penalised deviance and
# Nelder-Mead at FtolAbs 1e-5: the reported optimum is then off by about 1e-4 (relative)
# and the finite-difference Hessian (SEs) by up to 1%. The same estimator converged tightly
# is the reference mmteach matches to 1e-5; the default fit is stored as well.
tight <- glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"),
                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

summarise_glmer <- function(fit, data_file, formula_text, with_tight = TRUE) {
  res <- summarise_one(fit, data_file, formula_text)
  if (with_tight) {
    ft <- suppressMessages(update(fit, control = tight))
    res$tight <- summarise_one(ft, data_file, formula_text)
  }
  res
}

summarise_one <- function(fit, data_file, formula_text) {
  vc <- as.data.frame(VarCorr(fit))
  re <- ranef(fit)
  ranef_list <- lapply(names(re), function(g) {
    df <- re[[g]]
    list(group = g, levels = rownames(df),
         values = lapply(as.list(df), unname))
  })
  aictab <- summary(fit)$AICtab
  fam <- family(fit)
  list(
    data = data_file,
    formula = formula_text,
    family = fam$family,
    link = fam$link,
    nAGQ = fit@devcomp$dims[["nAGQ"]],
    r_call = paste(deparse(getCall(fit), width.cutoff = 500L), collapse = ""),
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    se_rx = as.list(sqrt(diag(as.matrix(vcov(fit, use.hessian = FALSE))))),
    theta = unname(getME(fit, "theta")),
    varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
    loglik = as.numeric(logLik(fit)),
    df = attr(logLik(fit), "df"),
    aic = unname(aictab[["AIC"]]),
    bic = unname(aictab[["BIC"]]),
    deviance = unname(aictab[["deviance"]]),
    nobs = nobs(fit),
    singular = isSingular(fit),
    ranef = ranef_list
  )
}

out <- list(
  versions = list(R = R.version.string,
                  lme4 = as.character(packageVersion("lme4")),
                  geepack = as.character(packageVersion("geepack")),
                  pbkrtest = as.character(packageVersion("pbkrtest")))
)

# ---- 1. cbpp (lme4's data): binomial with trials ---------------------------------------
data(cbpp, package = "lme4")
write.csv(cbpp, "tests/data/glmm_cbpp.csv", row.names = FALSE)
f_cbpp <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
# lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
m_cbpp <- glmer(as.formula(f_cbpp), data = cbpp, family = binomial)
m_cbpp25 <- glmer(as.formula(f_cbpp), data = cbpp, family = binomial, nAGQ = 25)
m_cbpp0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), data = cbpp,
                 family = binomial)
out$cbpp_laplace <- summarise_glmer(m_cbpp, "glmm_cbpp.csv", f_cbpp)
out$cbpp_agq25 <- summarise_glmer(m_cbpp25, "glmm_cbpp.csv", f_cbpp)
a <- anova(m_cbpp, m_cbpp0)
out$cbpp_lrt <- list(chisq = a$Chisq[2], df = a$Df[2], p = a[["Pr(>Chisq)"]][2])

# ---- 2. simulated Bernoulli random intercept ---------------------------------------------
set.seed(20240401)
ng <- 20; per <- 30
g <- rep(seq_len(ng), each = per)
x <- round(rnorm(ng * per), 4)
b <- rnorm(ng, sd = 0.8)
eta <- -0.3 + 0.5 * x + b[g]
bern <- data.frame(y = rbinom(length(eta), 1, plogis(eta)), x = x, g = paste0("m", g))
write.csv(bern, "tests/data/glmm_bernoulli.csv", row.names = FALSE)
m_b <- glmer(y ~ x + (1 | g), data = bern, family = binomial)
m_b10 <- glmer(y ~ x + (1 | g), data = bern, family = binomial, nAGQ = 10)
m_b0 <- glmer(y ~ 1 + (1 | g), data = bern, family = binomial)
out$bernoulli_laplace <- summarise_glmer(m_b, "glmm_bernoulli.csv", "y ~ x + (1 | g)")
out$bernoulli_agq10 <- summarise_glmer(m_b10, "glmm_bernoulli.csv", "y ~ x + (1 | g)")
out$bernoulli_null <- summarise_glmer(m_b0, "glmm_bernoulli.csv", "y ~ 1 + (1 | g)")
a <- anova(m_b, m_b0)
out$bernoulli_lrt <- list(chisq = a$Chisq[2], df = a$Df[2], p = a[["Pr(>Chisq)"]][2])

# geepack::geeglm, exchangeable working correlation, robust (sandwich) SE
gee <- geeglm(y ~ x, id = factor(g), data = bern, family = binomial, corstr = "exchangeable")
sg <- summary(gee)
out$bernoulli_gee <- list(
  coef = as.list(coef(gee)),
  se = as.list(setNames(sg$coefficients[, "Std.err"], rownames(sg$coefficients))),
  alpha = unname(sg$corr[1, "Estimate"]),
  scale = unname(sg$dispersion[1, "Estimate"])
)
# pooled glm
gl <- glm(y ~ x, data = bern, family = binomial)
out$bernoulli_glm <- list(coef = as.list(coef(gl)),
                          se = as.list(sqrt(diag(vcov(gl)))),
                          loglik = as.numeric(logLik(gl)), aic = AIC(gl))

# ---- 3. Poisson random intercept ----------------------------------------------------------
set.seed(7)
ng <- 15; per <- 12
g <- rep(seq_len(ng), each = per)
x <- round(runif(ng * per, 0, 2), 3)
b <- rnorm(ng, sd = 0.5)
pois <- data.frame(count = rpois(ng * per, exp(0.4 + 0.6 * x + b[g])), x = x,
                   g = paste0("c", g))
write.csv(pois, "tests/data/glmm_poisson.csv", row.names = FALSE)
m_p <- glmer(count ~ x + (1 | g), data = pois, family = poisson)
out$poisson_laplace <- summarise_glmer(m_p, "glmm_poisson.csv", "count ~ x + (1 | g)")
m_p5 <- glmer(count ~ x + (1 | g), data = pois, family = poisson, nAGQ = 5)
out$poisson_agq5 <- summarise_glmer(m_p5, "glmm_poisson.csv", "count ~ x + (1 | g)")

# ---- 4. probit ---------------------------------------------------------------------------
set.seed(11)
ng <- 25; per <- 20
g <- rep(seq_len(ng), each = per)
x <- round(rnorm(ng * per), 4)
grp <- rep(c("a", "b"), length.out = ng)[g]
b <- rnorm(ng, sd = 0.6)
eta <- 0.2 + 0.4 * x - 0.3 * (grp == "b") + b[g]
prob <- data.frame(y = rbinom(ng * per, 1, pnorm(eta)), x = x, arm = grp,
                   g = paste0("s", g))
write.csv(prob, "tests/data/glmm_probit.csv", row.names = FALSE)
m_pr <- glmer(y ~ x + arm + (1 | g), data = prob, family = binomial(link = "probit"))
out$probit_laplace <- summarise_glmer(m_pr, "glmm_probit.csv", "y ~ x + arm + (1 | g)")

# ---- 5. crossed binomial ------------------------------------------------------------------
set.seed(5)
na <- 12; nb <- 9
d <- expand.grid(a = seq_len(na), b = seq_len(nb), rep = 1:4)
ua <- rnorm(na, sd = 0.7); ub <- rnorm(nb, sd = 0.5)
d$x <- round(rnorm(nrow(d)), 4)
d$y <- rbinom(nrow(d), 1, plogis(0.1 + 0.7 * d$x + ua[d$a] + ub[d$b]))
crossed <- data.frame(y = d$y, x = d$x, subj = paste0("S", d$a), item = paste0("I", d$b))
write.csv(crossed, "tests/data/glmm_crossed.csv", row.names = FALSE)
m_c <- glmer(y ~ x + (1 | subj) + (1 | item), data = crossed, family = binomial)
out$crossed_laplace <- summarise_glmer(m_c, "glmm_crossed.csv", "y ~ x + (1 | subj) + (1 | item)")

# ---- 6. random slope binomial (cbind with trials) -----------------------------------------
set.seed(3)
ng <- 16; per <- 10
g <- rep(seq_len(ng), each = per)
x <- rep(seq(-1, 1, length.out = per), ng)
b0 <- rnorm(ng, sd = 0.7); b1 <- rnorm(ng, sd = 0.5)
n <- sample(5:15, ng * per, replace = TRUE)
s <- rbinom(ng * per, n, plogis(-0.5 + 0.8 * x + b0[g] + b1[g] * x))
slope <- data.frame(s = s, n = n, x = x, g = paste0("m", g))
write.csv(slope, "tests/data/glmm_slope.csv", row.names = FALSE)
m_s <- glmer(cbind(s, n - s) ~ x + (1 + x | g), data = slope, family = binomial)
out$slope_laplace <- summarise_glmer(m_s, "glmm_slope.csv", "cbind(s, n - s) ~ x + (1 + x | g)")

# ---- 7. parametric bootstrap on a small shared case ---------------------------------------
set.seed(99)
ng <- 8; per <- 40
g <- rep(seq_len(ng), each = per)
x <- round(rnorm(ng * per, 4, 5), 3)
b <- rnorm(ng, sd = 0.6)
small <- data.frame(y = rbinom(ng * per, 1, plogis(-0.6 + 0.035 * x + b[g])), x = x,
                    g = paste0("m", g))
write.csv(small, "tests/data/glmm_pb.csv", row.names = FALSE)
m_f <- glmer(y ~ x + (1 | g), data = small, family = binomial)
m_r <- glmer(y ~ 1 + (1 | g), data = small, family = binomial)
a <- anova(m_f, m_r)
# pbkrtest::PBmodcomp(m_f, m_r, nsim = 1000, seed = 2024)
pb <- PBmodcomp(m_f, m_r, nsim = 1000, seed = 2024)
pbt <- pb$test
out$pb_small <- list(
  data = "glmm_pb.csv", full = "y ~ x + (1 | g)", reduced = "y ~ 1 + (1 | g)",
  full_fit = summarise_glmer(m_f, "glmm_pb.csv", "y ~ x + (1 | g)"),
  lrt_chisq = a$Chisq[2], lrt_df = a$Df[2], lrt_p = a[["Pr(>Chisq)"]][2],
  pb_stat = pbt["PBtest", "stat"], pb_p = pbt["PBtest", "p.value"],
  lrt_p_pbmodcomp = pbt["LRT", "p.value"],
  nsim = 1000, n_used = length(na.omit(pb$ref))
)

# ---- 8. water lick (the reconstructed data set, if present) -------------------------------
wl_file <- "datasets/water_lick.csv"
if (file.exists(wl_file)) {
  wl <- read.csv(wl_file)
  wl$mouseID <- factor(wl$mouseID)
  # lme4::glmer(lick ~ dff + (1 | mouseID), data = d, family = binomial)
  m_w <- glmer(lick ~ dff + (1 | mouseID), data = wl, family = binomial)
  m_w0 <- glmer(lick ~ 1 + (1 | mouseID), data = wl, family = binomial)
  a <- anova(m_w, m_w0)
  out$water_lick <- summarise_glmer(m_w, "../../datasets/water_lick.csv",
                                    "lick ~ dff + (1 | mouseID)")
  out$water_lick_lrt <- list(chisq = a$Chisq[2], df = a$Df[2], p = a[["Pr(>Chisq)"]][2])
}

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/glmm.json")
cat("wrote tests/reference/glmm.json\n")
