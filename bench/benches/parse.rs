//! Dockerfile parsing (`hoist-dockerfile`): a typical 40-line multi-stage Dockerfile (the
//! no-op rebuild path parses one of these every time) and a generated 2,000-line file with
//! heredocs, continuations, comments, JSON and shell forms, for throughput.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_dockerfile::parse;

/// A realistic Dockerfile: 40 lines, two stages, continuations, a heredoc, flags, JSON.
const TYPICAL: &str = r#"# syntax=docker/dockerfile:1.7
ARG GO_VERSION=1.22

# build compiles the binary
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go build -ldflags="-s -w" -o /out/app ./cmd/app

FROM debian:bookworm-slim AS runtime
LABEL org.opencontainers.image.source="https://example.com/app" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*
RUN <<EOF
set -eux
groupadd --system app
useradd --system --gid app --home /app app
mkdir -p /app/data
chown -R app:app /app
EOF
COPY --from=build --chown=app:app /out/app /usr/local/bin/app
COPY <<EOF /etc/app/config.toml
listen = "0.0.0.0:8080"
data = "/app/data"
EOF
USER app
WORKDIR /app
EXPOSE 8080/tcp
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=3s CMD ["app", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve", "--config", "/etc/app/config.toml"]
"#;

/// About 2,000 lines mixing every construct the parser handles.
fn generated(lines: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\n# escape=\\\n\n");
    let mut i = 0;
    while out.lines().count() < lines {
        out.push_str(&format!("# stage {i} builds part {i}\n"));
        out.push_str(&format!("FROM registry.example.com/base:{i} AS stage{i}\n"));
        out.push_str(&format!(
            "ARG VERSION_{i}=1.{i}.0 CHANNEL=\"stable beta\"\nENV PATH=/opt/{i}/bin:$PATH \\\n    HOME=/home/u{i} \\\n\n    LANG=C.UTF-8\n"
        ));
        out.push_str(&format!(
            "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\\n    apt-get update \\\n    # keep the list small\n    && apt-get install -y --no-install-recommends pkg{i} \\\n    && rm -rf /var/lib/apt/lists/*\n"
        ));
        out.push_str(&format!(
            "COPY --chown=1000:1000 --chmod=0644 <<CONF /etc/app{i}.conf\nname = \"app{i}\"\n\tport = {i}\nCONF\n"
        ));
        out.push_str(&format!(
            "RUN <<-'SCRIPT' bash\n\tset -eu\n\techo \"building {i}\" > /tmp/log\n\tSCRIPT\n"
        ));
        out.push_str(&format!(
            "COPY [\"src/{i}\", \"with space/{i}\", \"/dst/{i}/\"]\nLABEL app.part=\"{i}\" maintainer=\"Team <t@example.com>\"\n"
        ));
        out.push_str(&format!(
            "HEALTHCHECK --interval=10s CMD curl -f http://localhost:{i}/ || exit 1\nEXPOSE {i}/tcp {i}/udp\nUSER {i}:{i}\nWORKDIR /work/{i}\n"
        ));
        out.push_str("ONBUILD COPY . /app\nCMD [\"/bin/app\", \"--serve\"]\n\n");
        i += 1;
    }
    out
}

fn parse_benches(c: &mut Criterion) {
    // The inputs are what the names say.
    assert_eq!(TYPICAL.lines().count(), 40);
    let large = generated(2_000);
    assert!((2_000..2_100).contains(&large.lines().count()));
    let file = parse(&large).expect("generated Dockerfile parses");
    assert!(file.instructions.iter().any(|n| !n.heredocs.is_empty()));
    assert!(!file.warnings.is_empty(), "has empty continuation lines");

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(TYPICAL.len() as u64));
    group.bench_function("typical_40_lines", |b| {
        b.iter(|| parse(black_box(TYPICAL)).expect("typical Dockerfile parses"))
    });

    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("generated_2000_lines", |b| {
        b.iter(|| parse(black_box(&large)).expect("generated Dockerfile parses"))
    });
    group.finish();
}

criterion_group!(benches, parse_benches);
criterion_main!(benches);
