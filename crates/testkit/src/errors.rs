//! Errors as tests print and match them.

/// `error` and each of its sources, joined by `": "`: what a test asserts on when it checks that an error names the
/// file, URL or status that caused it, wherever in the chain that is.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
