//! The registry client against a real registry (Debian's `docker-registry`, started per test on 127.0.0.1):
//! indexes and platforms, chunked uploads, resumed downloads through a connection-cutting proxy, and digest
//! verification of what the registry serves.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use hoist_oci::oci_spec::image::Descriptor;
use hoist_oci::{DigestExt, Expected, ManifestFormat, Reference, Store};
use hoist_registry::{
    Client, DockerConfig, Error, Event, ImageReference, Platform, PullOptions, PushOptions,
    PushedImage, RegistryConfig, Reporter,
};
use support::{TestRegistry, rootfs_tarball};

/// Collects events for assertions.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Reporter for Recorder {
    fn report(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn count(&self, what: impl Fn(&Event) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| what(e)).count()
    }
}

fn client(dir: &Path) -> Client {
    Client::new(
        RegistryConfig::default(),
        DockerConfig::at(dir.join("docker-config.json")),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes a one-layer image for `architecture` into the store; returns its manifest descriptor.
fn write_image(store: &Store, dir: &Path, text: &str, architecture: &str) -> Descriptor {
    let tarball = rootfs_tarball(dir, text);
    let layer = store
        .ingest_layer(std::fs::File::open(tarball).unwrap(), &Expected::unknown())
        .unwrap();
    let config = serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.info.diff_id.to_string()]},
    });
    let descriptor = hoist_oci::layer_descriptor(&layer, ManifestFormat::Oci);
    store
        .write_image(
            config.to_string().as_bytes(),
            &[descriptor],
            ManifestFormat::Oci,
        )
        .unwrap()
        .manifest
}

/// A store at `dir/a` holding a one-layer image (see [`write_image`]) whose file says `text`, tagged `name`.
fn tagged_image(dir: &Path, text: &str, name: &str) -> (Arc<Store>, Descriptor) {
    let store = Arc::new(Store::open(dir.join("a")).unwrap());
    let manifest = write_image(&store, dir, text, "amd64");
    store
        .tag(&name.parse::<Reference>().unwrap(), &manifest)
        .unwrap();
    (store, manifest)
}

/// Pushes `name` from `store` to `target` with the default options.
fn push(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    store: &Arc<Store>,
    name: &str,
    target: &ImageReference,
) -> Result<PushedImage, Error> {
    rt.block_on(client.push(
        Arc::clone(store),
        name,
        std::slice::from_ref(target),
        &PushOptions::default(),
        Arc::new(hoist_registry::Silent),
    ))
}

#[test]
fn index_push_and_platform_selection() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("a")).unwrap());
    let amd64 = write_image(&store, dir.path(), "amd64\n", "amd64");
    let arm64 = write_image(&store, dir.path(), "arm64 image\n", "arm64");
    let entry = |d: &Descriptor, arch: &str, variant: Option<&str>| {
        let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        serde_json::json!({
            "mediaType": d.media_type().to_string(),
            "digest": d.digest().to_string(),
            "size": d.size(),
            "platform": platform,
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd64, "amd64", None), entry(&arm64, "arm64", Some("v8"))],
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let index_blob = store.ingest_bytes(&index_bytes).unwrap();
    let index_descriptor = hoist_oci::oci_spec::image::DescriptorBuilder::default()
        .media_type(hoist_oci::oci_spec::image::MediaType::ImageIndex)
        .digest(index_blob.digest.to_oci())
        .size(index_blob.size)
        .build()
        .unwrap();
    store
        .tag(&"multi:1".parse::<Reference>().unwrap(), &index_descriptor)
        .unwrap();

    let client = client(dir.path());
    let rt = runtime();
    let target: ImageReference = format!("{}/multi/app:1", registry.addr).parse().unwrap();
    let pushed = rt
        .block_on(client.push(
            Arc::clone(&store),
            "multi:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pushed.digest, index_blob.digest);
    assert_eq!(pushed.uploaded, 4, "two configs and two layers");

    // The variant spelling `arm64/v8` finds the arm64 entry; the index digest is what the tag resolves to.
    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let options = PullOptions {
        platform: "linux/arm64/v8".parse().unwrap(),
        ..PullOptions::default()
    };
    let pulled = rt
        .block_on(client.pull(
            Arc::clone(&fresh),
            &target,
            &options,
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pulled.resolved, index_blob.digest);
    assert_eq!(pulled.manifest.digest(), arm64.digest());
    let image = fresh.read_image("localhost:5000/none:x").err();
    assert!(image.is_some());
    let stored = fresh
        .read_image(&format!("{}/multi/app:1", registry.addr))
        .unwrap();
    assert_eq!(stored.config.architecture().to_string(), "arm64");

    // No s390x: the error lists what exists.
    let options = PullOptions {
        platform: Platform::new("linux", "s390x", None),
        ..PullOptions::default()
    };
    let error = rt
        .block_on(client.pull(
            Arc::clone(&fresh),
            &target,
            &options,
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap_err();
    assert!(matches!(error, Error::NoMatchingPlatform { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("linux/s390x") && message.contains("available: linux/amd64, linux/arm64"),
        "{message}"
    );
}

#[test]
fn chunked_upload_round_trips() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = tagged_image(dir.path(), "chunks\n", "chunky:1");
    let client = client(dir.path());
    let rt = runtime();
    let target: ImageReference = format!("{}/chunky:1", registry.addr).parse().unwrap();
    let recorder = Arc::new(Recorder::default());
    let options = PushOptions {
        monolithic_limit: 0,
        chunk_size: 64 * 1024,
        ..PushOptions::default()
    };
    let pushed = rt
        .block_on(client.push(
            Arc::clone(&store),
            "chunky:1",
            std::slice::from_ref(&target),
            &options,
            recorder.clone(),
        ))
        .unwrap();
    assert_eq!(pushed.digest.to_string(), manifest.digest().to_string());
    let chunks = recorder.count(|e| matches!(e, Event::BlobProgress { .. }));
    assert!(
        chunks > 10,
        "a ~1 MB layer in 64 KiB chunks: {chunks} PATCHes"
    );

    // Pushing again finds every blob with HEAD and uploads nothing.
    // (Through the blocking entry point, as the build engine calls it.)
    let again = client
        .push_blocking(
            Arc::clone(&store),
            "chunky:1",
            std::slice::from_ref(&target),
            &options,
            Arc::new(hoist_registry::Silent),
        )
        .unwrap();
    assert_eq!((again.uploaded, again.existing), (0, 2));

    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let pulled = rt
        .block_on(client.pull(
            fresh,
            &target,
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
}

#[test]
fn corrupted_registry_content_is_a_digest_mismatch_and_nothing_is_stored() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = tagged_image(dir.path(), "corrupt me\n", "bad:1");
    let client = client(dir.path());
    let rt = runtime();
    let target: ImageReference = format!("{}/bad:1", registry.addr).parse().unwrap();
    push(&rt, &client, &store, "bad:1", &target).unwrap();
    let image = store.read_image("bad:1").unwrap();
    let config = image.id;
    // Same length, different bytes, straight in the registry's storage.
    let path = registry.blob_path(&config.encoded());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let error = rt
        .block_on(client.pull(
            Arc::clone(&fresh),
            &target,
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap_err();
    assert!(
        matches!(error, Error::DigestMismatch { expected, .. } if expected == config),
        "{error}"
    );
    assert!(error.to_string().contains(&config.to_string()));
    assert!(!fresh.has_blob(&config));
}

/// A TCP proxy that closes every connection after `limit` bytes from the server: a flaky network, in front of a
/// real registry.
fn cutting_proxy(upstream: String, limit: usize) -> String {
    cutting_proxy_first(upstream, limit, usize::MAX)
}

/// Like [`cutting_proxy`], but only the first `cut` connections are cut; later ones pass everything.
fn cutting_proxy_first(upstream: String, limit: usize, cut: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (index, client) in listener.incoming().enumerate() {
            let limit = if index < cut { limit } else { usize::MAX };
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(&upstream) else {
                return;
            };
            let (mut client_read, mut server_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_read, &mut server_write);
                let _ = server_write.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let mut sent = 0;
                let mut buffer = [0; 16 * 1024];
                while sent < limit {
                    let n = match server.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(limit - sent),
                    };
                    if client.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    addr
}

/// An HTTP proxy in front of a real registry that answers `429 Too Many Requests` with `Retry-After: {seconds}` to
/// the first `limit` requests whose path contains `path` and forwards everything else (one request per connection;
/// enough for pulls, whose requests have no body). Returns its address and the count of 429s sent.
fn rate_limiting_proxy(
    upstream: String,
    path: &'static str,
    limit: usize,
    seconds: u64,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let limited = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&limited);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let upstream = upstream.clone();
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                if client.peek(&mut byte).is_ok() && !byte[0].is_ascii_uppercase() {
                    // Not HTTP (the client's HTTPS probe): refuse, as a plain-HTTP registry does.
                    let _ = client.shutdown(Shutdown::Both);
                    return;
                }
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let target = text.split(' ').nth(1).unwrap_or_default();
                if target.contains(path)
                    && counter
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            (n < limit).then_some(n + 1)
                        })
                        .is_ok()
                {
                    let _ = write!(
                        client,
                        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {seconds}\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let request = format!("{}Connection: close\r\n\r\n", &text[..text.len() - 2]);
                if server.write_all(request.as_bytes()).is_ok() {
                    let _ = std::io::copy(&mut server, &mut client);
                }
                let _ = client.shutdown(Shutdown::Both);
            });
        }
    });
    (addr, limited)
}

/// Pushes a one-layer image to `registry` as `name`; returns the store it came from and the manifest descriptor.
fn push_small_image(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    dir: &Path,
    registry: &TestRegistry,
    name: &str,
) -> (ImageReference, Descriptor) {
    let store = Arc::new(Store::open(dir.join("source")).unwrap());
    let manifest = write_image(&store, dir, "rate limited\n", "amd64");
    store
        .tag(&name.parse::<Reference>().unwrap(), &manifest)
        .unwrap();
    let target: ImageReference = format!("{}/{name}", registry.addr).parse().unwrap();
    push(rt, client, &store, name, &target).unwrap();
    (target, manifest)
}

#[test]
fn short_rate_limits_are_waited_out() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let rt = runtime();
    let (target, manifest) = push_small_image(&rt, &client, dir.path(), &registry, "limited:1");
    let (proxy, limited) = rate_limiting_proxy(registry.addr.clone(), "/manifests/", 2, 1);
    let fresh = Arc::new(Store::open(dir.path().join("fresh")).unwrap());
    let started = std::time::Instant::now();
    let pulled = rt
        .block_on(client.pull(
            Arc::clone(&fresh),
            &target.on_registry(&proxy),
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
    assert_eq!(limited.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "each 429 was waited out for its Retry-After: {:?}",
        started.elapsed()
    );
}

#[test]
fn long_rate_limits_fail_naming_the_registry_and_the_wait() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let rt = runtime();
    let (target, _) = push_small_image(&rt, &client, dir.path(), &registry, "banned:1");
    let (proxy, limited) =
        rate_limiting_proxy(registry.addr.clone(), "/manifests/", usize::MAX, 3600);
    let fresh = Arc::new(Store::open(dir.path().join("fresh")).unwrap());
    let started = std::time::Instant::now();
    let error = rt
        .block_on(client.pull(
            Arc::clone(&fresh),
            &target.on_registry(&proxy),
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a long Retry-After fails at once"
    );
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "rate limited by {proxy} (429 Too Many Requests), retry after 3600 seconds; \
             try again later, or log in for a higher limit"
        )
    );
    assert_eq!(limited.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn downloads_resume_after_connection_cuts() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = tagged_image(dir.path(), "resume\n", "flaky:1");
    let client = client(dir.path());
    let rt = runtime();
    let direct: ImageReference = format!("{}/flaky:1", registry.addr).parse().unwrap();
    push(&rt, &client, &store, "flaky:1", &direct).unwrap();
    let layer_size = store.read_image("flaky:1").unwrap().layers[0]
        .descriptor
        .size();
    assert!(
        layer_size > 600 * 1024,
        "the layer holds busybox: {layer_size} bytes"
    );

    let proxy = cutting_proxy(registry.addr.clone(), 300 * 1024);
    let through_proxy = direct.on_registry(&proxy);
    let recorder = Arc::new(Recorder::default());
    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let pulled = rt
        .block_on(client.pull(
            Arc::clone(&fresh),
            &through_proxy,
            &PullOptions::default(),
            recorder.clone(),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
    let retries = recorder.count(|e| matches!(e, Event::BlobRetry { .. }));
    assert!(
        retries >= 2,
        "the layer needs several connections: {retries} retries"
    );
    let stored = fresh.read_image(&through_proxy.familiar()).unwrap();
    assert_eq!(
        stored.layers[0].info.as_ref().unwrap().diff_id,
        store.read_image("flaky:1").unwrap().layers[0]
            .info
            .as_ref()
            .unwrap()
            .diff_id
    );
}

#[test]
fn tls_registry_needs_its_ca_and_then_works() {
    let Some(registry) = TestRegistry::start_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = tagged_image(dir.path(), "over tls\n", "secure:1");
    let target: ImageReference = format!("{}/secure:1", registry.addr).parse().unwrap();
    let rt = runtime();
    let push = |client: &Client| {
        rt.block_on(client.push(
            Arc::clone(&store),
            "secure:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
    };

    // Unknown CA: refused, and not silently downgraded to plain HTTP.
    let error = push(&client(dir.path())).unwrap_err();
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert!(
        chain.contains("invalid peer certificate: UnknownIssuer"),
        "{chain}"
    );

    // The CA in a certs.d-style directory (HOST:PORT/ca.crt), as Docker reads /etc/docker/certs.d.
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(certs.join(&registry.addr)).unwrap();
    std::fs::copy(
        registry.ca_file(),
        certs.join(&registry.addr).join("ca.crt"),
    )
    .unwrap();
    let config = RegistryConfig {
        certs_dirs: vec![certs],
        ..RegistryConfig::default()
    };
    let with_ca = Client::new(
        config,
        DockerConfig::at(dir.path().join("docker-config.json")),
    );
    let pushed = push(&with_ca).unwrap();
    assert_eq!(pushed.digest.to_string(), manifest.digest().to_string());
    let endpoint = with_ca
        .config()
        .push_endpoint(target.registry(), target.repository());
    let base = rt.block_on(with_ca.base_url(&endpoint)).unwrap();
    assert_eq!(base, format!("https://{}/v2/", registry.addr));
    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let pulled = rt
        .block_on(with_ca.pull(
            fresh,
            &target,
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
}

#[test]
fn bearer_token_flow_anonymous_pull_and_authenticated_push() {
    let Some(registry) = TestRegistry::start_with_token_auth("hoister", "t0ken-pass") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = tagged_image(dir.path(), "bearer\n", "bearer:1");
    let target: ImageReference = format!("{}/team/bearer:1", registry.addr).parse().unwrap();
    let rt = runtime();
    let push = |client: &Client| {
        rt.block_on(client.push(
            Arc::clone(&store),
            "bearer:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
    };
    // Anonymous: the token grants pull only, so the registry refuses the push, naming the scope.
    let anonymous = client(dir.path());
    let error = push(&anonymous).unwrap_err();
    assert!(
        matches!(&error, Error::Unauthorized { scope, .. } if scope == "repository:team/bearer:pull,push"),
        "{error}"
    );
    // Stored credentials go to the token server as basic auth; the token then grants push.
    let docker_config = DockerConfig::at(dir.path().join("logged-in.json"));
    docker_config
        .store(
            &registry.addr,
            &hoist_registry::Credentials {
                username: "hoister".to_owned(),
                password: "t0ken-pass".to_owned(),
            },
        )
        .unwrap();
    let logged_in = Client::new(RegistryConfig::default(), docker_config);
    push(&logged_in).unwrap();
    // Anyone may pull, with an anonymous token.
    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let pulled = rt
        .block_on(anonymous.pull(
            fresh,
            &target,
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
    // Wrong credentials: the token server refuses, and the error says so.
    let wrong = DockerConfig::at(dir.path().join("wrong.json"));
    wrong
        .store(
            &registry.addr,
            &hoist_registry::Credentials {
                username: "hoister".to_owned(),
                password: "nope".to_owned(),
            },
        )
        .unwrap();
    let error = push(&Client::new(RegistryConfig::default(), wrong)).unwrap_err();
    assert!(error.to_string().contains("token server"), "{error}");

    // An identity token (`identitytoken` in config.json) is exchanged with an OAuth2 refresh-token grant.
    let identity = dir.path().join("identity.json");
    let with_token = |token: &str| {
        std::fs::write(
            &identity,
            serde_json::json!({"auths": {registry.addr.clone(): {"identitytoken": token}}})
                .to_string(),
        )
        .unwrap();
        Client::new(RegistryConfig::default(), DockerConfig::at(&identity))
    };
    push(&with_token("refresh:t0ken-pass")).unwrap();
    let error = push(&with_token("refresh:stale")).unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error}");
}

#[test]
fn foreign_layers_are_neither_pushed_nor_pulled() {
    let Some(registry) = TestRegistry::start_allowing_foreign_layers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("a")).unwrap());
    // A regular layer, and a foreign one that only exists at its URL (which nobody fetches).
    let tarball = rootfs_tarball(dir.path(), "foreign\n");
    let layer = store
        .ingest_layer(std::fs::File::open(tarball).unwrap(), &Expected::unknown())
        .unwrap();
    let foreign_bytes = b"a Windows base layer would be here";
    let foreign = hoist_layer::Digest::sha256(foreign_bytes);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [foreign.to_string(), layer.info.diff_id.to_string()]},
    });
    let config_blob = store.ingest_bytes(config.to_string().as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": config_blob.digest.to_string(),
            "size": config_blob.size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                "digest": foreign.to_string(),
                "size": foreign_bytes.len(),
                "urls": ["https://example.invalid/foreign.tar.gz"],
            },
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": layer.blob.digest.to_string(),
                "size": layer.blob.size,
            },
        ],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_blob = store.ingest_bytes(&manifest_bytes).unwrap();
    let descriptor = hoist_oci::oci_spec::image::DescriptorBuilder::default()
        .media_type(hoist_oci::oci_spec::image::MediaType::from(
            "application/vnd.docker.distribution.manifest.v2+json",
        ))
        .digest(manifest_blob.digest.to_oci())
        .size(manifest_blob.size)
        .build()
        .unwrap();
    store
        .tag(&"foreign:1".parse::<Reference>().unwrap(), &descriptor)
        .unwrap();

    let client = client(dir.path());
    let target: ImageReference = format!("{}/foreign:1", registry.addr).parse().unwrap();
    let pushed = client
        .push_blocking(
            Arc::clone(&store),
            "foreign:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        )
        .unwrap();
    assert_eq!((pushed.uploaded, pushed.digest), (2, manifest_blob.digest));

    let recorder = Arc::new(Recorder::default());
    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let pulled = client
        .pull_blocking(
            Arc::clone(&fresh),
            &target,
            &PullOptions::default(),
            recorder.clone(),
        )
        .unwrap();
    assert_eq!(pulled.downloaded, 2, "config and the regular layer");
    assert_eq!(
        recorder.count(|e| matches!(e, Event::BlobSkipped { digest, .. } if *digest == foreign)),
        1
    );
    assert!(!fresh.has_blob(&foreign));
    assert!(fresh.has_blob(&layer.blob.digest));
}

#[test]
fn a_layer_listed_twice_is_transferred_once() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("a")).unwrap());
    let tarball = rootfs_tarball(dir.path(), "twice\n");
    let layer = store
        .ingest_layer(std::fs::File::open(tarball).unwrap(), &Expected::unknown())
        .unwrap();
    let diff_id = layer.info.diff_id.to_string();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]},
    });
    let descriptor = hoist_oci::layer_descriptor(&layer, ManifestFormat::Docker);
    let image = store
        .write_image(
            config.to_string().as_bytes(),
            &[descriptor.clone(), descriptor],
            ManifestFormat::Docker,
        )
        .unwrap();
    store
        .tag(&"twice:1".parse::<Reference>().unwrap(), &image.manifest)
        .unwrap();
    let client = client(dir.path());
    let target: ImageReference = format!("{}/twice:1", registry.addr).parse().unwrap();
    let pushed = client
        .push_blocking(
            Arc::clone(&store),
            "twice:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        )
        .unwrap();
    assert_eq!(pushed.uploaded, 2, "the config and the layer, once");
    let fresh = Arc::new(Store::open(dir.path().join("b")).unwrap());
    let recorder = Arc::new(Recorder::default());
    let pulled = client
        .pull_blocking(fresh, &target, &PullOptions::default(), recorder.clone())
        .unwrap();
    assert_eq!(pulled.downloaded, 2);
    assert_eq!(
        recorder.count(|e| matches!(e, Event::BlobStarted { .. })),
        2
    );
}

#[test]
fn a_manifest_cut_off_mid_body_is_fetched_again() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = tagged_image(dir.path(), "cut manifest\n", "cut:1");
    let client = client(dir.path());
    let direct: ImageReference = format!("{}/cut:1", registry.addr).parse().unwrap();
    client
        .push_blocking(
            Arc::clone(&store),
            "cut:1",
            std::slice::from_ref(&direct),
            &PushOptions::default(),
            Arc::new(hoist_registry::Silent),
        )
        .unwrap();
    // Where the manifest's body starts in the registry's response: the cut goes 20 bytes after that.
    let mut raw = TcpStream::connect(&registry.addr).unwrap();
    write!(
        raw,
        "GET /v2/cut/manifests/1 HTTP/1.1\r\nHost: {}\r\nAccept: {}\r\nConnection: close\r\n\r\n",
        registry.addr,
        manifest.media_type()
    )
    .unwrap();
    let mut response = Vec::new();
    raw.read_to_end(&mut response).unwrap();
    let body_start = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        response.len() > body_start + 100,
        "a manifest body follows the headers"
    );
    // The HTTPS probe and the manifest request each get a connection that dies inside the manifest's body.
    let proxy = cutting_proxy_first(registry.addr.clone(), body_start + 20, 2);
    let resolved = client
        .resolve_blocking(&direct.on_registry(&proxy))
        .unwrap();
    assert_eq!(resolved.digest.to_string(), manifest.digest().to_string());
}

/// An uncompressed layer tar holding one file of `size` pseudo-random bytes (half of each 64-byte run repeated,
/// so gzip has some work to do): deterministic for `(name, size)`.
fn plain_layer(dir: &Path, name: &str, size: usize) -> std::path::PathBuf {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ size as u64;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bytes = state.to_le_bytes();
        data.extend_from_slice(&bytes);
        data.extend_from_slice(&bytes[..4]);
        data.extend_from_slice(&bytes[..4]);
    }
    data.truncate(size);
    let path = dir.join(format!("{name}.tar"));
    let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, &data[..]).unwrap();
    builder.into_inner().unwrap();
    path
}

/// A store at `dir/<store>` holding an image of the plain layers `tars`, tagged `name`.
fn plain_layer_image(
    dir: &Path,
    store: &str,
    tars: &[std::path::PathBuf],
    name: &str,
) -> (Arc<Store>, Descriptor) {
    let store = Arc::new(Store::open(dir.join(store)).unwrap());
    let layers: Vec<_> = tars
        .iter()
        .map(|tar| {
            let layer = store
                .ingest_layer(std::fs::File::open(tar).unwrap(), &Expected::unknown())
                .unwrap();
            assert_eq!(layer.compression, hoist_oci::Compression::None);
            layer
        })
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.info.diff_id.to_string()).collect::<Vec<_>>(),
        },
    });
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| hoist_oci::layer_descriptor(l, ManifestFormat::Oci))
        .collect();
    let manifest = store
        .write_image(
            config.to_string().as_bytes(),
            &descriptors,
            ManifestFormat::Oci,
        )
        .unwrap()
        .manifest;
    store
        .tag(&name.parse::<Reference>().unwrap(), &manifest)
        .unwrap();
    (store, manifest)
}

#[test]
fn a_push_uploads_each_layer_once_it_is_compressed_and_the_manifest_last() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A small layer and two larger ones: the small one is compressed (and its upload started) long before the
    // largest is compressed.
    let tars = [
        plain_layer(dir.path(), "small", 256 * 1024),
        plain_layer(dir.path(), "middle", 9 * 1024 * 1024),
        plain_layer(dir.path(), "large", 24 * 1024 * 1024),
    ];
    let (store, _) = plain_layer_image(dir.path(), "a", &tars, "layers:1");
    let client = client(dir.path());
    let rt = runtime();
    let target: ImageReference = format!("{}/layers:1", registry.addr).parse().unwrap();
    let recorder = Arc::new(Recorder::default());
    let pushed = rt
        .block_on(client.push(
            Arc::clone(&store),
            "layers:1",
            std::slice::from_ref(&target),
            &PushOptions::default(),
            recorder.clone(),
        ))
        .unwrap();
    assert_eq!((pushed.uploaded, pushed.existing), (4, 0));
    let events = recorder.0.lock().unwrap().clone();
    let position = |what: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .position(what)
            .unwrap_or_else(|| panic!("missing event in {events:#?}"))
    };
    let manifest_pushed = position(&|e| matches!(e, Event::ManifestPushed { .. }));
    assert_eq!(manifest_pushed, events.len() - 1, "{events:#?}");
    let mut compressed_layers = Vec::new();
    let mut first_upload = Vec::new();
    let mut compress_done = Vec::new();
    for tar in &tars {
        let source = hoist_oci::Digest::sha256(&std::fs::read(tar).unwrap());
        let started =
            position(&|e| matches!(e, Event::CompressStarted { digest, .. } if *digest == source));
        let done =
            position(&|e| matches!(e, Event::CompressDone { digest, .. } if *digest == source));
        let Event::CompressDone {
            size,
            compressed,
            compressed_size,
            ..
        } = events[done]
        else {
            unreachable!("position found a CompressDone")
        };
        let upload =
            position(&|e| matches!(e, Event::BlobStarted { digest, .. } if *digest == compressed));
        let uploaded =
            position(&|e| matches!(e, Event::BlobDone { digest, .. } if *digest == compressed));
        assert!(started < done && done < upload && upload < uploaded && uploaded < manifest_pushed);
        // Progress for the larger layers, in order, between the start and the end of their compression.
        let progress: Vec<(usize, u64)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Event::CompressProgress { digest, read, .. } if *digest == source => {
                    Some((i, *read))
                }
                _ => None,
            })
            .collect();
        let stored = std::fs::metadata(tar).unwrap().len();
        assert_eq!(progress.len() as u64, stored / hoist_oci::PROGRESS_STEP);
        assert!(progress.iter().all(|(i, _)| started < *i && *i < done));
        assert!(progress.windows(2).all(|w| w[0].1 < w[1].1));
        // The registry holds exactly the compressed bytes the store recorded as the layer's variant.
        let variant = store
            .recorded_variant(&source, hoist_oci::Compression::Gzip)
            .unwrap()
            .unwrap();
        assert_eq!(
            (variant.digest, variant.size),
            (compressed, compressed_size)
        );
        assert_eq!(size, stored);
        let hex = compressed.to_string();
        let served =
            std::fs::read(registry.blob_path(hex.strip_prefix("sha256:").unwrap())).unwrap();
        assert_eq!(served, store.read_blob(&compressed).unwrap());
        compressed_layers.push(compressed);
        first_upload.push(upload);
        compress_done.push(done);
    }
    // Pipelined: the first two layers' uploads started before the last one was compressed.
    assert!(
        first_upload[0] < compress_done[2] && first_upload[1] < compress_done[2],
        "{events:#?}"
    );

    // The same image compressed without a push (another store, the plain `compressed_image`) has the pushed
    // manifest digest: overlapping the upload changes no byte.
    let (other, stored) = plain_layer_image(dir.path(), "b", &tars, "layers:1");
    let compressed = other
        .compressed_image(&stored, &hoist_oci::LayerCompression::default())
        .unwrap();
    assert_eq!(compressed.digest().to_string(), pushed.digest.to_string());
    let fresh = Arc::new(Store::open(dir.path().join("c")).unwrap());
    let pulled = rt
        .block_on(client.pull(
            fresh,
            &target,
            &PullOptions::default(),
            Arc::new(hoist_registry::Silent),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest(), compressed.digest());
    let layers: Vec<String> = other
        .read_manifest(&pushed.digest)
        .unwrap()
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let expected: Vec<String> = compressed_layers.iter().map(ToString::to_string).collect();
    assert_eq!(layers, expected);
}
