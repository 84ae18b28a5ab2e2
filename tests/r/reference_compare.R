# Reference values for mmteach's likelihood-ratio tests and parametric bootstrap (mmteach/compare.py).
# Run from the repository root:  Rscript tests/r/reference_compare.R
# Writes tests/reference/compare.json, tests/data/lme_pastes.csv (lme4's Pastes) and
# tests/data/pb_pastes_sims.csv (responses simulated from the reduced fit, one column per draw,
# so that mmteach refits exactly the samples pbkrtest::PBmodcomp used).
suppressPackageStartupMessages({
  library(lme4)
  library(pbkrtest)
  library(jsonlite)
})

out <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            pbkrtest = as.character(packageVersion("pbkrtest"))))
data(Pastes, package = "lme4")
d <- data.frame(strength = Pastes$strength, batch = as.character(Pastes$batch),
                cask = as.character(Pastes$cask))
write.csv(d, "tests/data/lme_pastes.csv", row.names = FALSE)

# 50:50 chi-bar-square p for one variance dropped
chibar <- function(x, df) 0.5 * pchisq(x, df, lower.tail = FALSE) +
  0.5 * (if (df > 1) pchisq(x, df - 1, lower.tail = FALSE) else as.numeric(x <= 0))

lrt_case <- function(full, reduced) {
  f1 <- lmer(as.formula(full), data = d, REML = FALSE)
  f0 <- lmer(as.formula(reduced), data = d, REML = FALSE)
  a <- anova(f1, f0)  # lme4::anova(lmer(full, REML = FALSE), lmer(reduced, REML = FALSE))
  list(full = full, reduced = reduced, chisq = a$Chisq[2], df = a$Df[2],
       p = a[["Pr(>Chisq)"]][2], p_boundary = chibar(a$Chisq[2], a$Df[2]),
       loglik_full = as.numeric(logLik(f1)), loglik_reduced = as.numeric(logLik(f0)))
}
# The batch variance tested: every spelling of the reduced model is the same model.
out$pastes_batch <- lrt_case("strength ~ 1 + (1 | batch/cask)", "strength ~ 1 + (1 | batch:cask)")
out$pastes_batch_alt <- lrt_case("strength ~ 1 + (1 | batch) + (1 | cask:batch)",
                                 "strength ~ 1 + (1 | cask:batch)")
# The cask-within-batch variance tested.
out$pastes_cask <- lrt_case("strength ~ 1 + (1 | batch/cask)", "strength ~ 1 + (1 | batch)")

# Parametric bootstrap on a boundary: the batch variance, 400 draws simulated from the reduced
# fit (simulate.merMod), both models refitted by ML as pbkrtest's PBrefdist does.
f1 <- lmer(strength ~ 1 + (1 | batch/cask), data = d, REML = FALSE)
f0 <- lmer(strength ~ 1 + (1 | batch:cask), data = d, REML = FALSE)
nsim <- 400
sims <- simulate(f0, nsim = nsim, seed = 2026)
ref <- vapply(seq_len(nsim), function(i) {
  y <- sims[[i]]
  2 * (as.numeric(logLik(refit(f1, y))) - as.numeric(logLik(refit(f0, y))))
}, numeric(1))
attr(ref, "ctime") <- 0
pb <- PBmodcomp(f1, f0, ref = ref)  # pbkrtest::PBmodcomp(f1, f0, ref = ref)
tobs <- 2 * (as.numeric(logLik(f1)) - as.numeric(logLik(f0)))
write.csv(as.data.frame(sims), "tests/data/pb_pastes_sims.csv", row.names = FALSE)
out$pb_pastes <- list(
  full = "strength ~ 1 + (1 | batch/cask)", reduced = "strength ~ 1 + (1 | batch:cask)",
  nsim = nsim, lrt = tobs, ref = ref,
  p_pbmodcomp = pb$test["PBtest", "p.value"],
  n_positive = sum(ref > 0), n_extreme = sum(tobs < ref[ref > 0]),
  # every draw counted: (1 + #{LRT* >= LRT}) / (1 + nsim)
  p_all = (1 + sum(ref >= tobs)) / (1 + nsim)
)

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/compare.json")
cat("wrote tests/reference/compare.json\n")
