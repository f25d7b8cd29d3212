//! `RUN --mount=type=cache,target=/root/.cache,...`: parsed and validated like BuildKit's
//! `commands_runmount.go`.
//!
//! BuildKit reads a mount in two passes, and so does hoist. When the instruction is converted
//! only the CSV syntax and the `from` rule (no variables) are checked: the values may still
//! hold `$VAR`s that only the planner can expand. [`MountSpec::resolve`] then runs the full
//! parse with an expander: defaults, every option and every error. A spec without variables
//! can be resolved at once with [`MountSpec::resolve_verbatim`].

use hoist_dockerfile::{Span, go_quote};

use crate::go::{csv_fields, did_you_mean, parse_bool, parse_uint, ram_in_bytes, suggest};

/// One `--mount=<spec>` of a RUN, as written (quotes already removed by the parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The text after `--mount=` (`type=cache,target=/root/.cache`).
    pub text: String,
    /// The `--mount=...` flag word.
    pub span: Span,
}

impl MountSpec {
    /// Parses and validates the spec, expanding every `key=value` value with `expand` (the
    /// planner passes its shell-word expander; the error is reported as is).
    pub fn resolve(
        &self,
        mut expand: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<Mount, MountError> {
        parse_mount(&self.text, Some(&mut expand))
    }

    /// Parses and validates the spec with every value taken literally, as for a spec without
    /// variables.
    pub fn resolve_verbatim(&self) -> Result<Mount, MountError> {
        self.resolve(|value| Ok(value.to_owned()))
    }

    /// The CSV fields as `(lower-cased key, value)`, `value` being `None` for a bare key
    /// (`ro`, `required`). Values are not expanded.
    pub fn fields(&self) -> Result<Vec<(String, Option<String>)>, MountError> {
        Ok(csv_fields(&self.text)
            .map_err(|reason| MountError::Csv { reason })?
            .into_iter()
            .map(|field| match field.split_once('=') {
                Some((key, value)) => (key.to_lowercase(), Some(value.to_owned())),
                None => (field.to_lowercase(), None),
            })
            .collect())
    }

    /// BuildKit's conversion-time pass: CSV syntax, and no variable in `from`.
    pub(crate) fn check_syntax(&self) -> Result<(), MountError> {
        parse_mount(&self.text, None).map(|_| ())
    }
}

/// The kinds of RUN mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountType {
    /// A read-only view of the build context or of another stage/image (the default).
    Bind,
    /// A persistent cache directory shared between builds.
    Cache,
    /// An empty in-memory filesystem.
    Tmpfs,
    /// A build secret as a file (or environment variable).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    /// Every mount type.
    pub const ALL: [MountType; 5] = [
        Self::Bind,
        Self::Cache,
        Self::Tmpfs,
        Self::Secret,
        Self::Ssh,
    ];

    /// The name used in `type=` (`bind`, `cache`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Cache => "cache",
            Self::Tmpfs => "tmpfs",
            Self::Secret => "secret",
            Self::Ssh => "ssh",
        }
    }

    fn from_lowercase(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for MountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How concurrent builds share a cache mount (`sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// Several writers at once (the default).
    Shared,
    /// A new cache directory when the cache is in use.
    Private,
    /// Wait until the other writer releases the cache.
    Locked,
}

impl Sharing {
    /// Every sharing mode.
    pub const ALL: [Sharing; 3] = [Self::Shared, Self::Private, Self::Locked];

    /// The name used in `sharing=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Private => "private",
            Self::Locked => "locked",
        }
    }
}

/// A fully parsed RUN mount (BuildKit's `instructions.Mount`). Empty strings mean "not set",
/// as in BuildKit (`from=` is the same as no `from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`, default bind.
    pub kind: MountType,
    /// `from=`: the stage or image to mount from (bind, cache).
    pub from: String,
    /// `source=`/`src=`: the path in `from`, or the secret id source.
    pub source: String,
    /// `target=`/`dst=`/`destination=`: where to mount.
    pub target: String,
    /// `ro`/`readonly`, `rw`/`readwrite`. When not given: false for cache and tmpfs, true
    /// for the other types.
    pub read_only: bool,
    /// `size=` of a tmpfs in bytes (`64m`), 0 when not given.
    pub size_limit: i64,
    /// `id=`: the cache id, or the secret/ssh id.
    pub id: String,
    /// `sharing=` of a cache mount.
    pub sharing: Option<Sharing>,
    /// `required` for secret and ssh mounts: fail when the secret/agent is missing.
    pub required: bool,
    /// `env=` of a secret mount: expose the secret as this environment variable
    /// (`Some("")` means the default name).
    pub env: Option<String>,
    /// `mode=` (octal) of cache, secret and ssh mounts.
    pub mode: Option<u32>,
    /// `uid=` of cache, secret and ssh mounts.
    pub uid: Option<u32>,
    /// `gid=` of cache, secret and ssh mounts.
    pub gid: Option<u32>,
}

/// A mount spec that BuildKit rejects. Messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The spec is not valid CSV.
    #[error("failed to parse csv mounts: {reason}")]
    Csv {
        /// The CSV reader's message.
        reason: String,
    },
    /// A bare key other than ro/rw/readonly/readwrite/required.
    #[error("invalid field '{field}' must be a key=value pair")]
    InvalidField {
        /// The field.
        field: String,
    },
    /// `from=$VAR`: mounts cannot name a stage through a variable.
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    FromVariable,
    /// The expander rejected a value (its message, as is).
    #[error("{message}")]
    Expansion {
        /// The expander's message.
        message: String,
    },
    /// `type=` with an unknown type.
    #[error("unsupported mount type {}{}", go_quote(.value), did_you_mean(.suggestion))]
    UnsupportedType {
        /// The value given.
        value: String,
        /// The closest type.
        suggestion: Option<String>,
    },
    /// A bool or size option with a value that does not parse (`ro=maybe`, `size=big`).
    #[error("invalid value for {key}: {value}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `mode=`, `uid=` or `gid=` that is not a number (octal for mode) below 2^32.
    #[error("invalid value {value} for {key}")]
    InvalidNumber {
        /// `mode`, `uid` or `gid`.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// `required` on a type other than secret/ssh, `size` on a type other than tmpfs.
    #[error("unexpected key '{key}' for mount type '{mount_type}'")]
    UnexpectedKeyForType {
        /// The key.
        key: String,
        /// The type at that point of the spec.
        mount_type: MountType,
    },
    /// `sharing=` with an unknown mode.
    #[error("unsupported sharing value {}{}", go_quote(.value), did_you_mean(.suggestion))]
    UnsupportedSharing {
        /// The value given.
        value: String,
        /// The closest mode.
        suggestion: Option<String>,
    },
    /// An unknown key.
    #[error("unexpected key '{key}' in '{field}'{}", did_you_mean(.suggestion))]
    UnexpectedKey {
        /// The key, lower-cased.
        key: String,
        /// The whole field.
        field: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
    /// `mode`, `uid` or `gid` on a bind or tmpfs mount.
    #[error("{option} not allowed for {} type mounts", go_quote(.mount_type.as_str()))]
    NotAllowedForType {
        /// `mode`, `uid` or `gid`.
        option: &'static str,
        /// The mount type.
        mount_type: MountType,
    },
    /// A secret mount with `from`.
    #[error("secret mount should not have a from")]
    SecretFrom,
    /// A secret mount with `sharing`.
    #[error("secret mount should not define sharing")]
    SecretSharing,
    /// A secret mount with none of source, target, id.
    #[error("invalid secret mount. one of source, target required")]
    SecretTarget,
    /// A secret mount with both source and id.
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    /// `sharing` on a mount that is not a cache.
    #[error("invalid cache sharing set for {mount_type} mount")]
    SharingForType {
        /// The mount type.
        mount_type: MountType,
    },
}

/// Every key BuildKit knows, for suggestions.
const ALL_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

type Expander<'a> = &'a mut dyn FnMut(&str) -> Result<String, String>;

/// BuildKit's `parseMount`. With no expander only the conversion-time checks run (keys are
/// skipped, as their values are not known yet); the result is then meaningless.
fn parse_mount(spec: &str, mut expander: Option<Expander<'_>>) -> Result<Mount, MountError> {
    let fields = csv_fields(spec).map_err(|reason| MountError::Csv { reason })?;
    let mut mount = Mount {
        kind: MountType::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        read_only: false,
        size_limit: 0,
        id: String::new(),
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut read_only_given = false;
    let secret_or_ssh = |kind: MountType| matches!(kind, MountType::Secret | MountType::Ssh);

    for field in &fields {
        let Some((raw_key, raw_value)) = field.split_once('=') else {
            if expander.is_none() {
                continue;
            }
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    mount.read_only = true;
                    read_only_given = true;
                }
                "readwrite" | "rw" => {
                    mount.read_only = false;
                    read_only_given = true;
                }
                "required" if secret_or_ssh(mount.kind) => mount.required = true,
                "required" => {
                    return Err(MountError::UnexpectedKeyForType {
                        key: "required".to_owned(),
                        mount_type: mount.kind,
                    });
                }
                _ => {
                    return Err(MountError::InvalidField {
                        field: field.clone(),
                    });
                }
            }
            continue;
        };
        let key = raw_key.to_lowercase();
        let value = match expander.as_mut() {
            Some(expand) => {
                expand(raw_value).map_err(|message| MountError::Expansion { message })?
            }
            None => {
                // BuildKit's check: a `$` anywhere but at the very end.
                if key == "from"
                    && raw_value
                        .find('$')
                        .is_some_and(|at| at != raw_value.len() - 1)
                {
                    return Err(MountError::FromVariable);
                }
                continue;
            }
        };
        let invalid_value = || MountError::InvalidValue {
            key: key.clone(),
            value: value.clone(),
        };
        match key.as_str() {
            "type" => {
                mount.kind = MountType::from_lowercase(&value.to_lowercase()).ok_or_else(|| {
                    let names = MountType::ALL.map(MountType::as_str);
                    MountError::UnsupportedType {
                        value: value.clone(),
                        suggestion: suggest(&value, &names).map(str::to_owned),
                    }
                })?;
            }
            "from" => mount.from = value,
            "source" | "src" => mount.source = value,
            "target" | "dst" | "destination" => mount.target = value,
            "readonly" | "ro" => {
                mount.read_only = parse_bool(&value).ok_or_else(invalid_value)?;
                read_only_given = true;
            }
            "readwrite" | "rw" => {
                mount.read_only = !parse_bool(&value).ok_or_else(invalid_value)?;
                read_only_given = true;
            }
            "required" => {
                if !secret_or_ssh(mount.kind) {
                    return Err(MountError::UnexpectedKeyForType {
                        key,
                        mount_type: mount.kind,
                    });
                }
                mount.required = parse_bool(&value).ok_or_else(invalid_value)?;
            }
            "size" => {
                if mount.kind != MountType::Tmpfs {
                    return Err(MountError::UnexpectedKeyForType {
                        key,
                        mount_type: mount.kind,
                    });
                }
                mount.size_limit = ram_in_bytes(&value).ok_or_else(invalid_value)?;
            }
            "id" => mount.id = value,
            "sharing" => {
                let lower = value.to_lowercase();
                mount.sharing = Some(
                    Sharing::ALL
                        .into_iter()
                        .find(|s| s.as_str() == lower)
                        .ok_or_else(|| {
                            let names = Sharing::ALL.map(Sharing::as_str);
                            MountError::UnsupportedSharing {
                                value: value.clone(),
                                suggestion: suggest(&value, &names).map(str::to_owned),
                            }
                        })?,
                );
            }
            "mode" => mount.mode = Some(parse_id("mode", &value, 8)?),
            "uid" => mount.uid = Some(parse_id("uid", &value, 10)?),
            "gid" => mount.gid = Some(parse_id("gid", &value, 10)?),
            "env" => mount.env = Some(value),
            _ => {
                return Err(MountError::UnexpectedKey {
                    suggestion: suggest(&key, &ALL_KEYS).map(str::to_owned),
                    key,
                    field: field.clone(),
                });
            }
        }
    }

    let file_info_allowed = matches!(
        mount.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (option, given) in [
            ("mode", mount.mode.is_some()),
            ("uid", mount.uid.is_some()),
            ("gid", mount.gid.is_some()),
        ] {
            if given {
                return Err(MountError::NotAllowedForType {
                    option,
                    mount_type: mount.kind,
                });
            }
        }
    }
    if !read_only_given {
        mount.read_only = !matches!(mount.kind, MountType::Cache | MountType::Tmpfs);
    }
    if mount.kind == MountType::Secret {
        if !mount.from.is_empty() {
            return Err(MountError::SecretFrom);
        }
        if mount.sharing.is_some() {
            return Err(MountError::SecretSharing);
        }
        if mount.source.is_empty() && mount.target.is_empty() && mount.id.is_empty() {
            return Err(MountError::SecretTarget);
        }
        if !mount.source.is_empty() && !mount.id.is_empty() {
            return Err(MountError::SecretSourceAndId);
        }
    }
    if mount.sharing.is_some() && mount.kind != MountType::Cache {
        return Err(MountError::SharingForType {
            mount_type: mount.kind,
        });
    }
    Ok(mount)
}

/// `mode` (octal), `uid`, `gid`: Go's `ParseUint(value, base, 32)`.
fn parse_id(key: &'static str, value: &str, base: u32) -> Result<u32, MountError> {
    parse_uint(value, base, 32)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| MountError::InvalidNumber {
            key,
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> MountSpec {
        MountSpec {
            text: text.to_owned(),
            span: Span::default(),
        }
    }

    fn resolve(text: &str) -> Result<Mount, String> {
        spec(text).resolve_verbatim().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_per_type() {
        let bind = resolve("target=/src").unwrap();
        assert_eq!(bind.kind, MountType::Bind);
        assert!(bind.read_only);
        let cache = resolve(
            "type=cache,target=/root/.cache,id=pip,sharing=LOCKED,mode=0755,uid=1000,gid=1000",
        )
        .unwrap();
        assert_eq!(cache.kind, MountType::Cache);
        assert!(!cache.read_only);
        assert_eq!(cache.sharing, Some(Sharing::Locked));
        assert_eq!(cache.mode, Some(0o755));
        assert_eq!((cache.uid, cache.gid), (Some(1000), Some(1000)));
        assert_eq!(cache.id, "pip");
        let tmpfs = resolve("type=tmpfs,dst=/tmp,size=64m").unwrap();
        assert!(!tmpfs.read_only);
        assert_eq!(tmpfs.size_limit, 64 << 20);
        let secret = resolve("type=secret,id=token,env=TOKEN,required").unwrap();
        assert!(secret.required && secret.read_only);
        assert_eq!(secret.env.as_deref(), Some("TOKEN"));
        let ssh = resolve("type=ssh,required=false,rw").unwrap();
        assert!(!ssh.required && !ssh.read_only);
        let bind_rw = resolve("type=bind,source=.,target=/src,from=build,readwrite=true").unwrap();
        assert!(!bind_rw.read_only);
        assert_eq!(
            (bind_rw.source.as_str(), bind_rw.from.as_str()),
            (".", "build")
        );
    }

    #[test]
    fn errors_match_buildkit() {
        let err = |text: &str| resolve(text).unwrap_err();
        assert_eq!(
            err("type=cach"),
            "unsupported mount type \"cach\" (did you mean cache?)"
        );
        assert_eq!(
            err("type=bind,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            err("type=cache,size=1m"),
            "unexpected key 'size' for mount type 'cache'"
        );
        assert_eq!(err("type=tmpfs,size=big"), "invalid value for size: big");
        assert_eq!(err("ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(err("type=cache,mode=999"), "invalid value 999 for mode");
        assert_eq!(err("type=cache,uid=-1"), "invalid value -1 for uid");
        assert_eq!(
            err("type=cache,sharing=privat"),
            "unsupported sharing value \"privat\" (did you mean private?)"
        );
        assert_eq!(
            err("type=cache,taget=/x"),
            "unexpected key 'taget' in 'taget=/x' (did you mean target?)"
        );
        assert_eq!(
            err("type=bind,mode=0755"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            err("type=tmpfs,uid=1"),
            "uid not allowed for \"tmpfs\" type mounts"
        );
        assert_eq!(
            err("type=secret,id=a,from=x"),
            "secret mount should not have a from"
        );
        assert_eq!(
            err("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            err("type=secret,src=a,id=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            err("type=secret,id=a,sharing=shared"),
            "secret mount should not define sharing"
        );
        assert_eq!(
            err("sharing=shared"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            err("type=cache,nope"),
            "invalid field 'nope' must be a key=value pair"
        );
        assert_eq!(err(""), "failed to parse csv mounts: EOF");
    }

    #[test]
    fn conversion_pass_checks_only_syntax_and_from() {
        assert!(spec("type=nonsense,target=$X").check_syntax().is_ok());
        assert_eq!(
            spec("type=bind,from=$STAGE")
                .check_syntax()
                .unwrap_err()
                .to_string(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert!(spec("from=stage$").check_syntax().is_ok());
        assert!(spec("a\"b").check_syntax().is_err());
    }

    #[test]
    fn expansion_applies_to_values() {
        let mount = spec("type=cache,target=$DIR")
            .resolve(|v| Ok(v.replace("$DIR", "/cache")))
            .unwrap();
        assert_eq!(mount.target, "/cache");
        let err = spec("target=$X")
            .resolve(|_| Err("boom".to_owned()))
            .unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let fields = spec("type=cache,RO").fields().unwrap();
        assert_eq!(
            fields,
            [
                ("type".to_owned(), Some("cache".to_owned())),
                ("ro".to_owned(), None)
            ]
        );
    }
}
