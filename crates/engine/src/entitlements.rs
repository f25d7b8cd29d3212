//! BuildKit's entitlements: privileges a RUN step may ask for only when the build grants them (`hoist build
//! --allow network.host,security.insecure`, docker's flag).

use std::collections::HashMap;

use hoist_instructions::{Network, Security};
use hoist_plan::{BuildPlan, Op};

use crate::error::{EngineError, Result};

/// What `--allow` grants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host`.
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure` (every capability).
    pub security_insecure: bool,
}

impl Entitlements {
    /// Reads `--allow` values; each may list several entitlements separated by commas.
    pub fn parse(values: &[String]) -> Result<Entitlements> {
        let mut granted = Entitlements::default();
        for name in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
            match name {
                "network.host" => granted.network_host = true,
                "security.insecure" => granted.security_insecure = true,
                "" => {}
                other => return Err(EngineError::invalid(format!("unknown entitlement {other}"))),
            }
        }
        Ok(granted)
    }

    /// The first entitlement a step needs and is not granted (BuildKit's message: `network.host is not allowed`).
    fn refuse(self, exec: &hoist_plan::op::Exec) -> Option<&'static str> {
        if exec.network == Network::Host && !self.network_host {
            return Some("network.host");
        }
        if exec.security == Security::Insecure && !self.security_insecure {
            return Some("security.insecure");
        }
        None
    }
}

/// Checks every step the build needs before any runs (as BuildKit validates the whole definition first, so a
/// cached step is refused too); the error names the step.
pub(crate) fn check(
    plan: &BuildPlan,
    needed: &[bool],
    names: &HashMap<usize, String>,
    granted: Entitlements,
) -> Result<()> {
    for op in plan.ops.iter().filter(|op| needed[op.id.0]) {
        let Op::Exec(exec) = &op.op else { continue };
        if let Some(entitlement) = granted.refuse(exec) {
            return Err(EngineError::Step {
                op: op.id.0,
                vertex: names.get(&op.id.0).cloned().unwrap_or_default(),
                source: Box::new(EngineError::invalid(format!(
                    "{entitlement} is not allowed"
                ))),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_values_may_be_repeated_or_comma_separated() {
        let both =
            Entitlements::parse(&["network.host".into(), "security.insecure".into()]).unwrap();
        assert_eq!(
            both,
            Entitlements {
                network_host: true,
                security_insecure: true
            }
        );
        assert_eq!(
            Entitlements::parse(&["security.insecure,network.host".into()]).unwrap(),
            both
        );
        assert_eq!(Entitlements::parse(&[]).unwrap(), Entitlements::default());
        let error = Entitlements::parse(&["root".into()]).unwrap_err();
        assert_eq!(error.to_string(), "unknown entitlement root");
    }
}
