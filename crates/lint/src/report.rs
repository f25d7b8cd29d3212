//! Collects findings, applying the configuration (which rules run, `error=true`).

use crate::{CheckConfig, Finding, Origin, Rule, RuleSet, Severity};

pub(crate) struct Report<'c> {
    config: &'c CheckConfig,
    rules: RuleSet,
    findings: Vec<Finding>,
}

impl<'c> Report<'c> {
    pub(crate) fn new(config: &'c CheckConfig, rules: RuleSet) -> Self {
        Report {
            config,
            rules,
            findings: Vec::new(),
        }
    }

    /// Whether `rule` runs; checks call this first to skip work for disabled rules.
    pub(crate) fn enabled(&self, rule: Rule) -> bool {
        let in_set = match self.rules {
            RuleSet::All => true,
            RuleSet::BuildKit => rule.origin() == Origin::BuildKit,
        };
        in_set && self.config.is_enabled(rule)
    }

    pub(crate) fn push(&mut self, mut finding: Finding) {
        if !self.enabled(finding.rule) {
            return;
        }
        if self.config.error && finding.severity == Severity::Warning {
            finding.severity = Severity::Error;
        }
        self.findings.push(finding);
    }

    /// The findings ordered by line as BuildKit prints them (stable, so findings on one
    /// line keep the order the checks ran in), with exact repeats removed.
    pub(crate) fn finish(self) -> Vec<Finding> {
        let mut findings = self.findings;
        findings.sort_by_key(|finding| finding.span.start_line);
        let mut unique: Vec<Finding> = Vec::with_capacity(findings.len());
        for finding in findings {
            let repeat = unique
                .iter()
                .rev()
                .take_while(|f| f.line() == finding.line())
                .any(|f| {
                    f.rule == finding.rule && f.span == finding.span && f.message == finding.message
                });
            if !repeat {
                unique.push(finding);
            }
        }
        unique
    }
}
