# Type III F tests of every fixed term, including main effects that are also part of an
# interaction (factor * factor, factor * numeric, a three-way term with a covariate;
# balanced and unbalanced data), for mmteach.compare.f_test.
# Run from the repository root:  Rscript tests/r/reference_ftest.R
# Writes tests/reference/ftest.json and the simulated data sets tests/data/ftest_*.csv.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})
source("tests/r/common.R")

out <- list()
out$versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest"))
)

anova_table <- function(fit, ddf) {
  a <- anova(fit, type = 3, ddf = ddf)
  data.frame(term = rownames(a), F = a[["F value"]], num_df = a[["NumDF"]],
             den_df = a[["DenDF"]], p = a[["Pr(>F)"]], row.names = NULL)
}

# write a data set and read it back, so R fits exactly what the CSV holds
save_data <- function(d, file) {
  write.csv(d, file.path("tests", "data", file), row.names = FALSE)
  read.csv(file.path("tests", "data", file), stringsAsFactors = TRUE)
}

cases <- list()
add_case <- function(name, d, file, formula, factors = character(0)) {
  for (f in factors) d[[f]] <- factor(d[[f]])
  fit <- lmer(as.formula(formula), data = d, REML = TRUE, control = TIGHT)
  cases[[name]] <<- list(
    data_file = file, formula = formula, factors = factors,
    anova_satterthwaite = anova_table(fit, "Satterthwaite"),
    anova_kenward_roger = anova_table(fit, "Kenward-Roger")
  )
}

set.seed(20261121)
# 3 x 2 factorial within 12 groups, 3 replicates per cell (balanced)
g <- factor(rep(sprintf("g%02d", 1:12), each = 18))
d <- expand.grid(rep = 1:3, b = c("lo", "hi"), a = c("A", "B", "C"), g = levels(g))
d$x <- round(rnorm(nrow(d)), 3)
u <- rnorm(12, sd = 0.8)[as.integer(d$g)]
d$y <- round(1 + 0.5 * (d$a == "B") - 0.4 * (d$a == "C") + 0.3 * (d$b == "hi") +
             0.6 * (d$a == "C") * (d$b == "hi") + 0.4 * d$x + u + rnorm(nrow(d)), 4)
bal <- save_data(d[, c("y", "a", "b", "x", "g")], "ftest_ff_bal.csv")
add_case("ff_balanced", bal, "ftest_ff_bal.csv", "y ~ a * b + (1 | g)")

# unbalanced: drop 30% of the rows at random
keep <- sort(sample(nrow(d), round(0.7 * nrow(d))))
unb <- save_data(d[keep, c("y", "a", "b", "x", "g")], "ftest_ff_unbal.csv")
add_case("ff_unbalanced", unb, "ftest_ff_unbal.csv", "y ~ a * b + (1 | g)")
add_case("fx_unbalanced", unb, "ftest_ff_unbal.csv", "y ~ a * x + (1 | g)")
add_case("ffx_unbalanced", unb, "ftest_ff_unbal.csv", "y ~ a * b * x + (1 | g)")
add_case("fx_slope", unb, "ftest_ff_unbal.csv", "y ~ b * x + a + (x | g)")

# a numeric level code given as a factor, times a numeric covariate, unequal group sizes
n <- 150
d2 <- data.frame(g = sample(sprintf("s%d", 1:15), n, replace = TRUE),
                 t = sample(1:3, n, replace = TRUE), x = round(runif(n, 0, 10), 2))
d2$y <- round(2 + 0.3 * d2$t + 0.1 * d2$x - 0.05 * d2$t * d2$x +
              rnorm(15)[as.integer(factor(d2$g))] + rnorm(n), 4)
d2 <- save_data(d2, "ftest_tx.csv")
add_case("tx_numeric_code", d2, "ftest_tx.csv", "y ~ t * x + (1 | g)", factors = "t")

# the sleepstudy data with a two-level period factor (made by tests/r/reference_lme.R)
sp <- read.csv(file.path("tests", "data", "lme_sleepstudy_period.csv"), stringsAsFactors = TRUE)
add_case("sleepstudy_period", sp, "lme_sleepstudy_period.csv",
         "Reaction ~ period * Days + (1 | Subject)")

out$cases <- cases
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path("tests", "reference", "ftest.json"))
