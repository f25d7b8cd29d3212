//! Shell-word expansion (`hoist-shell`): a typical `RUN` line with a handful of variables,
//! expanded as one word (`process_word`, what most instructions use) and split into words
//! (`process_words`, what `EXPOSE` uses), plus a line without any `$` as the floor.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_shell::Lexer;

/// An image-config-like environment: `name=value` entries, later ones winning.
const ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "APP=hoist",
    "VERSION=1.4.2",
    "TARGETOS=linux",
    "TARGETARCH=amd64",
    "TARGETVARIANT=",
    "PREFIX=/opt",
    "CURL_VERSION=8.5.0-2",
];

const RUN_LINE: &str = "apt-get update && apt-get install -y --no-install-recommends \
curl=${CURL_VERSION} ca-certificates && curl -fsSL \
\"https://example.com/${APP}/v${VERSION}/${APP}-${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-$TARGETVARIANT}.tar.gz\" \
| tar -xz -C $PREFIX/bin && echo \"installed ${APP:-unknown} into ${PREFIX%/}/bin for $HOME\"";

const PLAIN_LINE: &str = "apt-get update && apt-get install -y --no-install-recommends \
curl ca-certificates && rm -rf /var/lib/apt/lists/*";

fn shell(c: &mut Criterion) {
    let lexer = Lexer::new('\\');
    // Measure the successful path: the line must expand, as described in docs/benchmarks.md.
    let word = lexer
        .process_word(RUN_LINE, ENV)
        .expect("the benchmark line expands");
    assert!(word.value.contains("hoist-linux-amd64.tar.gz") && word.value.contains("/opt/bin"));
    let words = lexer
        .process_words(RUN_LINE, ENV)
        .expect("the benchmark line splits");
    assert_eq!(words.len(), 21);
    let mut group = c.benchmark_group("shell");
    group.throughput(Throughput::Bytes(RUN_LINE.len() as u64));
    group.bench_function("process_word_run_line", |b| {
        b.iter(|| lexer.process_word(black_box(RUN_LINE), black_box(ENV)))
    });
    group.bench_function("process_words_run_line", |b| {
        b.iter(|| lexer.process_words(black_box(RUN_LINE), black_box(ENV)))
    });
    group.throughput(Throughput::Bytes(PLAIN_LINE.len() as u64));
    group.bench_function("process_word_plain_line", |b| {
        b.iter(|| lexer.process_word(black_box(PLAIN_LINE), black_box(ENV)))
    });
    group.finish();
}

criterion_group!(benches, shell);
criterion_main!(benches);
