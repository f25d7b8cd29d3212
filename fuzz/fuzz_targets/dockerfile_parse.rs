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
    let printed = file.to_string();
    if let Err(error) = hoist_dockerfile::parse(&printed) {
        panic!("printed Dockerfile does not parse again: {error}\n---\n{printed}");
    }
});
