//! The other RUN options: `--network`, `--security`, `--device` (BuildKit's
//! `commands_runnetwork.go`, `commands_runsecurity.go`, `commands_rundevice.go`).

use hoist_dockerfile::Span;

use crate::go::{csv_fields, did_you_mean, parse_bool, suggest};

/// `RUN --network=<mode>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// The builder's default network.
    Default,
    /// No network at all (only loopback).
    None,
    /// The host's network (needs the `network.host` entitlement).
    Host,
}

impl Network {
    /// Every mode.
    pub const ALL: [Network; 3] = [Self::Default, Self::None, Self::Host];

    /// The value as written in the flag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::None => "none",
            Self::Host => "host",
        }
    }

    /// Looks a mode up by its exact (lower-case) name, as BuildKit does.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

/// `RUN --security=<mode>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// The normal, confined sandbox.
    Sandbox,
    /// Full privileges (needs the `security.insecure` entitlement).
    Insecure,
}

impl Security {
    /// Every mode.
    pub const ALL: [Security; 2] = [Self::Sandbox, Self::Insecure];

    /// The value as written in the flag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Insecure => "insecure",
        }
    }

    /// Looks a mode up by its exact (lower-case) name, as BuildKit does.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A value together with the flag word it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// The flag word.
    pub span: Span,
}

/// `RUN --device=<name>[,required]`: a CDI device to expose to the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device name (`vendor1.com/device=foo`).
    pub name: String,
    /// Fail when the device is not available (otherwise it is skipped).
    pub required: bool,
    /// The `--device=...` flag word.
    pub span: Span,
}

/// A `--device` value that BuildKit rejects. Messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The value is not valid CSV.
    #[error("failed to parse csv devices: {reason}")]
    Csv {
        /// The CSV reader's message.
        reason: String,
    },
    /// `name=` after the name was already given.
    #[error("device name already set to {name}")]
    NameAlreadySet {
        /// The name given first.
        name: String,
    },
    /// A bare word after the name.
    #[error("invalid field '{field}' must be a key=value pair")]
    InvalidField {
        /// The field.
        field: String,
    },
    /// `required=` with a value that is not a boolean.
    #[error("invalid value for {key}: {value}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// An unknown `key=value` after the name.
    #[error("unexpected key '{key}' in '{field}'{}", did_you_mean(.suggestion))]
    UnexpectedKey {
        /// The key, lower-cased.
        key: String,
        /// The whole field.
        field: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
}

/// Parses one `--device` value (BuildKit's `ParseDevice`): the first field that is not a
/// known key is the name (`vendor.com/gpu=all`); `name=` and `required[=bool]` may follow.
pub fn parse_device(value: &str) -> Result<(String, bool), DeviceError> {
    let fields = csv_fields(value).map_err(|reason| DeviceError::Csv { reason })?;
    let mut name = String::new();
    let mut required = false;
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            if field.to_lowercase() == "required" {
                required = true;
            } else if name.is_empty() {
                name = field;
            } else {
                return Err(DeviceError::InvalidField { field });
            }
            continue;
        };
        let key = key.to_lowercase();
        match key.as_str() {
            "name" => {
                if !name.is_empty() {
                    return Err(DeviceError::NameAlreadySet { name });
                }
                name = value.to_owned();
            }
            "required" => {
                required = parse_bool(value).ok_or_else(|| DeviceError::InvalidValue {
                    key: key.clone(),
                    value: value.to_owned(),
                })?;
            }
            _ if name.is_empty() => name = field.clone(),
            _ => {
                return Err(DeviceError::UnexpectedKey {
                    suggestion: suggest(&key, &["name", "required"]).map(str::to_owned),
                    key,
                    field: field.clone(),
                });
            }
        }
    }
    Ok((name, required))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        assert_eq!(
            parse_device("a.com/gpu=all,required"),
            Ok(("a.com/gpu=all".to_owned(), true))
        );
        assert_eq!(
            parse_device("name=x,REQUIRED=false"),
            Ok(("x".to_owned(), false))
        );
        assert_eq!(
            parse_device("x,y").unwrap_err().to_string(),
            "invalid field 'y' must be a key=value pair"
        );
        assert_eq!(
            parse_device("x,nam=y").unwrap_err().to_string(),
            "unexpected key 'nam' in 'nam=y' (did you mean name?)"
        );
        assert_eq!(
            parse_device("x,required=maybe").unwrap_err().to_string(),
            "invalid value for required: maybe"
        );
        assert_eq!(Network::from_name("host"), Some(Network::Host));
        assert_eq!(Network::from_name("HOST"), None);
        assert_eq!(Security::from_name("insecure"), Some(Security::Insecure));
    }
}
