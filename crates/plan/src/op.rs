//! The nodes of the plan: sources, commands, file copies, directories.
//!
//! Every op lists its inputs as [`OpId`]s (edges of the DAG). [`Op::cache_key_material`]
//! gives the bytes a cache key is made of: every field that changes the result, in a fixed
//! order, each length-prefixed; nothing that does not (spans, stage names, proxy settings,
//! the ignore-cache switch). The engine's key for an op is a hash over this material and
//! the keys of its inputs, in input order.

use std::collections::BTreeMap;

use hoist_dockerfile::Span;
use hoist_instructions::{Mount, Network, Security};

use crate::image::{HistoryEntry, ImageConfig};
use crate::request::{NamedContextKind, Platform};

/// The position of an op in [`BuildPlan::ops`](crate::BuildPlan::ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub usize);

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOp {
    /// Its id (its index in the plan's ops).
    pub id: OpId,
    /// What it does.
    pub op: Op,
    /// The ops whose results it reads, in the order the op refers to them (an exec's root
    /// filesystem first, then its mount sources; a copy's destination first, then its
    /// sources). Every input comes earlier in the plan.
    pub inputs: Vec<OpId>,
    /// The stage (index into the file's stages) whose instruction made it; `None` for a
    /// shared source.
    pub stage: Option<usize>,
    /// The instruction (or FROM) it comes from.
    pub span: Option<Span>,
    /// The stage's image config after the op.
    pub config: Option<ImageConfig>,
    /// The history entry of its instruction.
    pub history: Option<HistoryEntry>,
    /// `--no-cache`/`--no-cache-filter` applies: run it even on a cache hit.
    pub ignore_cache: bool,
    /// The instruction came from an ONBUILD trigger.
    pub on_build: bool,
}

/// What an op does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A filesystem that comes from outside the build.
    Source(Source),
    /// `RUN`: a command in a container.
    Exec(Exec),
    /// `COPY`.
    Copy(FileCopy),
    /// `ADD`.
    Add(FileCopy),
    /// `WORKDIR`: create the directory.
    Mkdir(Mkdir),
}

/// Filesystems from outside the build.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// An image, pulled for a platform.
    Image {
        /// The normalized (maybe pinned) reference.
        reference: String,
        /// The platform.
        platform: Platform,
    },
    /// The empty filesystem.
    Scratch,
    /// Files of a build context, filtered.
    Context {
        /// `context` for the main context, or the `--build-context` name.
        name: String,
        /// The paths (or patterns) used, relative to the context root, sorted; empty is
        /// everything.
        include: Vec<String>,
        /// `--exclude` patterns.
        exclude: Vec<String>,
    },
    /// A `--build-context` that is not a local directory.
    NamedContext {
        /// The name.
        name: String,
        /// What it is.
        kind: NamedContextKind,
    },
    /// An `ADD https://...` download.
    Http {
        /// The URL.
        url: String,
        /// `--checksum`.
        checksum: Option<String>,
        /// The file name it gets (the URL path's last element, or `__unnamed__`).
        filename: String,
    },
    /// An `ADD git...` checkout.
    Git {
        /// The repository URL with its `#ref`.
        url: String,
        /// `--keep-git-dir`.
        keep_git_dir: bool,
        /// `--checksum`.
        checksum: Option<String>,
    },
}

/// A RUN command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// argv, with the shell prepended for the shell form.
    pub args: Vec<String>,
    /// The environment (`NAME=value`): the image's ENV plus the stage's ARG values.
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// The user (empty: root).
    pub user: String,
    /// `--mount`s, resolved.
    pub mounts: Vec<ExecMount>,
    /// `--network`.
    pub network: Network,
    /// `--security`.
    pub security: Security,
    /// `--device` names and whether each is required.
    pub devices: Vec<(String, bool)>,
    /// Proxy settings from undeclared `--build-arg HTTP_PROXY=...` and friends: in the
    /// environment at run time, never in the cache key or the history.
    pub proxy_env: BTreeMap<String, String>,
    /// Files to provide read-only (a `RUN <<EOF` script that starts with `#!` is run from
    /// `/dev/pipes/<name>`).
    pub inline_files: Vec<InlineFile>,
}

/// A `RUN --mount`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecMount {
    /// The parsed mount; its target is absolute (a relative one is joined to the working
    /// directory).
    pub mount: Mount,
    /// The index in the op's `inputs` of what it mounts: what `from=` names, or the build
    /// context for a bind mount without `from`; `None` for the other types without `from`.
    pub input: Option<usize>,
}

/// A file the planner makes from Dockerfile text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// Where it appears.
    pub path: String,
    /// Its contents.
    pub content: String,
    /// Its mode.
    pub mode: u32,
}

/// Where a COPY takes its files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFrom {
    /// The build context (or a named local context).
    Context(String),
    /// A stage (index into the file's stages).
    Stage(usize),
    /// An image.
    Image(String),
    /// A `--build-context` that is not local.
    NamedContext(String),
}

/// One source of a COPY/ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path (maybe a wildcard pattern) in the source filesystem (`input`), normalized to
    /// start with `/`. A `/./` pivot (`COPY --parents src/./pkg/a`) is kept: the parents
    /// after it are recreated under the destination.
    Path {
        /// The path.
        path: String,
        /// The index in the op's inputs.
        input: usize,
    },
    /// A URL or Git source of ADD: its own source op.
    Remote {
        /// The URL as written.
        url: String,
        /// The index in the op's inputs.
        input: usize,
    },
    /// An inline file from a heredoc (`COPY <<EOF /dest`).
    Heredoc(InlineFile),
}

/// A COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Where the files come from.
    pub from: CopyFrom,
    /// The sources, expanded.
    pub sources: Vec<CopySource>,
    /// The destination, absolute (relative ones joined to the working directory); a trailing
    /// `/` is kept (it means "into this directory").
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude`.
    pub exclude: Vec<String>,
    /// ADD `--unpack[=bool]` as given. `None` is BuildKit's default: ADD unpacks local
    /// archives and leaves downloads as they are; COPY never unpacks.
    pub unpack: Option<bool>,
    /// ADD `--checksum`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
}

/// WORKDIR's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkdir {
    /// The absolute path.
    pub path: String,
    /// The mode (0o755).
    pub mode: u32,
    /// Create parents too (always, as BuildKit does).
    pub parents: bool,
    /// The owner (the stage's USER, empty for root).
    pub user: String,
}

impl Op {
    /// The bytes a cache key is made of (see the module docs): a canonical, length-prefixed
    /// encoding of every field that affects the result. Spans, stage names, proxy settings
    /// and the ignore-cache flag are left out; environment entries are sorted.
    pub fn cache_key_material(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        match self {
            Op::Source(source) => {
                e.str("source");
                match source {
                    Source::Image {
                        reference,
                        platform,
                    } => {
                        e.str("image").str(reference).str(&platform.to_string());
                    }
                    Source::Scratch => {
                        e.str("scratch");
                    }
                    Source::Context {
                        name,
                        include,
                        exclude,
                    } => {
                        e.str("context").str(name).list(include).list(exclude);
                    }
                    Source::NamedContext { name, kind } => {
                        e.str("named-context").str(name).str(&format!("{kind:?}"));
                    }
                    Source::Http {
                        url,
                        checksum,
                        filename,
                    } => {
                        e.str("http")
                            .str(url)
                            .opt(checksum.as_deref())
                            .str(filename);
                    }
                    Source::Git {
                        url,
                        keep_git_dir,
                        checksum,
                    } => {
                        e.str("git")
                            .str(url)
                            .flag(*keep_git_dir)
                            .opt(checksum.as_deref());
                    }
                }
            }
            Op::Exec(exec) => {
                let mut env = exec.env.clone();
                env.sort();
                e.str("exec")
                    .list(&exec.args)
                    .list(&env)
                    .str(&exec.cwd)
                    .str(&exec.user);
                e.str(exec.network.as_str()).str(exec.security.as_str());
                e.num(exec.devices.len() as u64);
                for (name, required) in &exec.devices {
                    e.str(name).flag(*required);
                }
                e.num(exec.mounts.len() as u64);
                for m in &exec.mounts {
                    mount_material(&mut e, m);
                }
                e.num(exec.inline_files.len() as u64);
                for f in &exec.inline_files {
                    e.str(&f.path).str(&f.content).num(u64::from(f.mode));
                }
            }
            Op::Copy(copy) | Op::Add(copy) => {
                e.str(if matches!(self, Op::Add(_)) {
                    "add"
                } else {
                    "copy"
                });
                e.num(copy.sources.len() as u64);
                for s in &copy.sources {
                    match s {
                        CopySource::Path { path, input } => {
                            e.str("path").str(path).num(*input as u64);
                        }
                        CopySource::Remote { url, input } => {
                            e.str("remote").str(url).num(*input as u64);
                        }
                        CopySource::Heredoc(f) => {
                            e.str("inline")
                                .str(&f.path)
                                .str(&f.content)
                                .num(u64::from(f.mode));
                        }
                    }
                }
                e.str(&copy.dest)
                    .opt(copy.chown.as_deref())
                    .opt(copy.chmod.as_deref());
                e.flag(copy.link).flag(copy.parents).list(&copy.exclude);
                match copy.unpack {
                    Some(unpack) => e.num(1).flag(unpack),
                    None => e.num(0),
                };
                e.opt(copy.checksum.as_deref()).flag(copy.keep_git_dir);
            }
            Op::Mkdir(mkdir) => {
                e.str("mkdir")
                    .str(&mkdir.path)
                    .num(u64::from(mkdir.mode))
                    .flag(mkdir.parents)
                    .str(&mkdir.user);
            }
        }
        e.bytes
    }
}

fn mount_material(e: &mut Encoder, m: &ExecMount) {
    let mount = &m.mount;
    e.str(mount.kind.as_str())
        .str(&mount.target)
        .str(&mount.source)
        .flag(mount.read_only);
    match m.input {
        Some(i) => e.num(1).num(i as u64),
        None => e.num(0),
    };
    // `from` is covered by the input edge; a cache id and its sharing decide which cache
    // directory is used, so they count.
    e.str(&mount.id)
        .str(mount.sharing.map_or("", |s| s.as_str()));
    e.num(mount.size_limit as u64)
        .flag(mount.required)
        .opt(mount.env.as_deref());
    for v in [mount.mode, mount.uid, mount.gid] {
        match v {
            Some(v) => e.num(1).num(u64::from(v)),
            None => e.num(0),
        };
    }
}

/// A length-prefixed encoder: every field is its length (8 bytes, little-endian) then its
/// bytes, so no two field sequences encode the same.
#[derive(Default)]
struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes
            .extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }
    fn num(&mut self, n: u64) -> &mut Self {
        self.bytes.extend_from_slice(&8u64.to_le_bytes());
        self.bytes.extend_from_slice(&n.to_le_bytes());
        self
    }
    fn flag(&mut self, b: bool) -> &mut Self {
        self.num(u64::from(b))
    }
    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.num(1).str(s),
            None => self.num(0),
        }
    }
    fn list(&mut self, items: &[String]) -> &mut Self {
        self.num(items.len() as u64);
        for item in items {
            self.str(item);
        }
        self
    }
}
