# Reference values for mmteach's formula/design code, pooled LMs and t-tests.
# Run from the repository root: Rscript tests/r/reference_lm.R
# Writes tests/data/lm_design.csv and tests/reference/lm.json.
suppressPackageStartupMessages(library(jsonlite))
set.seed(20260721)
n <- 90
d <- data.frame(
  y = rnorm(n, 10, 2),
  x = round(runif(n, 0, 5), 3),
  a = sample(c("ctl", "ket", "sal"), n, replace = TRUE),
  t = sample(1:3, n, replace = TRUE),
  g = rep(1:6, each = 15),
  pair = rep(1:45, times = 2),
  period = rep(1:2, each = 45)
)
d$y <- round(d$y + 0.8 * d$x + ifelse(d$a == "ket", 1, 0) + 0.5 * d$period, 4)
d$y[c(7, 50)] <- NA
write.csv(d, "tests/data/lm_design.csv", row.names = FALSE, na = "")

tidy_lm <- function(fit) {
  s <- summary(fit)$coefficients
  list(term = rownames(s), estimate = unname(s[, 1]), std_error = unname(s[, 2]),
       statistic = unname(s[, 3]), p_value = unname(s[, 4]), df = fit$df.residual,
       sigma = summary(fit)$sigma, loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit))
}
dd <- d
dd$t <- factor(dd$t)
formulas <- c("y ~ x", "y ~ a", "y ~ x * a", "y ~ t + x:a", "y ~ 0 + a + x", "y ~ a:t")
cases <- lapply(formulas, function(f) {
  fit <- lm(as.formula(f), data = dd)
  out <- tidy_lm(fit)
  # aliased (NA) coefficients are absent from summary(); record the model matrix names too
  out$model_matrix_names <- colnames(model.matrix(fit))
  out$formula <- f
  out
})
tt <- function(x) list(estimate = unname(x$estimate), statistic = unname(x$statistic),
                       df = unname(x$parameter), p_value = x$p.value, conf_low = x$conf.int[1],
                       conf_high = x$conf.int[2])
pooled <- tt(t.test(y ~ period, data = d, var.equal = TRUE))
welch <- tt(t.test(y ~ period, data = d))
w <- reshape(d[, c("y", "pair", "period")], idvar = "pair", timevar = "period", direction = "wide")
w <- w[complete.cases(w), ]
paired <- tt(t.test(w$y.2, w$y.1, paired = TRUE))
out <- list(
  r_version = R.version.string,
  lm = cases,
  ttest = list(pooled = pooled, welch = welch, paired = paired)
)
write_json(out, "tests/reference/lm.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote tests/reference/lm.json\n")
