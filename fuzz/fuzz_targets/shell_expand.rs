//! Arbitrary words through BuildKit-style shell expansion with a small environment, under
//! both escape characters and every lexer option: errors are fine, panics and hangs are not.
#![no_main]

use hoist_shell::Lexer;
use libfuzzer_sys::fuzz_target;

const ENV: [&str; 6] = [
    "A=a",
    "EMPTY=",
    "PATH=/usr/local/bin:/usr/bin",
    "SPACES=a  b\tc",
    "GLOB=*.[ch]",
    "NESTED=${A}",
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, word)) = data.split_first() else {
        return;
    };
    let Ok(word) = std::str::from_utf8(word) else {
        return;
    };
    let escape = if flags & 1 == 0 { '\\' } else { '`' };
    let lexer = Lexer::new(escape)
        .with_raw_quotes(flags & 2 != 0)
        .with_raw_escapes(flags & 4 != 0)
        .with_skip_process_quotes(flags & 8 != 0)
        .with_skip_unset_env(flags & 16 != 0);
    if let Ok(processed) = lexer.process_word(word, &ENV[..]) {
        for name in processed.matched.iter().chain(processed.unmatched.iter()) {
            assert!(word.contains(name), "reported name {name:?} is not in the word");
        }
    }
    let _ = lexer.process_words(word, &ENV[..]);
});
