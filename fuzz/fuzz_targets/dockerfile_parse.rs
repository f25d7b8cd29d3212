//! Arbitrary bytes through the Dockerfile parser and the typed instruction layer: errors are
//! fine, panics and hangs are not. A file that parses must also print back to text that
//! parses again (the printer's promise).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = hoist_dockerfile::parse_bytes(data) else {
        return;
    };
    let _ = file.dump();
    for node in &file.instructions {
        let _ = hoist_instructions::parse_instruction(node);
    }
    let _ = hoist_instructions::parse_stages(&file);
    // The printer's one documented exception (crates/dockerfile/src/print.rs): an instruction
    // line ending in the escape character (the source had whitespace after it) would print as
    // a line continuation.
    if file.instructions.iter().any(|node| {
        node.to_string()
            .lines()
            .next()
            .is_some_and(|line| line.ends_with(file.escape))
    }) {
        return;
    }
    let printed = file.to_string();
    if let Err(error) = hoist_dockerfile::parse(&printed) {
        panic!("printed Dockerfile does not parse again: {error}\n---\n{printed}");
    }
});
