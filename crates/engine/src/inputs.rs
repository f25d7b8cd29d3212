//! Build inputs as the command line gives them, read the way buildx and docker read them: `--secret` specs,
//! `SOURCE_DATE_EPOCH`, and a context or Dockerfile arriving on standard input (`docker build -`). The caller
//! passes the environment in; nothing here reads it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// The build argument (and environment variable) that makes a build reproducible.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// `--secret` values by id, buildx's rules: `id=ID,src=FILE` (also `source=`), `id=ID,env=VAR`, or `id=ID` alone
/// (the variable `ID`); without `id`, a file's name or the variable's is the id; `type=file|env` is accepted.
/// `env` looks variables up.
pub fn read_secrets(
    specs: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut secrets = BTreeMap::new();
    for spec in specs {
        let (mut id, mut file, mut var) = (None, None, None);
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => file = Some(v.to_owned()),
                Some(("env", v)) => var = Some(v.to_owned()),
                Some(("type", "file" | "env")) => {}
                _ => {
                    return Err(EngineError::invalid(format!(
                        "invalid secret {spec:?}: unexpected {field:?}"
                    )));
                }
            }
        }
        let id = match (id, &file, &var) {
            (Some(id), _, _) => id,
            (None, Some(path), _) => Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, None, Some(var)) => var.clone(),
            (None, None, None) => {
                return Err(EngineError::invalid(format!(
                    "invalid secret {spec:?}: no id"
                )));
            }
        };
        let value = match (file, var) {
            (Some(path), _) => fs::read(&path).map_err(|e| {
                EngineError::invalid(format!("failed to read secret {id} from {path}: {e}"))
            })?,
            (None, var) => {
                let var = var.unwrap_or_else(|| id.clone());
                env(&var)
                    .ok_or_else(|| {
                        EngineError::invalid(format!(
                            "secret {id}: environment variable {var} is not set"
                        ))
                    })?
                    .into_bytes()
            }
        };
        secrets.insert(id, value);
    }
    Ok(secrets)
}

/// Puts `SOURCE_DATE_EPOCH` from the environment (`from_env`) into `build_args` unless one is there, as buildx
/// does, and returns the epoch the build arguments give: `None` when unset or empty, an error when it is not a
/// number of seconds.
pub fn source_date_epoch(
    build_args: &mut BTreeMap<String, String>,
    from_env: Option<String>,
) -> Result<Option<i64>> {
    if let Some(value) = from_env
        && !build_args.contains_key(SOURCE_DATE_EPOCH)
    {
        build_args.insert(SOURCE_DATE_EPOCH.to_owned(), value);
    }
    match build_args.get(SOURCE_DATE_EPOCH).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(value) => match value.parse::<i64>() {
            Ok(epoch) if epoch >= 0 => Ok(Some(epoch)),
            _ => Err(EngineError::invalid(format!(
                "invalid SOURCE_DATE_EPOCH: {value:?} (seconds since 1970 expected)"
            ))),
        },
    }
}

/// What `hoist build -` read from standard input, unpacked under a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdinContext {
    /// The context directory: the archive's contents, or empty.
    pub context: PathBuf,
    /// The Dockerfile when the input was one (outside the context); `None` for an archive (its own Dockerfile).
    pub dockerfile: Option<PathBuf>,
}

/// Docker's reading of `build -`: a tar archive (plain, gzip or zstd) is the context, with its Dockerfile;
/// anything else is the Dockerfile, with an empty context. Both are written under `dir` (created).
pub fn unpack_stdin_context(bytes: &[u8], dir: &Path) -> Result<StdinContext> {
    let context = dir.join("context");
    fs::create_dir_all(&context).map_err(|e| EngineError::io("create", &context, e))?;
    let mut header = Vec::new();
    if let Ok(reader) = hoist_layer::Decompressor::new(bytes) {
        let _ = reader.take(512).read_to_end(&mut header);
    }
    if header.len() >= 262 && &header[257..262] == b"ustar" {
        let reader =
            hoist_layer::Decompressor::new(bytes).map_err(|e| EngineError::io("read", dir, e))?;
        hoist_layer::apply_layer(reader, &context, &hoist_layer::ApplyOptions::new()).map_err(
            |e| EngineError::Layer {
                what: "failed to unpack the context from standard input".to_owned(),
                source: Box::new(e),
            },
        )?;
        return Ok(StdinContext {
            context,
            dockerfile: None,
        });
    }
    let dockerfile = dir.join("Dockerfile");
    fs::write(&dockerfile, bytes).map_err(|e| EngineError::io("write", &dockerfile, e))?;
    Ok(StdinContext {
        context,
        dockerfile: Some(dockerfile),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{StdinContext, read_secrets, source_date_epoch, unpack_stdin_context};

    #[test]
    fn secrets_follow_buildx() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token.txt");
        std::fs::write(&file, "from a file").unwrap();
        let env = |name: &str| (name == "API_KEY" || name == "mine").then(|| format!("{name}!"));
        let specs = [
            format!("id=a,src={}", file.display()),
            format!("src={}", file.display()),
            "id=b,env=API_KEY".to_owned(),
            "env=API_KEY".to_owned(),
            "id=mine".to_owned(),
            "type=env,id=c,env=mine".to_owned(),
        ];
        let secrets = read_secrets(&specs, &env).unwrap();
        let text = |id: &str| String::from_utf8(secrets[id].clone()).unwrap();
        assert_eq!(text("a"), "from a file");
        assert_eq!(text("token.txt"), "from a file");
        assert_eq!(text("b"), "API_KEY!");
        assert_eq!(text("API_KEY"), "API_KEY!");
        assert_eq!(text("mine"), "mine!");
        assert_eq!(text("c"), "mine!");
        let error = |spec: &str| {
            read_secrets(&[spec.to_owned()], &env)
                .unwrap_err()
                .to_string()
        };
        assert!(error("id=x").contains("environment variable x is not set"));
        assert!(error("id=x,mode=0400").contains("unexpected \"mode=0400\""));
        assert!(error("type=file").contains("no id"));
        assert!(error("id=x,src=/nonexistent/secret").contains("failed to read secret x"));
    }

    #[test]
    fn source_date_epoch_comes_from_the_build_args_then_the_environment() {
        let mut args = BTreeMap::new();
        assert_eq!(source_date_epoch(&mut args, None).unwrap(), None);
        assert_eq!(
            source_date_epoch(&mut args, Some("100".into())).unwrap(),
            Some(100)
        );
        assert_eq!(args["SOURCE_DATE_EPOCH"], "100", "passed on as a build arg");
        let mut args = BTreeMap::from([("SOURCE_DATE_EPOCH".to_owned(), "5".to_owned())]);
        assert_eq!(
            source_date_epoch(&mut args, Some("100".into())).unwrap(),
            Some(5),
            "the build argument wins"
        );
        let mut args = BTreeMap::from([("SOURCE_DATE_EPOCH".to_owned(), String::new())]);
        assert_eq!(source_date_epoch(&mut args, None).unwrap(), None);
        for bad in ["-1", "yesterday", "1.5"] {
            let mut args = BTreeMap::from([("SOURCE_DATE_EPOCH".to_owned(), bad.to_owned())]);
            assert!(source_date_epoch(&mut args, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn standard_input_is_a_context_archive_or_a_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let got = unpack_stdin_context(b"FROM scratch\n", &dir.path().join("one")).unwrap();
        assert_eq!(
            got,
            StdinContext {
                context: dir.path().join("one/context"),
                dockerfile: Some(dir.path().join("one/Dockerfile")),
            }
        );
        assert_eq!(
            std::fs::read_to_string(got.dockerfile.unwrap()).unwrap(),
            "FROM scratch\n"
        );
        assert_eq!(std::fs::read_dir(&got.context).unwrap().count(), 0);

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(13);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "Dockerfile", &b"FROM scratch\n"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let got = unpack_stdin_context(&tar, &dir.path().join("two")).unwrap();
        assert_eq!(got.dockerfile, None);
        assert_eq!(
            std::fs::read_to_string(got.context.join("Dockerfile")).unwrap(),
            "FROM scratch\n"
        );
    }
}
