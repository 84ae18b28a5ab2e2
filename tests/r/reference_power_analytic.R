# Analytic power of the mouse-means t-test (issue 14): stats::power.t.test.
# Run from the repository root:   Rscript tests/r/reference_power_analytic.R
# Writes tests/reference/power_analytic.json. Between mice: two-sample t on mouse means with
# sd^2 = icc + (1 - icc) / cells; within mice: paired t on differences with
# sd^2 = slope_sd^2 + (1 - icc) (1 / n0 + 1 / n1).
suppressPackageStartupMessages(library(jsonlite))
cases <- list(
  list(kind = "between", mice = 6, cells_per_mouse = 10, icc = 0.3, effect = 1, slope_sd = 0),
  list(kind = "between", mice = 4, cells_per_mouse = 50, icc = 0.6, effect = 1.5, slope_sd = 0),
  list(kind = "within", mice = 8, cells_per_mouse = 20, icc = 0.3, effect = 0.4, slope_sd = 0.3),
  list(kind = "within", mice = 5, cells_per_mouse = 7, icc = 0.5, effect = 1, slope_sd = 0.2)
)
out <- lapply(cases, function(p) {
  if (p$kind == "between") {
    sd <- sqrt(p$icc + (1 - p$icc) / p$cells_per_mouse)
    pw <- power.t.test(n = p$mice, delta = p$effect, sd = sd, type = "two.sample", strict = TRUE)$power
  } else {
    n0 <- p$cells_per_mouse %/% 2
    n1 <- p$cells_per_mouse - n0
    sd <- sqrt(p$slope_sd^2 + (1 - p$icc) * (1 / n0 + 1 / n1))
    pw <- power.t.test(n = p$mice, delta = p$effect, sd = sd, type = "paired", strict = TRUE)$power
  }
  list(design = p, power = pw)
})
write_json(out, "tests/reference/power_analytic.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
