# Reference values for GLMMs with several random-effects terms (issue 13, item 1).
#
# Run from the repository root:   Rscript tests/r/reference_glmm_multi.R
# Writes tests/reference/glmm_multi.json and the data sets tests/data/glmm_multi_*.csv.
# pytest never runs R; it reads the JSON written here (tests/test_glmm_multi.py).
#
# Each design is fitted with glmer's defaults and converged tightly (the `tight` key, as in
# reference_glmm.R): glmer's default stopping rules leave its optimum off by ~1e-4.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

dir.create("tests/reference", showWarnings = FALSE, recursive = TRUE)
dir.create("tests/data", showWarnings = FALSE, recursive = TRUE)

tight <- glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"),
                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

summarise_one <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  aictab <- summary(fit)$AICtab
  list(
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    theta = unname(getME(fit, "theta")),
    varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
    loglik = as.numeric(logLik(fit)),
    aic = unname(aictab[["AIC"]]),
    deviance = unname(aictab[["deviance"]]),
    nobs = nobs(fit),
    singular = isSingular(fit),
    warnings = as.list(unlist(fit@optinfo$conv$lme4$messages))
  )
}

out <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))))

add_case <- function(key, data, file, formula, family, factors = character(0)) {
  write.csv(data, file.path("tests/data", file), row.names = FALSE)
  fam <- if (family == "poisson") poisson else binomial
  call_text <- sprintf("lme4::glmer(%s, data = d, family = %s)", formula, family)
  fit <- glmer(as.formula(formula), data = data, family = fam)
  ft <- suppressMessages(suppressWarnings(update(fit, control = tight)))
  res <- summarise_one(fit)
  res$tight <- summarise_one(ft)
  res$data <- file
  res$formula <- formula
  res$family <- family
  res$factors <- as.list(factors)
  res$r_call <- call_text
  out[[key]] <<- res
}

# ---- 1. grouseticks (lme4): broods nested in locations, Poisson, uncentred height ------------
# lme4::glmer(TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION), data = grouseticks,
#             family = poisson): the crash reported in issue 13 (403 rows).
data(grouseticks, package = "lme4")
gt <- grouseticks[, c("TICKS", "YEAR", "HEIGHT", "cHEIGHT", "BROOD", "LOCATION")]
add_case("grouse_nested", gt, "glmm_multi_grouse.csv",
         "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson",
         c("YEAR", "BROOD", "LOCATION"))
# the same with the centred height
add_case("grouse_centred", gt, "glmm_multi_grouse.csv",
         "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson",
         c("YEAR", "BROOD", "LOCATION"))

# ---- 2. Poisson, plots nested in sites, written with / ---------------------------------------
set.seed(1301)
ns <- 20; np <- 5; nr <- 4
d <- expand.grid(rep = seq_len(nr), plot = seq_len(np), site = seq_len(ns))
us <- rnorm(ns, sd = 0.6); up <- rnorm(ns * np, sd = 0.4)
d$x <- round(rnorm(nrow(d)), 4)
pid <- (d$site - 1) * np + d$plot
d$count <- rpois(nrow(d), exp(0.5 + 0.3 * d$x + us[d$site] + up[pid]))
pn <- data.frame(count = d$count, x = d$x, site = paste0("s", d$site), plot = paste0("p", d$plot))
add_case("pois_nested", pn, "glmm_multi_pois_nested.csv",
         "count ~ x + (1 | site/plot)", "poisson")

# ---- 3. binomial with trials, crossed subjects x items ---------------------------------------
set.seed(1302)
na <- 30; nb <- 12
d <- expand.grid(a = seq_len(na), b = seq_len(nb))
ua <- rnorm(na, sd = 0.8); ub <- rnorm(nb, sd = 0.5)
d$x <- round(runif(nrow(d), -1, 1), 3)
d$n <- sample(3:10, nrow(d), replace = TRUE)
d$s <- rbinom(nrow(d), d$n, plogis(-0.2 + 0.9 * d$x + ua[d$a] + ub[d$b]))
bc <- data.frame(s = d$s, n = d$n, x = d$x, subj = paste0("S", d$a), item = paste0("I", d$b))
add_case("binom_crossed", bc, "glmm_multi_binom_crossed.csv",
         "cbind(s, n - s) ~ x + (1 | subj) + (1 | item)", "binomial")

# ---- 4. Bernoulli, three intercepts: classes nested in schools, crossed with raters ----------
set.seed(1303)
nsch <- 15; ncl <- 4; per <- 8; nrat <- 10
d <- expand.grid(k = seq_len(per), class = seq_len(ncl), school = seq_len(nsch))
d$rater <- sample(seq_len(nrat), nrow(d), replace = TRUE)
usch <- rnorm(nsch, sd = 0.7); ucl <- rnorm(nsch * ncl, sd = 0.5); urat <- rnorm(nrat, sd = 0.4)
cid <- (d$school - 1) * ncl + d$class
d$x <- round(rnorm(nrow(d)), 4)
d$y <- rbinom(nrow(d), 1, plogis(0.3 + 0.6 * d$x + usch[d$school] + ucl[cid] + urat[d$rater]))
b3 <- data.frame(y = d$y, x = d$x, school = paste0("sc", d$school),
                 class = paste0("sc", d$school, "c", d$class), rater = paste0("r", d$rater))
add_case("bern_three", b3, "glmm_multi_bern_three.csv",
         "y ~ x + (1 | school) + (1 | class) + (1 | rater)", "binomial")

# ---- 5. Poisson crossed with one variance that is truly zero (a singular fit) -----------------
set.seed(1304)
na <- 25; nb <- 8
d <- expand.grid(a = seq_len(na), b = seq_len(nb), rep = 1:2)
ua <- rnorm(na, sd = 0.5)
d$x <- round(rnorm(nrow(d)), 4)
d$count <- rpois(nrow(d), exp(1 + 0.2 * d$x + ua[d$a]))
pz <- data.frame(count = d$count, x = d$x, a = paste0("A", d$a), b = paste0("B", d$b))
add_case("pois_zero", pz, "glmm_multi_pois_zero.csv",
         "count ~ x + (1 | a) + (1 | b)", "poisson")

# ---- 6. binomial random slope plus a second intercept ------------------------------------------
set.seed(1305)
ng <- 20; per <- 12; nh <- 6
g <- rep(seq_len(ng), each = per)
h <- sample(seq_len(nh), ng * per, replace = TRUE)
x <- rep(seq(-1, 1, length.out = per), ng)
b0 <- rnorm(ng, sd = 0.6); b1 <- rnorm(ng, sd = 0.5); bh <- rnorm(nh, sd = 0.5)
n <- sample(4:12, ng * per, replace = TRUE)
s <- rbinom(ng * per, n, plogis(-0.4 + 0.7 * x + b0[g] + b1[g] * x + bh[h]))
bs <- data.frame(s = s, n = n, x = x, g = paste0("m", g), h = paste0("h", h))
add_case("binom_slope_plus", bs, "glmm_multi_binom_slope.csv",
         "cbind(s, n - s) ~ x + (1 + x | g) + (1 | h)", "binomial")

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/glmm_multi.json")
cat("wrote tests/reference/glmm_multi.json\n")
