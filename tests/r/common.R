# Helpers shared by the reference scripts (source("tests/r/common.R") from the repo root).

# lme4's default optimiser stops when theta moves less than ~1e-6..1e-5; this one goes on
# until bobyqa's trust region is 1e-12 (the optimum itself).
TIGHT <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))

# summary(lmerTest fit)$coefficients with the chosen ddf, as a data frame.
coef_table <- function(fit, ddf) {
  s <- summary(fit, ddf = ddf)$coefficients
  data.frame(term = rownames(s), estimate = s[, "Estimate"], se = s[, "Std. Error"],
             df = s[, "df"], t = s[, "t value"], p = s[, "Pr(>|t|)"], row.names = NULL)
}

# as.data.frame(VarCorr(fit)) with "" for absent names.
varcorr_table <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  data.frame(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
}
