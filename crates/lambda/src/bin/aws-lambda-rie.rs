//! `aws-lambda-rie [flags] [BOOTSTRAP [ARGS...]]`: hoist's drop-in for the official Lambda Runtime Interface Emulator.
//! Built static so it runs in `scratch` and distroless images (see docs/lambda.md and scripts/build-rie).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match hoist_lambda::Options::parse(
        std::env::args().skip(1),
        std::env::var("LOG_LEVEL").ok(),
    ) {
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
    let mut message = format!("aws-lambda-rie: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::FAILURE
}
