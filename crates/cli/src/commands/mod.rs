//! One module per subcommand; each turns its clap arguments into a library call and renders the result.

use std::process::ExitCode;

pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod images;
pub(crate) mod import;
pub(crate) mod inspect;
pub(crate) mod lambda;
pub(crate) mod lint;
pub(crate) mod load;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod logs;
pub(crate) mod prune;
pub(crate) mod ps;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod rm;
pub(crate) mod rmi;
pub(crate) mod run;
pub(crate) mod save;
pub(crate) mod sizes;
pub(crate) mod stop;
pub(crate) mod supervise;
pub(crate) mod tag;

use crate::{Cli, Command};

/// Runs the chosen subcommand and maps its outcome to the process exit code.
pub(crate) fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Images(args) => images::run(cli.root.as_deref(), &args),
        Command::Tag(args) => tag::run(cli.root.as_deref(), &args),
        Command::Rmi(args) => rmi::run(cli.root.as_deref(), &args),
        Command::Inspect(args) => inspect::run(cli.root.as_deref(), &args),
        Command::Prune(args) => prune::run(cli.root.as_deref(), &args),
        Command::Check(args) => check::run(cli.root.as_deref(), &args),
        Command::Import(args) => import::run(cli.root.as_deref(), &args),
        Command::Save(args) => save::run(cli.root.as_deref(), &args),
        Command::Load(args) => load::run(cli.root.as_deref(), &args),
        Command::Lint(args) => lint::run(cli.root.as_deref(), &args),
        Command::Build(args) => build::run(cli.root.as_deref(), &args),
        Command::Run(args) => run::run(cli.root.as_deref(), &args),
        Command::Ps(args) => ps::run(cli.root.as_deref(), &args),
        Command::Stop(args) => stop::run(cli.root.as_deref(), &args),
        Command::Logs(args) => logs::run(cli.root.as_deref(), &args),
        Command::Rm(args) => rm::run(cli.root.as_deref(), &args),
        Command::Supervise(args) => supervise::run(cli.root.as_deref(), &args),
        Command::Pull(args) => pull::run(cli.root.as_deref(), &args),
        Command::Push(args) => push::run(cli.root.as_deref(), &args),
        Command::Login(args) => login::run(cli.root.as_deref(), &args),
        Command::Logout(args) => logout::run(cli.root.as_deref(), &args),
        Command::Lambda(args) => lambda::run(&args),
        Command::Sizes(args) => sizes::run(cli.root.as_deref(), &args),
    }
}
