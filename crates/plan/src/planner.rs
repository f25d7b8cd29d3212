//! The conversion itself, in BuildKit's order: global ARGs, stages and their bases, the
//! target, the dependency graph (with its cycle check), the stages the target needs (with
//! ONBUILD triggers), then each needed stage's instructions in file order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hoist_dockerfile::{Span, parse_heredoc_word};
use hoist_instructions::{
    Add, Arg, Command, Copy, Instruction, MountSpec, MountType, Network, Run, Security,
    Source as InstrSource, Stage, parse_instruction, parse_stages,
};
use hoist_shell::{Env, Lexer};

use crate::error::{PlanError, PlanErrorKind};
use crate::go;
use crate::image::{BaseImageResolver, DEFAULT_PATH, HealthConfig, HistoryEntry, ImageConfig};
use crate::op::{
    CopyFrom, CopySource, Exec, ExecMount, FileCopy, InlineFile, Mkdir, Op, OpId, PlannedOp, Source,
};
use crate::request::{NamedContextKind, PlanRequest, Platform};
use crate::{BuildPlan, PlanWarning, StageBase, StagePlan, Step};

/// The build args BuildKit and docker accept without an ARG: proxies (kept out of the cache
/// key and the history) and the automatic platform args.
const PROXY_ARGS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];
const AUTOMATIC_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
    "SOURCE_DATE_EPOCH",
    "BUILDKIT_SBOM_SCAN_CONTEXT",
    "BUILDKIT_SBOM_SCAN_STAGE",
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_CONTEXT_KEEP_GIT_DIR",
    "BUILDKIT_CACHE_MOUNT_NS",
    // Consumed by the frontend selection (`syntax`).
    "BUILDKIT_SYNTAX",
];
/// Args that are never put into RUN's environment.
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// An ordered environment where setting a name replaces its entry in place (BuildKit's
/// `EnvList.AddOrReplace`).
#[derive(Debug, Clone, Default)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.0.push((key.to_owned(), value.to_owned())),
        }
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl Env for EnvList {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    Scratch,
    Image(String),
    Stage(usize),
    Named(usize),
}

/// One instruction with its `--from` dependencies resolved to states.
#[derive(Debug, Clone)]
struct Cmd {
    instruction: Instruction,
    /// COPY --from's state.
    copy_from: Option<usize>,
    /// RUN --mount from= states, per mount.
    mount_from: Vec<Option<usize>>,
    /// From an ONBUILD trigger (located at the stage's FROM).
    on_build: Option<Span>,
}

impl Cmd {
    fn span(&self) -> Span {
        self.on_build.unwrap_or_else(|| self.instruction.span())
    }
}

/// BuildKit's `dispatchState` before dispatch.
#[derive(Debug, Clone)]
struct State {
    /// Index in the file's stages; `None` for an image used only by `--from`.
    file_index: Option<usize>,
    name: Option<String>,
    display_name: String,
    base_name: String,
    base: Base,
    platform: Option<Platform>,
    commands: Vec<Cmd>,
    deps: Vec<(usize, Span)>,
    span: Span,
    onbuild_done: bool,
}

/// A stage after dispatch (or while dispatching).
#[derive(Debug, Clone)]
struct Dispatched {
    root: OpId,
    config: ImageConfig,
    history: Vec<HistoryEntry>,
    env: EnvList,
    cwd: String,
    user: String,
    build_args: Vec<(String, Option<String>)>,
    platform: Platform,
    steps: Vec<Step>,
    base: StageBase,
    ignore_cache: bool,
    cmd_set: bool,
    resolved_reference: Option<String>,
}

struct Planner<'r> {
    request: &'r PlanRequest,
    resolver: &'r dyn BaseImageResolver,
    lexer: Lexer,
    global: EnvList,
    target_platform: Platform,
    states: Vec<State>,
    by_name: HashMap<String, usize>,
    images_by_name: HashMap<String, usize>,
    ops: Vec<PlannedOp>,
    sources: HashMap<Source, OpId>,
    resolved: HashMap<usize, crate::image::BaseImage>,
    dispatched: HashMap<usize, Dispatched>,
    declared_args: BTreeSet<String>,
}

/// Plans the build of `request`, looking base images up with `resolver`.
pub fn plan(
    request: &PlanRequest,
    resolver: &dyn BaseImageResolver,
) -> Result<BuildPlan, PlanError> {
    crate::syntax::check_frontend(request)?;
    let (stages, meta_args) = parse_stages(&request.dockerfile)
        .map_err(|e| PlanError::new(PlanErrorKind::Instruction(e.clone()), Some(e.span)))?;
    if stages.is_empty() {
        return Err(PlanError::new(PlanErrorKind::NoStages, None));
    }
    let target_platform = request.effective_target_platform().clone();
    let mut planner = Planner {
        request,
        resolver,
        lexer: Lexer::new(request.dockerfile.escape),
        global: EnvList::default(),
        target_platform,
        states: Vec::new(),
        by_name: HashMap::new(),
        images_by_name: HashMap::new(),
        ops: Vec::new(),
        sources: HashMap::new(),
        resolved: HashMap::new(),
        dispatched: HashMap::new(),
        declared_args: BTreeSet::new(),
    };
    let target_name = match &request.target {
        Some(t) => t.clone(),
        None => stages
            .last()
            .and_then(|s| s.name.clone())
            .unwrap_or_default(),
    };
    planner.default_args(&target_name);
    planner.meta_args(&meta_args)?;
    planner.register_stages(&stages)?;
    let target = planner.resolve_target()?;
    planner.build_dependency_graph()?;
    if planner.states.len() == 1 {
        planner.states[0].display_name.clear();
    }
    let reachable = planner.resolve_stages(target)?;
    planner.dispatch_all(&reachable)?;
    planner.finish(target, &reachable)
}

impl Planner<'_> {
    /// BuildKit's `defaultArgs`: the automatic platform args and TARGETSTAGE, overridable
    /// with `--build-arg`.
    fn default_args(&mut self, target: &str) {
        let bp = &self.request.build_platform;
        let tp = &self.target_platform;
        let values = [
            ("BUILDPLATFORM", bp.to_string()),
            ("BUILDOS", bp.os.clone()),
            ("BUILDOSVERSION", String::new()),
            ("BUILDARCH", bp.architecture.clone()),
            ("BUILDVARIANT", bp.variant.clone()),
            ("TARGETPLATFORM", tp.to_string()),
            ("TARGETOS", tp.os.clone()),
            ("TARGETOSVERSION", String::new()),
            ("TARGETARCH", tp.architecture.clone()),
            ("TARGETVARIANT", tp.variant.clone()),
            ("TARGETSTAGE", target.to_owned()),
        ];
        for (key, value) in values {
            let value = self.request.build_args.get(key).cloned().unwrap_or(value);
            self.global.set(key, &value);
        }
    }

    /// BuildKit's `buildMetaArgs`: the ARGs before the first FROM, `--build-arg` winning
    /// over defaults, each default expanded with the args before it.
    fn meta_args(&mut self, meta_args: &[Arg]) -> Result<(), PlanError> {
        for arg in meta_args {
            for pair in &arg.args {
                self.declared_args.insert(pair.key.clone());
                let value = match (self.request.build_args.get(&pair.key), &pair.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => {
                        Some(self.expand(default, &self.global.clone(), arg.node.span)?)
                    }
                    (None, None) => None,
                };
                if let Some(value) = value {
                    self.global.set(&pair.key, &value);
                }
            }
        }
        Ok(())
    }

    fn expand(&self, word: &str, env: &EnvList, span: Span) -> Result<String, PlanError> {
        self.lexer
            .process_word(word, env)
            .map(|w| w.value)
            .map_err(|e| PlanError::new(PlanErrorKind::Expansion(e), Some(span)))
    }

    fn named_context(&self, name: &str) -> Option<usize> {
        self.request
            .named_contexts
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// A named context as a base; `docker-image://scratch` is the empty filesystem (BuildKit's
    /// `EmptyImageName`).
    fn named_base(&self, named: usize) -> Base {
        match &self.request.named_contexts[named].kind {
            NamedContextKind::Image(reference) if reference == "scratch" => Base::Scratch,
            _ => Base::Named(named),
        }
    }

    /// BuildKit's `buildDispatchStates`: bases expanded with the global args, stages named.
    fn register_stages(&mut self, stages: &[Stage]) -> Result<(), PlanError> {
        for (i, stage) in stages.iter().enumerate() {
            let span = stage.from.node.span;
            let base_name = self.expand(&stage.base.value, &self.global.clone(), span)?;
            if base_name.is_empty() {
                return Err(PlanError::new(
                    PlanErrorKind::BlankBase {
                        base: stage.base.value.clone(),
                    },
                    Some(span),
                ));
            }
            let platform = match &stage.platform {
                None => None,
                Some(word) => {
                    let text = self.expand(&word.value, &self.global.clone(), span)?;
                    if text.is_empty() {
                        return Err(PlanError::new(
                            PlanErrorKind::EmptyPlatform {
                                expression: word.value.clone(),
                            },
                            Some(span),
                        ));
                    }
                    Some(Platform::parse(&text).map_err(|reason| {
                        PlanError::new(
                            PlanErrorKind::BadPlatform {
                                expression: word.value.clone(),
                                reason,
                            },
                            Some(span),
                        )
                    })?)
                }
            };
            let base = if let Some(&b) = self.by_name.get(&base_name) {
                Base::Stage(b)
            } else if let Some(named) = stage.name.as_deref().and_then(|n| self.named_context(n)) {
                self.named_base(named)
            } else if base_name == "scratch" {
                Base::Scratch
            } else if let Some(named) = self.named_context(&base_name) {
                self.named_base(named)
            } else {
                Base::Image(base_name.clone())
            };
            let commands = stage
                .commands
                .iter()
                .map(|instruction| Cmd {
                    instruction: instruction.clone(),
                    copy_from: None,
                    mount_from: Vec::new(),
                    on_build: None,
                })
                .collect();
            let index = self.states.len();
            self.states.push(State {
                file_index: Some(i),
                name: stage.name.clone(),
                display_name: stage.name.clone().unwrap_or_else(|| format!("stage-{i}")),
                base_name,
                base,
                platform,
                commands,
                deps: Vec::new(),
                span,
                onbuild_done: false,
            });
            if let Some(name) = &stage.name {
                self.by_name.insert(name.clone(), index);
            }
        }
        Ok(())
    }

    fn resolve_target(&self) -> Result<usize, PlanError> {
        let Some(target) = &self.request.target else {
            return Ok(self.states.len() - 1);
        };
        match self.by_name.get(&target.to_lowercase()) {
            Some(&i) => Ok(i),
            None => {
                let stages: Vec<String> =
                    self.states.iter().filter_map(|s| s.name.clone()).collect();
                Err(PlanError::new(
                    PlanErrorKind::TargetNotFound {
                        target: target.clone(),
                        suggestion: go::suggest(target, &stages),
                        stages,
                    },
                    None,
                ))
            }
        }
    }

    /// The state a `--from`/`from=` value names: a stage by name (or, for COPY, by index),
    /// else an image (one state per image).
    fn state_for_from(
        &mut self,
        from: &str,
        allow_index: bool,
        span: Span,
    ) -> Result<usize, PlanError> {
        if allow_index && let Some(index) = go_atoi(from) {
            if index < 0 || index as usize >= self.states.len() {
                return Err(PlanError::new(
                    PlanErrorKind::InvalidStageIndex { index },
                    Some(span),
                ));
            }
            return Ok(index as usize);
        }
        if let Some(&i) = self.by_name.get(&from.to_lowercase()) {
            return Ok(i);
        }
        if let Some(&i) = self.images_by_name.get(from) {
            return Ok(i);
        }
        let base = match self.named_context(from) {
            Some(named) => self.named_base(named),
            None if from == "scratch" => Base::Scratch,
            None => Base::Image(from.to_owned()),
        };
        let index = self.states.len();
        self.states.push(State {
            file_index: None,
            name: None,
            display_name: String::new(),
            base_name: from.to_owned(),
            base,
            platform: None,
            commands: Vec::new(),
            deps: Vec::new(),
            span,
            onbuild_done: true,
        });
        self.images_by_name.insert(from.to_owned(), index);
        Ok(index)
    }

    /// BuildKit's `toCommand`: resolves COPY --from and RUN --mount from=.
    fn resolve_command_deps(&mut self, cmd: &mut Cmd) -> Result<Vec<(usize, Span)>, PlanError> {
        let span = cmd.span();
        let mut deps = Vec::new();
        match &cmd.instruction {
            Instruction::Copy(copy) => {
                if let Some(from) = &copy.from {
                    let plain = self
                        .lexer
                        .process_word(&from.value, &EnvList::default())
                        .map_err(|e| PlanError::new(PlanErrorKind::Expansion(e), Some(span)))?;
                    if plain.value != from.value {
                        return Err(PlanError::new(PlanErrorKind::FromVariable, Some(span)));
                    }
                    let state = self.state_for_from(&from.value, true, span)?;
                    cmd.copy_from = Some(state);
                    deps.push((state, span));
                }
            }
            Instruction::Run(run) => {
                let mut mount_from = Vec::new();
                for spec in &run.mounts {
                    let from = mount_from_value(spec)
                        .map_err(|e| PlanError::new(PlanErrorKind::Mount(e), Some(spec.span)))?;
                    match from {
                        Some(from) if !from.is_empty() => {
                            let state = self.state_for_from(&from, false, span)?;
                            mount_from.push(Some(state));
                            deps.push((state, span));
                        }
                        _ => mount_from.push(None),
                    }
                }
                cmd.mount_from = mount_from;
            }
            _ => {}
        }
        Ok(deps)
    }

    fn build_dependency_graph(&mut self) -> Result<(), PlanError> {
        let mut i = 0;
        while i < self.states.len() {
            let mut commands = std::mem::take(&mut self.states[i].commands);
            let mut deps = Vec::new();
            for cmd in &mut commands {
                deps.extend(self.resolve_command_deps(cmd)?);
            }
            self.states[i].commands = commands;
            self.states[i].deps = deps;
            i += 1;
        }
        self.check_cycles()
    }

    /// BuildKit's `validateCircularDependency`: a depth-first walk from each state in order.
    fn check_cycles(&self) -> Result<(), PlanError> {
        fn visit(
            states: &[State],
            state: usize,
            visited: &mut BTreeSet<usize>,
            path: &mut BTreeSet<usize>,
        ) -> Option<Span> {
            if !visited.insert(state) {
                return None;
            }
            path.insert(state);
            for &(dep, span) in &states[state].deps {
                if path.contains(&dep) {
                    return Some(span);
                }
                if let Some(span) = visit(states, dep, visited, path) {
                    return Some(span);
                }
            }
            path.remove(&state);
            None
        }
        let mut visited = BTreeSet::new();
        for state in 0..self.states.len() {
            let mut path = BTreeSet::new();
            if let Some(span) = visit(&self.states, state, &mut visited, &mut path) {
                return Err(PlanError::new(
                    PlanErrorKind::CircularDependency {
                        stage: self.states[state].display_name.clone(),
                    },
                    Some(span),
                ));
            }
        }
        Ok(())
    }

    fn reachable_from(&self, target: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if !seen.insert(s) {
                continue;
            }
            if let Base::Stage(b) = self.states[s].base {
                todo.push(b);
            }
            todo.extend(self.states[s].deps.iter().map(|(d, _)| *d));
        }
        seen
    }

    /// BuildKit's `resolveStages`: base images of the needed stages looked up, ONBUILD
    /// triggers inserted, again while triggers add dependencies.
    fn resolve_stages(&mut self, target: usize) -> Result<BTreeSet<usize>, PlanError> {
        loop {
            let reachable = self.reachable_from(target);
            for &s in &reachable {
                self.resolve_base(s)?;
            }
            let mut new_deps = false;
            for &s in &reachable {
                if self.states[s].onbuild_done {
                    continue;
                }
                self.states[s].onbuild_done = true;
                let mut triggers: Vec<String> = match &self.states[s].base {
                    Base::Image(_) | Base::Named(_) => self
                        .resolved
                        .get(&s)
                        .map(|img| img.config.on_build.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                if let Base::Stage(b) = self.states[s].base {
                    for cmd in &self.states[b].commands {
                        if let Instruction::Onbuild(onbuild) = &cmd.instruction
                            && cmd.on_build.is_none()
                        {
                            triggers.push(onbuild.expression.clone());
                        }
                    }
                }
                if triggers.is_empty() {
                    continue;
                }
                let span = self.states[s].span;
                let mut commands = Vec::new();
                for trigger in triggers {
                    let instruction = parse_trigger(&trigger).map_err(|message| {
                        PlanError::new(PlanErrorKind::OnbuildTrigger { message }, Some(span))
                    })?;
                    let mut cmd = Cmd {
                        instruction,
                        copy_from: None,
                        mount_from: Vec::new(),
                        on_build: Some(span),
                    };
                    let deps = self.resolve_command_deps(&mut cmd)?;
                    if !deps.is_empty() {
                        new_deps = true;
                    }
                    self.states[s].deps.extend(deps);
                    commands.push(cmd);
                }
                let rest = std::mem::take(&mut self.states[s].commands);
                commands.extend(rest);
                self.states[s].commands = commands;
            }
            if !new_deps {
                return Ok(reachable);
            }
            self.check_cycles()?;
        }
    }

    fn stage_platform(&self, s: usize) -> Platform {
        self.states[s]
            .platform
            .clone()
            .unwrap_or_else(|| self.target_platform.clone())
    }

    fn resolve_base(&mut self, s: usize) -> Result<(), PlanError> {
        if self.resolved.contains_key(&s) {
            return Ok(());
        }
        let platform = self.stage_platform(s);
        let reference = match &self.states[s].base {
            Base::Image(name) => name.clone(),
            Base::Named(n) => match &self.request.named_contexts[*n].kind {
                NamedContextKind::Image(reference) => reference.clone(),
                // The resolver reads the layout's image (its config) by this name.
                NamedContextKind::OciLayout(layout) => format!("oci-layout://{layout}"),
                _ => return Ok(()),
            },
            Base::Scratch | Base::Stage(_) => return Ok(()),
        };
        let span = self.states[s].span;
        let normalized = if reference.starts_with("oci-layout://") {
            Some(reference.clone())
        } else {
            go::normalize_reference(&reference)
        }
        .ok_or_else(|| {
            PlanError::new(
                PlanErrorKind::InvalidReference {
                    name: reference.clone(),
                },
                Some(span),
            )
        })?;
        let image = self
            .resolver
            .resolve(&normalized, &platform)
            .map_err(|message| {
                PlanError::new(
                    PlanErrorKind::ResolveImage {
                        reference: reference.clone(),
                        message,
                    },
                    Some(span),
                )
            })?;
        self.resolved.insert(s, image);
        Ok(())
    }

    fn add_op(&mut self, op: PlannedOp) -> OpId {
        let id = OpId(self.ops.len());
        self.ops.push(PlannedOp { id, ..op });
        id
    }

    fn source(&mut self, source: Source, span: Option<Span>) -> OpId {
        if let Some(&id) = self.sources.get(&source) {
            return id;
        }
        let id = self.add_op(PlannedOp {
            id: OpId(0),
            op: Op::Source(source.clone()),
            inputs: Vec::new(),
            stage: None,
            span,
            config: None,
            history: None,
            ignore_cache: false,
            on_build: false,
        });
        self.sources.insert(source, id);
        id
    }

    fn dispatch_all(&mut self, reachable: &BTreeSet<usize>) -> Result<(), PlanError> {
        for s in 0..self.states.len() {
            if reachable.contains(&s) {
                self.dispatch_stage(s)?;
            }
        }
        Ok(())
    }

    /// The starting point of a stage: its base's filesystem, config and history.
    fn init_stage(&mut self, s: usize) -> Dispatched {
        let span = Some(self.states[s].span);
        let platform = self.stage_platform(s);
        let ignore_cache = self
            .request
            .no_cache
            .applies_to(self.states[s].name.as_deref());
        let fresh =
            |root, config: ImageConfig, history, base, platform: Platform, reference| Dispatched {
                root,
                config,
                history,
                env: EnvList::default(),
                cwd: "/".to_owned(),
                user: String::new(),
                build_args: Vec::new(),
                platform,
                steps: Vec::new(),
                base,
                ignore_cache,
                cmd_set: false,
                resolved_reference: reference,
            };
        let mut d = match self.states[s].base.clone() {
            Base::Stage(b) => {
                let mut d = self.dispatched[&b].clone();
                d.config.on_build.clear();
                d.steps.clear();
                d.cmd_set = false;
                d.ignore_cache = ignore_cache;
                d.base = StageBase::Stage(self.states[b].file_index.unwrap_or(b));
                return d;
            }
            Base::Scratch => {
                let root = self.source(Source::Scratch, span);
                fresh(
                    root,
                    ImageConfig::default(),
                    Vec::new(),
                    StageBase::Scratch,
                    platform,
                    None,
                )
            }
            Base::Image(name) => {
                let image = self.resolved[&s].clone();
                let root = if image.layers == 0 {
                    self.source(Source::Scratch, span)
                } else {
                    self.source(
                        Source::Image {
                            reference: image.reference.clone(),
                            platform: platform.clone(),
                        },
                        span,
                    )
                };
                fresh(
                    root,
                    image.config,
                    image.history,
                    StageBase::Image(name),
                    platform,
                    Some(image.reference),
                )
            }
            Base::Named(n) => {
                let named = self.request.named_contexts[n].clone();
                let source = match named.kind {
                    NamedContextKind::Local => Source::Context {
                        name: named.name.clone(),
                        include: Vec::new(),
                        exclude: Vec::new(),
                    },
                    kind => Source::NamedContext {
                        name: named.name.clone(),
                        kind,
                    },
                };
                let root = self.source(source, span);
                let (config, history) = match self.resolved.get(&s) {
                    Some(image) => (image.config.clone(), image.history.clone()),
                    None => (ImageConfig::default(), Vec::new()),
                };
                fresh(
                    root,
                    config,
                    history,
                    StageBase::NamedContext(named.name),
                    platform,
                    None,
                )
            }
        };
        // The base image's ONBUILD triggers run in this stage (they were inserted before its
        // commands) and are not passed on.
        d.config.on_build.clear();
        if d.config.env_value("PATH").is_none() {
            d.config.env.push(format!("PATH={DEFAULT_PATH}"));
        }
        for entry in &d.config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            d.env.set(k, v);
        }
        if !d.config.working_dir.is_empty() {
            d.cwd =
                go::normalize_workdir("/", &d.config.working_dir).unwrap_or_else(|| "/".to_owned());
            d.config.working_dir = d.cwd.clone();
        }
        d.user = d.config.user.clone();
        d
    }

    fn dispatch_stage(&mut self, s: usize) -> Result<(), PlanError> {
        let mut d = self.init_stage(s);
        let commands = self.states[s].commands.clone();
        for cmd in &commands {
            self.dispatch(s, &mut d, cmd)?;
        }
        self.dispatched.insert(s, d);
        Ok(())
    }

    fn history(
        d: &mut Dispatched,
        created_by: String,
        layer: bool,
        buildkit_suffix: bool,
    ) -> HistoryEntry {
        let created_by = if buildkit_suffix {
            format!("{created_by} # buildkit")
        } else {
            created_by
        };
        let entry = HistoryEntry::new(created_by, !layer);
        d.history.push(entry.clone());
        entry
    }

    fn step(
        &mut self,
        s: usize,
        d: &mut Dispatched,
        cmd: &Cmd,
        op: Option<(Op, Vec<OpId>)>,
        history: Option<HistoryEntry>,
    ) {
        let span = cmd.span();
        let op_id = op.map(|(op, inputs)| {
            let id = self.add_op(PlannedOp {
                id: OpId(0),
                op,
                inputs,
                stage: self.states[s].file_index,
                span: Some(span),
                config: Some(d.config.clone()),
                history: history.clone(),
                ignore_cache: d.ignore_cache,
                on_build: cmd.on_build.is_some(),
            });
            d.root = id;
            id
        });
        d.steps.push(Step {
            keyword: cmd.instruction.keyword(),
            span,
            op: op_id,
            history,
            on_build: cmd.on_build.is_some(),
        });
    }

    fn dispatch(&mut self, s: usize, d: &mut Dispatched, cmd: &Cmd) -> Result<(), PlanError> {
        let span = cmd.span();
        let env = d.env.clone();
        let ex = |this: &Self, word: &str| this.expand(word, &env, span);
        match &cmd.instruction {
            Instruction::From(_) => {}
            Instruction::Env(instr) => {
                let mut message = String::from("ENV");
                let mut pairs = Vec::new();
                for pair in &instr.pairs {
                    pairs.push((ex(self, &pair.key.value)?, ex(self, &pair.value.value)?));
                }
                for (k, v) in pairs {
                    message.push_str(&format!(" {k}={v}"));
                    d.env.set(&k, &v);
                    d.config.set_env(&k, &v);
                }
                let h = Self::history(d, message, false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Label(instr) => {
                let mut message = String::from("LABEL");
                let mut pairs = Vec::new();
                for pair in &instr.labels {
                    pairs.push((ex(self, &pair.key.value)?, ex(self, &pair.value.value)?));
                }
                for (k, v) in pairs {
                    message.push_str(&format!(" {k}={v}"));
                    d.config.labels.insert(k, v);
                }
                let h = Self::history(d, message, false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Maintainer(instr) => {
                d.config.author = instr.maintainer.value.clone();
                let h = Self::history(
                    d,
                    format!("MAINTAINER {}", instr.maintainer.value),
                    false,
                    false,
                );
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Run(run) => self.dispatch_run(s, d, cmd, run)?,
            Instruction::Workdir(instr) => {
                let path = ex(self, &instr.path.value)?;
                let wd = go::normalize_workdir(&d.config.working_dir, &path)
                    .ok_or_else(|| PlanError::new(PlanErrorKind::EmptyWorkdir, Some(span)))?;
                d.config.working_dir = wd.clone();
                d.cwd = wd.clone();
                let layer = wd != "/";
                let h = Self::history(d, format!("WORKDIR {wd}"), layer, false);
                let op = layer.then(|| {
                    (
                        Op::Mkdir(Mkdir {
                            path: wd.clone(),
                            mode: 0o755,
                            parents: true,
                            user: d.config.user.clone(),
                        }),
                        vec![d.root],
                    )
                });
                self.step(s, d, cmd, op, Some(h));
            }
            Instruction::Add(add) => self.dispatch_add(s, d, cmd, add)?,
            Instruction::Copy(copy) => self.dispatch_copy(s, d, cmd, copy)?,
            Instruction::User(instr) => {
                let user = ex(self, &instr.user.value)?;
                d.user = user.clone();
                d.config.user = user.clone();
                let h = Self::history(d, format!("USER {user}"), false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Expose(instr) => {
                let mut ports = Vec::new();
                for port in &instr.ports {
                    let words = self
                        .lexer
                        .process_words(&port.value, &d.env)
                        .map_err(|e| PlanError::new(PlanErrorKind::Expansion(e), Some(span)))?;
                    for word in words {
                        let specs = go::parse_port_spec(&word).map_err(|message| {
                            PlanError::new(PlanErrorKind::Expose { message }, Some(span))
                        })?;
                        ports.extend(specs);
                    }
                }
                d.config.exposed_ports.extend(ports.iter().cloned());
                let h = Self::history(d, format!("EXPOSE {}", go::fmt_list(&ports)), false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Volume(instr) => {
                let mut volumes = Vec::new();
                for path in &instr.paths {
                    let v = ex(self, &path.value)?;
                    if v.is_empty() {
                        return Err(PlanError::new(PlanErrorKind::EmptyVolume, Some(span)));
                    }
                    volumes.push(v);
                }
                d.config.volumes.extend(volumes.iter().cloned());
                let h = Self::history(
                    d,
                    format!("VOLUME {}", go::fmt_list(&volumes)),
                    false,
                    false,
                );
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Stopsignal(instr) => {
                let signal = ex(self, &instr.signal.value)?;
                if !go::valid_signal(&signal) {
                    return Err(PlanError::new(
                        PlanErrorKind::InvalidSignal { signal },
                        Some(span),
                    ));
                }
                d.config.stop_signal = signal.clone();
                let h = Self::history(d, format!("STOPSIGNAL {signal}"), false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Shell(instr) => {
                let shell: Vec<String> = instr.shell.iter().map(|w| w.value.clone()).collect();
                d.config.shell = shell.clone();
                let h = Self::history(d, format!("SHELL {}", go::fmt_list(&shell)), false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Cmd(instr) => {
                let args = command_args(&d.config, &instr.command);
                d.config.cmd = Some(args.clone());
                d.config.args_escaped = true;
                d.cmd_set = true;
                let h = Self::history(
                    d,
                    format!("CMD {}", go::fmt_quoted_list(&args)),
                    false,
                    false,
                );
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Entrypoint(instr) => {
                let args = command_args(&d.config, &instr.command);
                d.config.entrypoint = Some(args.clone());
                if !d.cmd_set {
                    d.config.cmd = None;
                }
                let h = Self::history(
                    d,
                    format!("ENTRYPOINT {}", go::fmt_quoted_list(&args)),
                    false,
                    false,
                );
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Healthcheck(instr) => {
                let config = HealthConfig {
                    test: instr.test.to_config(),
                    interval: instr.interval.unwrap_or_default(),
                    timeout: instr.timeout.unwrap_or_default(),
                    start_period: instr.start_period.unwrap_or_default(),
                    start_interval: instr.start_interval.unwrap_or_default(),
                    retries: instr.retries.unwrap_or_default(),
                };
                let message = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go::fmt_list(&config.test),
                    go::fmt_duration(config.interval),
                    go::fmt_duration(config.timeout),
                    go::fmt_duration(config.start_period),
                    go::fmt_duration(config.start_interval),
                    config.retries
                );
                d.config.healthcheck = Some(config);
                let h = Self::history(d, message, false, false);
                self.step(s, d, cmd, None, Some(h));
            }
            Instruction::Arg(instr) => self.dispatch_arg(s, d, cmd, instr)?,
            Instruction::Onbuild(instr) => {
                d.config.on_build.push(instr.expression.clone());
                self.step(s, d, cmd, None, None);
            }
        }
        Ok(())
    }

    /// BuildKit's `dispatchArg`.
    fn dispatch_arg(
        &mut self,
        s: usize,
        d: &mut Dispatched,
        cmd: &Cmd,
        instr: &Arg,
    ) -> Result<(), PlanError> {
        let mut parts = Vec::new();
        for pair in &instr.args {
            self.declared_args.insert(pair.key.clone());
            let build_value = self.request.build_args.get(&pair.key);
            let mut value = pair.default.clone();
            if value.is_none()
                && build_value.is_none()
                && let Some(global) = self.global.get(&pair.key)
            {
                value = Some(global.to_owned());
            } else if let Some(v) = build_value {
                value = Some(v.clone());
            } else if let Some(default) = &pair.default {
                value = Some(self.expand(default, &d.env, cmd.span())?);
            }
            if let Some(v) = &value
                && !NON_ENV_ARGS.contains(&pair.key.as_str())
            {
                d.env.set(&pair.key, v);
            }
            parts.push(match &value {
                Some(v) => format!("{}={v}", pair.key),
                None => pair.key.clone(),
            });
            d.build_args.push((pair.key.clone(), value));
        }
        let h = Self::history(d, format!("ARG {}", parts.join(" ")), false, false);
        self.step(s, d, cmd, None, Some(h));
        Ok(())
    }

    fn dependency_root(
        &self,
        state: usize,
        from: &str,
        current: usize,
        mount: bool,
        span: Span,
    ) -> Result<OpId, PlanError> {
        match self.dispatched.get(&state) {
            Some(dep) => Ok(dep.root),
            None => {
                let stage = self.states[current].display_name.clone();
                let kind = if mount {
                    PlanErrorKind::MountFromLaterStage {
                        from: from.to_owned(),
                        stage,
                    }
                } else {
                    PlanErrorKind::CopyFromLaterStage {
                        from: from.to_owned(),
                        stage,
                    }
                };
                Err(PlanError::new(kind, Some(span)))
            }
        }
    }

    /// The source of an image used only through `--from`/`from=`, dispatched on first use.
    fn ensure_image_state(&mut self, state: usize) -> Result<(), PlanError> {
        if self.states[state].file_index.is_none() && !self.dispatched.contains_key(&state) {
            self.resolve_base(state)?;
            let d = self.init_stage(state);
            self.dispatched.insert(state, d);
        }
        Ok(())
    }

    fn dispatch_run(
        &mut self,
        s: usize,
        d: &mut Dispatched,
        cmd: &Cmd,
        run: &Run,
    ) -> Result<(), PlanError> {
        let span = cmd.span();
        let mut args = run.command.cmdline();
        let mut inline_files = Vec::new();
        if !run.heredocs.is_empty() {
            if args.len() != 1 || !run.command.is_shell_form() {
                return Err(PlanError::new(
                    PlanErrorKind::InvalidRunCommand {
                        args: go::fmt_list(&args),
                    },
                    Some(span),
                ));
            }
            if matches!(parse_heredoc_word(&args[0]), Ok(Some(_))) {
                let first = &run.heredocs[0];
                let data = first.chomped_content().into_owned();
                if data.starts_with("#!") {
                    let path = format!("/dev/pipes/{}", first.name);
                    inline_files.push(InlineFile {
                        path: path.clone(),
                        content: data,
                        mode: 0o755,
                    });
                    args = vec![path];
                } else {
                    args = vec![data];
                }
            } else {
                let mut line = args[0].clone();
                for heredoc in &run.heredocs {
                    line.push('\n');
                    line.push_str(&heredoc.content);
                    line.push_str(&heredoc.name);
                }
                args = vec![line];
            }
        }
        if run.command.is_shell_form() {
            args = with_shell(&d.config, &args);
        }
        let mut inputs = vec![d.root];
        let mut mounts = Vec::new();
        let env = d.env.clone();
        for (i, spec) in run.mounts.iter().enumerate() {
            let mut mount = spec
                .resolve(|value| {
                    self.lexer
                        .process_word(value, &env)
                        .map(|w| w.value)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| PlanError::new(PlanErrorKind::Mount(e), Some(spec.span)))?;
            let input = match cmd.mount_from.get(i).copied().flatten() {
                Some(state) => {
                    self.ensure_image_state(state)?;
                    let root = self.dependency_root(state, &mount.from, s, true, span)?;
                    inputs.push(root);
                    Some(inputs.len() - 1)
                }
                // A bind mount without `from` reads the build context.
                None if mount.kind == MountType::Bind => {
                    let source = hoist_context::clean_path(&format!("/{}", mount.source));
                    let include = match source.trim_start_matches('/') {
                        "" => Vec::new(),
                        path => vec![path.to_owned()],
                    };
                    let context = self.source(
                        Source::Context {
                            name: "context".to_owned(),
                            include,
                            exclude: Vec::new(),
                        },
                        Some(span),
                    );
                    inputs.push(context);
                    Some(inputs.len() - 1)
                }
                None => None,
            };
            // BuildKit's `dispatchSecret`: a secret without a target is a file in
            // `/run/secrets` named after its id (the source, the id, else the target's base
            // name); one exposed only as an environment variable (`env=`) gets no file.
            if mount.kind == MountType::Secret && mount.target.is_empty() {
                if mount.env.is_some() {
                    mounts.push(ExecMount { mount, input });
                    continue;
                }
                let id = if mount.source.is_empty() {
                    &mount.id
                } else {
                    &mount.source
                };
                // (hoist-instructions has refused a secret with neither id nor target.)
                let name = id.rsplit('/').find(|p| !p.is_empty()).unwrap_or(id);
                mount.target = format!("/run/secrets/{name}");
            }
            // An ssh mount without a target gets BuildKit's `/run/buildkit/ssh_agent.N` from the engine (N counts
            // the step's ssh mounts, which only the whole step knows).
            if mount.kind == MountType::Ssh && mount.target.is_empty() {
                mounts.push(ExecMount { mount, input });
                continue;
            }
            // An ssh mount without a target gets BuildKit's `/run/buildkit/ssh_agent.N` from the engine (N counts
            // the step's ssh mounts, which only the whole step knows).
            if mount.kind == MountType::Ssh && mount.target.is_empty() {
                mounts.push(ExecMount { mount, input });
                continue;
            }
            // BuildKit: a relative target is under the working directory; `/` is refused.
            mount.target = if mount.target.starts_with('/') {
                hoist_context::clean_path(&mount.target)
            } else {
                hoist_context::clean_path(&format!("{}/{}", d.cwd, mount.target))
            };
            if mount.target == "/" {
                return Err(PlanError::new(
                    PlanErrorKind::MountTarget {
                        target: mount.target,
                    },
                    Some(spec.span),
                ));
            }
            mounts.push(ExecMount { mount, input });
        }
        let proxy_env: BTreeMap<String, String> = self
            .request
            .build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.contains(&k.to_lowercase().as_str()))
            .filter(|(k, _)| !d.build_args.iter().any(|(a, _)| a == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let exec = Exec {
            args: args.clone(),
            env: d.env.to_strings(),
            cwd: d.cwd.clone(),
            user: d.user.clone(),
            mounts,
            network: run.network.map_or(Network::Default, |n| n.value),
            security: run.security.map_or(Security::Sandbox, |s| s.value),
            devices: run
                .devices
                .iter()
                .map(|dev| (dev.name.clone(), dev.required))
                .collect(),
            proxy_env,
            inline_files,
        };
        let h = Self::history(
            d,
            format!("RUN {}", run_command_string(&args, &d.build_args, &d.env)),
            true,
            true,
        );
        self.step(s, d, cmd, Some((Op::Exec(exec), inputs)), Some(h));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_common(
        &mut self,
        s: usize,
        d: &mut Dispatched,
        cmd: &Cmd,
        is_add: bool,
        sources: &[InstrSource],
        dest: &str,
        chown: Option<&str>,
        chmod: Option<&str>,
        exclude: &[hoist_instructions::Word],
        from_state: Option<(usize, &str)>,
    ) -> Result<(FileCopy, Vec<OpId>, String), PlanError> {
        let span = cmd.span();
        let env = d.env.clone();
        let ex = |this: &Self, w: &str| this.expand(w, &env, span);
        let dest_expanded = ex(self, dest)?;
        let chown = chown
            .map(|c| ex(self, c))
            .transpose()?
            .filter(|c| !c.is_empty());
        let chmod = chmod
            .map(|c| ex(self, c))
            .transpose()?
            .filter(|c| !c.is_empty());
        let exclude: Vec<String> = exclude
            .iter()
            .map(|w| ex(self, &w.value))
            .collect::<Result<_, _>>()?;
        if let Some(mode) = &chmod {
            check_chmod(mode).map_err(|kind| PlanError::new(kind, Some(span)))?;
        }
        let mut paths = Vec::new();
        let mut heredocs = Vec::new();
        for source in sources {
            match source {
                InstrSource::Path(word) => paths.push(ex(self, &word.value)?),
                InstrSource::Heredoc(h) => {
                    // BuildKit expands heredoc bodies with a fresh lexer: `\` escapes whatever
                    // the file's escape character, and quotes are plain text.
                    let content = if h.expand {
                        Lexer::new('\\')
                            .with_skip_process_quotes(true)
                            .process_word(&h.content, &env)
                            .map(|w| w.value)
                            .map_err(|e| PlanError::new(PlanErrorKind::Expansion(e), Some(span)))?
                    } else {
                        h.content.clone()
                    };
                    heredocs.push((h.name.clone(), content));
                }
            }
        }
        let mut inputs = vec![d.root];
        let (from, from_input) = match from_state {
            Some((state, from_text)) => {
                self.ensure_image_state(state)?;
                let root = self.dependency_root(state, from_text, s, false, span)?;
                inputs.push(root);
                let from = match (&self.states[state].file_index, &self.states[state].base) {
                    (Some(i), _) => CopyFrom::Stage(*i),
                    (None, Base::Named(n)) => {
                        CopyFrom::NamedContext(self.request.named_contexts[*n].name.clone())
                    }
                    (None, _) => CopyFrom::Image(
                        self.dispatched
                            .get(&state)
                            .and_then(|dep| dep.resolved_reference.clone())
                            .unwrap_or_else(|| self.states[state].base_name.clone()),
                    ),
                };
                (from, Some(1))
            }
            None => (CopyFrom::Context("context".to_owned()), None),
        };
        let mut message = String::from(if is_add { "ADD" } else { "COPY" });
        let mut copy_sources = Vec::new();
        let mut context_paths = Vec::new();
        for path in &paths {
            message.push(' ');
            message.push_str(path);
            let git = is_git_source(path);
            let http = !git && (path.starts_with("http://") || path.starts_with("https://"));
            if git || http {
                if !is_add {
                    return Err(PlanError::new(
                        if git {
                            PlanErrorKind::CopyGit
                        } else {
                            PlanErrorKind::CopyUrl
                        },
                        Some(span),
                    ));
                }
                copy_sources.push(CopySource::Remote {
                    url: path.clone(),
                    input: usize::MAX,
                });
                continue;
            }
            let plain = hoist_context::clean_path(&format!("/{path}"));
            if from_input.is_none() {
                context_paths.push(plain.trim_start_matches('/').to_owned());
            }
            // `COPY --parents a/./b/c`: the `/./` pivot says where the kept parents start.
            let normalized = match path.split_once("/./") {
                Some((parent, rest)) => {
                    let parent = hoist_context::clean_path(&format!("/{parent}"));
                    let rest = hoist_context::clean_path(&format!("/{rest}"));
                    format!("{}/.{rest}", parent.trim_end_matches('/'))
                }
                None => plain,
            };
            copy_sources.push(CopySource::Path {
                path: normalized,
                input: from_input.unwrap_or(usize::MAX),
            });
        }
        for (name, content) in heredocs {
            message.push_str(&format!(" <<{name}"));
            copy_sources.push(CopySource::Heredoc(InlineFile {
                path: name,
                content,
                mode: 0o644,
            }));
        }
        if from_input.is_none()
            && copy_sources
                .iter()
                .any(|c| matches!(c, CopySource::Path { .. }))
        {
            // `COPY . /app` uses the whole context: no include filter at all.
            let mut include = context_paths;
            if include.iter().any(String::is_empty) {
                include.clear();
            } else {
                include.sort();
                include.dedup();
            }
            let context = self.source(
                Source::Context {
                    name: "context".to_owned(),
                    include,
                    exclude: exclude.clone(),
                },
                Some(span),
            );
            inputs.push(context);
            let index = inputs.len() - 1;
            for c in &mut copy_sources {
                if let CopySource::Path { input, .. } = c {
                    *input = index;
                }
            }
        }
        let mut flags = String::new();
        if let Some(c) = &chown {
            flags.push_str(&format!(" --chown={c}"));
        }
        if let Some(c) = &chmod {
            flags.push_str(&format!(" --chmod={c}"));
        }
        let head_len = if is_add { 3 } else { 4 };
        message.insert_str(head_len, &flags);
        message.push(' ');
        message.push_str(&dest_expanded);
        let copy = FileCopy {
            from,
            sources: copy_sources,
            dest: go::path_relative_to(&d.cwd, &dest_expanded),
            chown,
            chmod,
            link: false,
            parents: false,
            exclude,
            unpack: None,
            checksum: None,
            keep_git_dir: false,
        };
        Ok((copy, inputs, message))
    }

    fn dispatch_copy(
        &mut self,
        s: usize,
        d: &mut Dispatched,
        cmd: &Cmd,
        copy: &Copy,
    ) -> Result<(), PlanError> {
        let from = cmd
            .copy_from
            .map(|state| (state, copy.from.as_ref().map_or("", |w| w.value.as_str())));
        let (mut op, inputs, mut message) = self.copy_common(
            s,
            d,
            cmd,
            false,
            &copy.sources,
            &copy.dest.value,
            copy.chown.as_ref().map(|w| w.value.as_str()),
            copy.chmod.as_ref().map(|w| w.value.as_str()),
            &copy.exclude,
            from,
        )?;
        op.link = copy.link;
        op.parents = copy.parents;
        if copy.parents {
            message.insert_str(4, " --parents");
        }
        let h = Self::history(d, message, true, true);
        self.step(s, d, cmd, Some((Op::Copy(op), inputs)), Some(h));
        Ok(())
    }

    fn dispatch_add(
        &mut self,
        s: usize,
        d: &mut Dispatched,
        cmd: &Cmd,
        add: &Add,
    ) -> Result<(), PlanError> {
        let span = cmd.span();
        let (mut op, mut inputs, message) = self.copy_common(
            s,
            d,
            cmd,
            true,
            &add.sources,
            &add.dest.value,
            add.chown.as_ref().map(|w| w.value.as_str()),
            add.chmod.as_ref().map(|w| w.value.as_str()),
            &add.exclude,
            None,
        )?;
        let checksum = add
            .checksum
            .as_ref()
            .map(|w| self.expand(&w.value, &d.env, span))
            .transpose()?
            .filter(|c| !c.is_empty());
        if checksum.is_some() {
            let paths = hoist_instructions::source_paths(&add.sources);
            if paths.len() != 1 {
                return Err(PlanError::new(
                    PlanErrorKind::ChecksumMultipleSources,
                    Some(span),
                ));
            }
            if !op
                .sources
                .iter()
                .any(|c| matches!(c, CopySource::Remote { .. }))
            {
                return Err(PlanError::new(
                    PlanErrorKind::ChecksumLocalSource,
                    Some(span),
                ));
            }
        }
        for source in &mut op.sources {
            if let CopySource::Remote { url, input } = source {
                let remote = if is_git_source(url) {
                    Source::Git {
                        url: url.clone(),
                        keep_git_dir: add.keep_git_dir,
                        checksum: checksum.clone(),
                    }
                } else {
                    Source::Http {
                        url: url.clone(),
                        checksum: checksum.clone(),
                        filename: go::url_file_name(url),
                    }
                };
                inputs.push(self.source(remote, Some(span)));
                *input = inputs.len() - 1;
            }
        }
        op.link = add.link;
        op.keep_git_dir = add.keep_git_dir;
        op.checksum = checksum;
        op.unpack = add.unpack;
        let h = Self::history(d, message, true, true);
        self.step(s, d, cmd, Some((Op::Add(op), inputs)), Some(h));
        Ok(())
    }

    fn finish(
        mut self,
        target: usize,
        reachable: &BTreeSet<usize>,
    ) -> Result<BuildPlan, PlanError> {
        let mut stages = Vec::new();
        let mut target_position = 0;
        for s in 0..self.states.len() {
            let Some(file_index) = self.states[s].file_index else {
                continue;
            };
            if !reachable.contains(&s) {
                continue;
            }
            let Some(mut d) = self.dispatched.remove(&s) else {
                continue;
            };
            if s == target {
                target_position = stages.len();
                for (k, v) in &self.request.labels {
                    d.config.labels.insert(k.clone(), v.clone());
                }
            }
            let state = &self.states[s];
            stages.push(StagePlan {
                index: file_index,
                name: state.name.clone(),
                base: d.base,
                platform: d.platform,
                root: d.root,
                config: d.config,
                history: d.history,
                steps: d.steps,
                span: state.span,
                ignore_cache: d.ignore_cache,
            });
        }
        let unused: Vec<String> = self
            .request
            .build_args
            .keys()
            .filter(|k| !self.declared_args.contains(*k))
            .filter(|k| {
                !PROXY_ARGS.contains(&k.to_lowercase().as_str())
                    && !AUTOMATIC_ARGS.contains(&k.as_str())
            })
            .cloned()
            .collect();
        let mut warnings = Vec::new();
        if !unused.is_empty() {
            warnings.push(PlanWarning {
                message: format!(
                    "[Warning] One or more build-args {} were not consumed",
                    go::fmt_list(&unused)
                ),
                unused_build_args: unused,
            });
        }
        let target_platform = self.request.target_platform.clone();
        let target_stage = &mut stages[target_position];
        if let Some(p) = target_platform {
            target_stage.platform = p;
        }
        Ok(BuildPlan {
            stages,
            target: target_position,
            ops: std::mem::take(&mut self.ops),
            warnings,
        })
    }
}

/// The `from=` of a mount spec, unexpanded (it may not hold variables).
fn mount_from_value(spec: &MountSpec) -> Result<Option<String>, hoist_instructions::MountError> {
    Ok(spec
        .fields()?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "from")
        .and_then(|(_, v)| v))
}

/// Go's `strconv.Atoi` on what looks like a decimal integer.
fn go_atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An ONBUILD trigger's text as an instruction (BuildKit parses it as a one-line file).
fn parse_trigger(trigger: &str) -> Result<Instruction, String> {
    let file = hoist_dockerfile::parse(trigger).map_err(|e| e.to_string())?;
    if file.instructions.len() != 1 {
        return Err("onbuild trigger should be a single expression".to_owned());
    }
    parse_instruction(&file.instructions[0]).map_err(|e| e.buildkit_message())
}

/// BuildKit's `withShell`: the image's SHELL (or `/bin/sh -c`) and the command as one string.
fn with_shell(config: &ImageConfig, args: &[String]) -> Vec<String> {
    let mut shell = if config.shell.is_empty() {
        vec!["/bin/sh".to_owned(), "-c".to_owned()]
    } else {
        config.shell.clone()
    };
    shell.push(args.join(" "));
    shell
}

/// CMD/ENTRYPOINT arguments: exec form as is, shell form through the shell.
fn command_args(config: &ImageConfig, command: &Command) -> Vec<String> {
    let args = command.cmdline();
    if command.is_shell_form() {
        with_shell(config, &args)
    } else {
        args
    }
}

/// BuildKit's `runCommandString`: `|N K=V ... ` before the command when the stage has ARGs.
fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    env: &EnvList,
) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (key, value) in build_args {
        let v = env
            .get(key)
            .map(str::to_owned)
            .unwrap_or_else(|| value.clone().unwrap_or_default());
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => entries.push((key.clone(), v)),
        }
    }
    let mut parts = Vec::new();
    if !entries.is_empty() {
        parts.push(format!("|{}", entries.len()));
        parts.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// Whether an ADD/COPY source is a Git repository (BuildKit's `dfgitutil.ParseGitRef` for
/// the common forms).
fn is_git_source(src: &str) -> bool {
    if src.starts_with("git@") || src.starts_with("git://") || src.starts_with("ssh://") {
        return true;
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        let without_fragment = src.split('#').next().unwrap_or(src);
        return without_fragment.ends_with(".git");
    }
    false
}

/// BuildKit's `--chmod` check: octal up to 07777, or a symbolic mode (`u+x,g-w`).
fn check_chmod(mode: &str) -> Result<(), PlanErrorKind> {
    let bad = || PlanErrorKind::Chmod {
        value: mode.to_owned(),
    };
    if mode.bytes().all(|b| b.is_ascii_digit()) {
        let value = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
        return if value > 0o7777 { Err(bad()) } else { Ok(()) };
    }
    let symbolic = mode.split(',').all(|clause| {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        !rest.is_empty()
            && rest.starts_with(['+', '-', '='])
            && rest.chars().all(|c| "+-=rwxXstugo".contains(c))
    });
    if symbolic { Ok(()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_command_strings_carry_the_args() {
        let mut env = EnvList::default();
        env.set("A", "1");
        let args = vec!["/bin/sh".to_owned(), "-c".to_owned(), "echo hi".to_owned()];
        assert_eq!(run_command_string(&args, &[], &env), "/bin/sh -c echo hi");
        let build_args = vec![
            ("A".to_owned(), Some("0".to_owned())),
            ("B".to_owned(), None),
        ];
        assert_eq!(
            run_command_string(&args, &build_args, &env),
            "|2 A=1 B= /bin/sh -c echo hi"
        );
    }

    #[test]
    fn chmod_values() {
        assert!(check_chmod("755").is_ok());
        assert!(check_chmod("u+x,g-w").is_ok());
        assert!(check_chmod("17777").is_err());
        assert!(check_chmod("8").is_err());
        assert!(check_chmod("bogus").is_err());
        assert!(
            is_git_source("https://github.com/o/r.git#main")
                && !is_git_source("https://x/y.tar.gz")
        );
        assert_eq!(go_atoi("0"), Some(0));
        assert_eq!(go_atoi("-1"), Some(-1));
        assert_eq!(go_atoi("a1"), None);
    }
}
