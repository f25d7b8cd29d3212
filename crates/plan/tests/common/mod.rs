//! A base-image table for tests: real-looking configs (taken from the images' published
//! configs), looked up by normalized reference.
#![allow(dead_code)]

use std::cell::RefCell;

use hoist_plan::{BaseImage, BaseImageResolver, HistoryEntry, ImageConfig, PlanRequest, Platform};

pub(crate) struct Images {
    /// Every lookup, in order: `(reference, platform)`.
    pub(crate) lookups: RefCell<Vec<(String, String)>>,
}

impl Images {
    pub(crate) fn new() -> Self {
        Self {
            lookups: RefCell::new(Vec::new()),
        }
    }
}

fn env(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|e| (*e).to_owned()).collect()
}

fn upstream(created_by: &str, empty_layer: bool) -> HistoryEntry {
    HistoryEntry {
        created_by: created_by.to_owned(),
        comment: String::new(),
        empty_layer,
    }
}

impl BaseImageResolver for Images {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<BaseImage, String> {
        self.lookups
            .borrow_mut()
            .push((reference.to_owned(), platform.to_string()));
        let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        let (config, history) = match reference {
            "docker.io/library/busybox:latest" | "docker.io/library/busybox:1.36" => (
                ImageConfig {
                    env: env(&[path]),
                    cmd: Some(vec!["sh".to_owned()]),
                    ..ImageConfig::default()
                },
                vec![
                    upstream(
                        "/bin/sh -c #(nop) ADD file:7e9002edaafd4e4579b65c8f0aaabde1aeb7fd3f8d95579f7fd3443cef785fd1 in / ",
                        false,
                    ),
                    upstream("/bin/sh -c #(nop)  CMD [\"sh\"]", true),
                ],
            ),
            "docker.io/library/alpine:3.20" | "docker.io/library/alpine:latest" => (
                ImageConfig {
                    env: env(&[path]),
                    cmd: Some(vec!["/bin/sh".to_owned()]),
                    ..ImageConfig::default()
                },
                vec![
                    upstream(
                        "ADD alpine-minirootfs-3.20.3-x86_64.tar.gz / # buildkit",
                        false,
                    ),
                    upstream("CMD [\"/bin/sh\"]", true),
                ],
            ),
            "docker.io/library/debian:bookworm-local" | "docker.io/library/debian:bookworm" => (
                ImageConfig {
                    env: env(&[path]),
                    cmd: Some(vec!["bash".to_owned()]),
                    ..ImageConfig::default()
                },
                vec![upstream(
                    "# debian.sh --arch 'amd64' out/ 'bookworm' '@1729036800'",
                    false,
                )],
            ),
            "docker.io/library/golang:1.24" => (
                ImageConfig {
                    env: env(&[
                        "PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "GOLANG_VERSION=1.24.0",
                        "GOTOOLCHAIN=local",
                        "GOPATH=/go",
                    ]),
                    cmd: Some(vec!["bash".to_owned()]),
                    working_dir: "/go".to_owned(),
                    ..ImageConfig::default()
                },
                vec![upstream("WORKDIR /go", false)],
            ),
            "docker.io/library/nginx:1.27" => (
                ImageConfig {
                    env: env(&[path, "NGINX_VERSION=1.27.2"]),
                    entrypoint: Some(vec!["/docker-entrypoint.sh".to_owned()]),
                    cmd: Some(vec![
                        "nginx".to_owned(),
                        "-g".to_owned(),
                        "daemon off;".to_owned(),
                    ]),
                    exposed_ports: ["80/tcp".to_owned()].into_iter().collect(),
                    stop_signal: "SIGQUIT".to_owned(),
                    labels: [(
                        "maintainer".to_owned(),
                        "NGINX Docker Maintainers <docker-maint@nginx.com>".to_owned(),
                    )]
                    .into_iter()
                    .collect(),
                    ..ImageConfig::default()
                },
                Vec::new(),
            ),
            "example.com/onbuild-base:1" => (
                ImageConfig {
                    env: env(&[path]),
                    on_build: vec![
                        "WORKDIR /app".to_owned(),
                        "COPY . /app/src".to_owned(),
                        "RUN make -C /app/src".to_owned(),
                    ],
                    ..ImageConfig::default()
                },
                Vec::new(),
            ),
            "example.com/empty:1" => (ImageConfig::default(), Vec::new()),
            other => {
                return Err(format!(
                    "failed to resolve source metadata for {other}: not found"
                ));
            }
        };
        let layers = usize::from(reference != "example.com/empty:1");
        Ok(BaseImage {
            reference: reference.to_owned(),
            platform: platform.clone(),
            config,
            history,
            layers,
        })
    }
}

/// A request for `text` on linux/amd64 (tests do not depend on the machine).
pub(crate) fn request(text: &str) -> PlanRequest {
    let mut request =
        PlanRequest::new(hoist_dockerfile::parse(text).expect("test Dockerfiles parse"));
    request.build_platform = Platform::new("linux", "amd64", "");
    request
}

pub(crate) fn plan(request: &PlanRequest) -> Result<hoist_plan::BuildPlan, hoist_plan::PlanError> {
    hoist_plan::plan(request, &Images::new())
}
