//! The official RIE's command line and the environment it gives the function.
//!
//! `aws-lambda-rie [flags] [BOOTSTRAP [ARGS...]]`: like go-flags with `IgnoreUnknown`, the emulator's flags are taken
//! from anywhere in argv (even after the bootstrap), and every other word, unknown flags included, is left for the
//! bootstrap in its original order.

use crate::error::Error;
use crate::log::LogLevel;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Default for `--runtime-interface-emulator-address`.
pub const DEFAULT_EMULATOR_ADDRESS: &str = "0.0.0.0:8080";
/// Default for `--runtime-api-address`.
pub const DEFAULT_RUNTIME_API_ADDRESS: &str = "127.0.0.1:9001";
/// Where the bootstrap is looked for when none is given, in order.
pub const BOOTSTRAP_CANDIDATES: [&str; 3] = [
    "/var/task/bootstrap",
    "/opt/bootstrap",
    "/var/runtime/bootstrap",
];

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--log-level` (else `LOG_LEVEL`, else info).
    pub log_level: LogLevel,
    /// `--runtime-interface-emulator-address`: where the invoke endpoint listens.
    pub emulator_address: String,
    /// `--runtime-api-address`: where slot 0's Runtime API listens; becomes `AWS_LAMBDA_RUNTIME_API`.
    pub runtime_api_address: String,
    /// `--enable-init-caching`: accepted for compatibility; hoist does not implement SnapStart restore.
    pub enable_init_caching: bool,
    /// The bootstrap command and its arguments (empty: look for one, see [`BOOTSTRAP_CANDIDATES`]).
    pub bootstrap: Vec<String>,
}

const FLAG_LOG_LEVEL: &str = "--log-level";
const FLAG_EMULATOR: &str = "--runtime-interface-emulator-address";
const FLAG_RUNTIME_API: &str = "--runtime-api-address";
const FLAG_INIT_CACHING: &str = "--enable-init-caching";

impl Options {
    /// Parses the arguments after the program name. `log_level_env` is the value of `LOG_LEVEL`, if set.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        log_level_env: Option<String>,
    ) -> Result<Options, Error> {
        let mut log_level = log_level_env;
        let mut emulator_address = DEFAULT_EMULATOR_ADDRESS.to_owned();
        let mut runtime_api_address = DEFAULT_RUNTIME_API_ADDRESS.to_owned();
        let mut enable_init_caching = false;
        let mut bootstrap = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |flag: &str| match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| Error::MissingFlagValue {
                    flag: flag.to_owned(),
                }),
            };
            match name.as_str() {
                FLAG_LOG_LEVEL => log_level = Some(value(FLAG_LOG_LEVEL)?),
                FLAG_EMULATOR => emulator_address = value(FLAG_EMULATOR)?,
                FLAG_RUNTIME_API => runtime_api_address = value(FLAG_RUNTIME_API)?,
                FLAG_INIT_CACHING => enable_init_caching = inline.as_deref() != Some("false"),
                _ => bootstrap.push(arg),
            }
        }
        let log_level = match log_level {
            Some(v) => LogLevel::parse(&v).ok_or(Error::InvalidLogLevel { value: v })?,
            None => LogLevel::Info,
        };
        check_host_port(FLAG_EMULATOR, &emulator_address)?;
        check_host_port(FLAG_RUNTIME_API, &runtime_api_address)?;
        Ok(Options {
            log_level,
            emulator_address,
            runtime_api_address,
            enable_init_caching,
            bootstrap,
        })
    }

    /// The command to run, where, and the handler name, as the official `getBootstrap` decides them.
    pub fn resolve_bootstrap(&self) -> Bootstrap {
        if self.bootstrap.is_empty() {
            let found = BOOTSTRAP_CANDIDATES
                .iter()
                .find(|c| Path::new(c).is_file())
                .unwrap_or(&BOOTSTRAP_CANDIDATES[0]);
            return Bootstrap {
                argv: vec![(*found).to_owned()],
                cwd: Some(PathBuf::from("/var/task")),
                handler: None,
            };
        }
        let handler =
            (self.bootstrap.len() >= 2).then(|| self.bootstrap[self.bootstrap.len() - 1].clone());
        Bootstrap {
            argv: self.bootstrap.clone(),
            cwd: None,
            handler,
        }
    }
}

fn check_host_port(flag: &'static str, value: &str) -> Result<(), Error> {
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidAddress {
            flag,
            value: value.to_owned(),
        })
    }
}

/// The process the emulator starts for each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory (`None`: the emulator's own).
    pub cwd: Option<PathBuf>,
    /// The handler from the command line (the last argument when there are at least two).
    pub handler: Option<String>,
}

/// The environment for the function: the emulator's whole environment `inherited` (less
/// `AWS_LAMBDA_MAX_CONCURRENCY`), the official defaults, the credentials (empty when unset), `_HANDLER` and
/// `AWS_LAMBDA_RUNTIME_API`.
pub fn function_environment(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    handler: Option<&str>,
    runtime_api: &str,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = inherited.into_iter().collect();
    let get = |env: &[(OsString, OsString)], k: &str| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let set = |env: &mut Vec<(OsString, OsString)>, k: &str, v: OsString| {
        env.retain(|(n, _)| n != k);
        env.push((k.into(), v));
    };
    for (key, default) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "test_function"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/Functions"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "$LATEST"),
    ] {
        if get(&env, key).is_none() {
            set(&mut env, key, default.into());
        }
    }
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        let value = get(&env, key).unwrap_or_default();
        set(&mut env, key, value);
    }
    let handler = get(&env, "AWS_LAMBDA_FUNCTION_HANDLER")
        .or_else(|| get(&env, "_HANDLER"))
        .or_else(|| handler.map(OsString::from));
    if let Some(handler) = handler {
        set(&mut env, "_HANDLER", handler);
    }
    set(&mut env, "AWS_LAMBDA_RUNTIME_API", runtime_api.into());
    // hoist meets AWS_LAMBDA_MAX_CONCURRENCY with N single-invoke processes. A runtime that saw the variable would
    // switch to its own multi-concurrent mode (awslambdaric forks N pollers, lambda_runtime polls N times) against
    // a Runtime API that serves one invoke at a time.
    env.retain(|(n, _)| n != "AWS_LAMBDA_MAX_CONCURRENCY");
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Error> {
        Options::parse(args.iter().map(|s| s.to_string()), None)
    }

    #[test]
    fn flags_are_taken_from_anywhere_and_unknown_ones_stay_with_the_bootstrap() {
        let o = parse(&[
            "python3",
            "-m",
            "awslambdaric",
            "--runtime-interface-emulator-address",
            "127.0.0.1:1",
            "--x",
            "app.h",
        ])
        .expect("valid command line");
        assert_eq!(o.emulator_address, "127.0.0.1:1");
        assert_eq!(o.runtime_api_address, DEFAULT_RUNTIME_API_ADDRESS);
        assert_eq!(
            o.bootstrap,
            ["python3", "-m", "awslambdaric", "--x", "app.h"]
        );
        assert_eq!(o.resolve_bootstrap().handler.as_deref(), Some("app.h"));
    }

    #[test]
    fn equals_form_levels_and_errors() {
        let o = parse(&[
            "--log-level=debug",
            "--runtime-api-address=127.0.0.1:9",
            "/bootstrap",
        ])
        .expect("valid");
        assert_eq!(o.log_level, LogLevel::Debug);
        assert_eq!(o.runtime_api_address, "127.0.0.1:9");
        assert_eq!(o.resolve_bootstrap().handler, None);
        assert!(matches!(
            parse(&["--log-level", "loud"]),
            Err(Error::InvalidLogLevel { .. })
        ));
        assert!(matches!(
            parse(&["--runtime-api-address", "nope"]),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            parse(&["--log-level"]),
            Err(Error::MissingFlagValue { .. })
        ));
        let env_level = Options::parse(Vec::new(), Some("warn".into())).expect("valid");
        assert_eq!(env_level.log_level, LogLevel::Warn);
    }

    #[test]
    fn no_bootstrap_means_the_default_locations() {
        let b = parse(&[]).expect("valid").resolve_bootstrap();
        assert!(BOOTSTRAP_CANDIDATES.contains(&b.argv[0].as_str()));
        assert_eq!(b.cwd.as_deref(), Some(Path::new("/var/task")));
    }

    #[test]
    fn environment_defaults_credentials_and_handler_precedence() {
        let inherited = vec![
            ("AWS_LAMBDA_MAX_CONCURRENCY".into(), "4".into()),
            ("A".into(), "x=y".into()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), "mine".into()),
        ];
        let env = function_environment(inherited, Some("cli.handler"), "127.0.0.1:9001");
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("A").as_deref(), Some("x=y"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME").as_deref(), Some("mine"));
        assert_eq!(
            get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
            Some("3008")
        );
        assert_eq!(get("AWS_SESSION_TOKEN").as_deref(), Some(""));
        assert_eq!(get("_HANDLER").as_deref(), Some("cli.handler"));
        assert_eq!(
            get("AWS_LAMBDA_RUNTIME_API").as_deref(),
            Some("127.0.0.1:9001")
        );
        let env = function_environment(
            vec![("AWS_LAMBDA_FUNCTION_HANDLER".into(), "env.h".into())],
            Some("cli"),
            "a:1",
        );
        let handler = env
            .iter()
            .find(|(n, _)| n == "_HANDLER")
            .map(|(_, v)| v.clone());
        assert_eq!(handler, Some("env.h".into()));
    }
}
