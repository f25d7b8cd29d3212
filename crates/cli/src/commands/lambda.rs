//! `hoist lambda [FLAGS] BOOTSTRAP [ARGS...]`: the AWS Lambda Runtime Interface Emulator on the host, with the
//! official `aws-lambda-rie` command line (the same library as the `aws-lambda-rie` binary hoist ships in images).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::images::error_chain;

/// Run a Lambda function locally behind the Runtime Interface Emulator.
#[derive(Debug, Args)]
pub(crate) struct LambdaArgs {
    /// Emulator flags, then the bootstrap command and its arguments.
    ///
    /// Flags, accepted anywhere (even after BOOTSTRAP), as with aws-lambda-rie:
    ///   --runtime-interface-emulator-address HOST:PORT   invoke endpoint (default 0.0.0.0:8080)
    ///   --runtime-api-address HOST:PORT                  Runtime API, AWS_LAMBDA_RUNTIME_API (default 127.0.0.1:9001)
    ///   --log-level LEVEL                                panic..trace (default $LOG_LEVEL or info)
    ///
    /// Invoke: curl -d '{}' localhost:8080/2015-03-31/functions/function/invocations
    /// AWS_LAMBDA_FUNCTION_TIMEOUT sets the timeout (seconds); AWS_LAMBDA_MAX_CONCURRENCY=N runs N processes.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FLAGS|BOOTSTRAP|ARGS"
    )]
    #[arg(verbatim_doc_comment)]
    args: Vec<String>,
}

pub(crate) fn run(args: &LambdaArgs) -> ExitCode {
    let options =
        match hoist_lambda::Options::parse(args.args.clone(), std::env::var("LOG_LEVEL").ok()) {
            Ok(options) => options,
            Err(e) => return fail(&e),
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(hoist_lambda::run(options, hoist_lambda::Output::stdio())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "hoist lambda: {}", error_chain(error));
    ExitCode::FAILURE
}
