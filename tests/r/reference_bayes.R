# Reference posteriors for mmteach.bayes.fit_bayes_glmm: brms (Stan NUTS) with the book's
# priors, long chains so Monte Carlo error is small next to the test tolerances, and
# bridge-sampling marginal likelihoods for the Bayes factors.
# Run from the repository root: Rscript tests/r/reference_bayes.R  (compiles Stan models:
# a few minutes). Writes tests/reference/bayes.json.
suppressPackageStartupMessages({
  library(brms)
  library(bridgesampling)
  library(jsonlite)
})
options(mc.cores = 2)
# Debian's BH package is a stub over the system Boost headers; point rstan at them.
if (!file.exists(rstan::rstan_options("boost_lib"))) rstan::rstan_options(boost_lib = "/usr/include")

# The book's priors: normal(0, 10) on slopes, half-Cauchy(0, 5) on SDs; brms defaults for
# the rest: student_t(3, 0, 2.5) on the intercept of the centred predictors, lkj(1) on
# correlations.
PRIOR_B <- prior(normal(0, 10), class = b)
PRIOR_SD <- prior(cauchy(0, 5), class = sd)
ITER <- 22000
WARMUP <- 2000

fit_brm <- function(formula, data, family, with_b = TRUE, seed = 1) {
  pri <- if (with_b) c(PRIOR_B, PRIOR_SD) else PRIOR_SD
  brm(formula, data = data, family = family, prior = pri, chains = 4, iter = ITER,
      warmup = WARMUP, seed = seed, refresh = 0, save_pars = save_pars(all = TRUE),
      control = list(adapt_delta = 0.95), silent = 2)
}

summarise_draws <- function(fit) {
  dr <- as_draws_df(fit)
  keep <- grep("^(b_|sd_|cor_)", names(dr), value = TRUE)
  out <- lapply(keep, function(v) {
    x <- dr[[v]]
    list(mean = mean(x), sd = sd(x), q025 = unname(quantile(x, 0.025)),
         q50 = unname(quantile(x, 0.5)), q975 = unname(quantile(x, 0.975)),
         mcse_mean = sd(x) / sqrt(posterior::ess_mean(x)))
  })
  names(out) <- keep
  out
}

log_ml <- function(fit) {
  # median of repeated bridge-sampling estimates, with their spread
  reps <- sapply(1:5, function(i) bridge_sampler(fit, silent = TRUE)$logml)
  list(logml = median(reps), spread = diff(range(reps)))
}

case <- function(file, group, formula, formula0, family) {
  d <- read.csv(file)
  d[[group]] <- factor(d[[group]])
  f1 <- fit_brm(brms::bf(formula), d, family)
  out <- list(file = basename(file), formula = formula, family = family$family,
              draws = summarise_draws(f1), prior = as.data.frame(prior_summary(f1))[, c("prior", "class", "coef", "group")],
              max_rhat = max(rhat(f1), na.rm = TRUE))
  if (!is.null(formula0)) {
    f0 <- fit_brm(brms::bf(formula0), d, family, with_b = FALSE)
    m1 <- log_ml(f1)
    m0 <- log_ml(f0)
    out$formula0 <- formula0
    out$logml1 <- m1$logml
    out$logml0 <- m0$logml
    out$logml_spread <- max(m1$spread, m0$spread)
    out$log_bf10 <- m1$logml - m0$logml
  }
  out
}

out <- list(
  r_version = R.version.string, brms = as.character(packageVersion("brms")),
  rstan = as.character(packageVersion("rstan")), iter = ITER, warmup = WARMUP, chains = 4,
  # brm(lick ~ dff + (1|mouseID), family = bernoulli(), prior = c(normal(0,10) b, cauchy(0,5) sd))
  water_lick = case("datasets/water_lick.csv", "mouseID", "lick ~ dff + (1 | mouseID)",
                    "lick ~ 1 + (1 | mouseID)", bernoulli()),
  # brm(lick ~ dff + (1 + dff|mouseID), ...), lkj(1) on the correlation
  water_lick_slope = case("datasets/water_lick.csv", "mouseID", "lick ~ dff + (1 + dff | mouseID)",
                          NULL, bernoulli()),
  # brm(count ~ x + (1|g), family = poisson(), ...)
  poisson = case("tests/data/glmm_poisson.csv", "g", "count ~ x + (1 | g)", "count ~ 1 + (1 | g)",
                 poisson())
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/bayes.json")
cat("wrote tests/reference/bayes.json\n")
