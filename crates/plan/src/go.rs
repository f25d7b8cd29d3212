//! Small pieces of Go and BuildKit behaviour the planner needs: `%v`/`%q` of string lists,
//! `time.Duration` text, paths, image references, ports, signals, suggestions.

use std::time::Duration;

use hoist_dockerfile::go_quote;

/// Go's `%v` of a `[]string`: `[a b c]`.
pub(crate) fn fmt_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn fmt_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `time.Duration.String()`: `0s`, `30s`, `1m30s`, `1h0m0s`, `1.5s`, `500ms`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, div));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let secs_text = fraction(u128::from(secs as u64) * 1_000_000_000 + sub, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs_text}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs_text}s")
    } else {
        format!("{secs_text}s")
    }
}

/// `value / div` with the fractional part's trailing zeros removed (`1500, 1000` → `1.5`).
fn fraction(value: u128, div: u128) -> String {
    let whole = value / div;
    let rest = value % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// BuildKit's `system.NormalizePath(cwd, p, keepSlash=true)` for Linux: `p` joined to `cwd`
/// unless absolute, cleaned, with a trailing `/` kept when `p` has one (or is `.`).
pub(crate) fn path_relative_to(cwd: &str, p: &str) -> String {
    let p = if p.is_empty() || p == "." { "./" } else { p };
    let joined = if p.starts_with('/') {
        hoist_context::clean_path(p)
    } else {
        hoist_context::clean_path(&format!("{}/{p}", if cwd.is_empty() { "/" } else { cwd }))
    };
    let keep = p.ends_with('/') || p.ends_with("/.");
    if keep && !joined.ends_with('/') {
        format!("{joined}/")
    } else {
        joined
    }
}

/// BuildKit's `NormalizeWorkdir` for Linux: relative to the current one, cleaned.
pub(crate) fn normalize_workdir(current: &str, requested: &str) -> Option<String> {
    if requested.is_empty() {
        return None;
    }
    if requested.starts_with('/') {
        return Some(hoist_context::clean_path(requested));
    }
    let base = if current.is_empty() { "/" } else { current };
    Some(hoist_context::clean_path(&format!("{base}/{requested}")))
}

/// `reference.ParseNormalizedNamed` + `TagNameOnly` for the common forms: `alpine` →
/// `docker.io/library/alpine:latest`; `None` for a name that is not a reference.
pub(crate) fn normalize_reference(name: &str) -> Option<String> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    let (name_part, digest) = match name.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (name, None),
    };
    // A tag is after the last ':' that follows the last '/'.
    let last_slash = name_part.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name_part[last_slash..].rfind(':') {
        Some(i) => (
            &name_part[..last_slash + i],
            Some(&name_part[last_slash + i + 1..]),
        ),
        None => (name_part, None),
    };
    let mut components: Vec<&str> = repo.split('/').collect();
    let domain = if components.len() > 1
        && (components[0].contains('.')
            || components[0].contains(':')
            || components[0] == "localhost"
            || components[0].chars().any(|c| c.is_ascii_uppercase()))
    {
        components.remove(0).to_owned()
    } else {
        "docker.io".to_owned()
    };
    if components.is_empty() || components.iter().any(|c| !valid_path_component(c)) {
        return None;
    }
    if domain == "docker.io" && components.len() == 1 {
        components.insert(0, "library");
    }
    if let Some(tag) = tag
        && (tag.is_empty()
            || tag.len() > 128
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            || tag.starts_with(['.', '-']))
    {
        return None;
    }
    if let Some(d) = digest
        && !d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
    {
        return None;
    }
    let mut out = format!("{domain}/{}", components.join("/"));
    match (tag, digest) {
        (Some(tag), _) => {
            out.push(':');
            out.push_str(tag);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Some(out)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    if c.is_empty() || !c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit()) {
        return false;
    }
    if !c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit()) {
        return false;
    }
    let bytes = c.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-"+.
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.chars().all(|ch| ch == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// BuildKit's `parsePortSpec`: `80` → `["80/tcp"]`, `8000-8001/UDP` → two ports.
pub(crate) fn parse_port_spec(raw: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host_port, container) = match parts.as_slice() {
        [c] => (String::new(), "", *c),
        [h, c] => (String::new(), *h, *c),
        [ip, h, c] => ((*ip).to_owned(), *h, *c),
        _ => {
            let n = parts.len();
            (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1])
        }
    };
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(format!("no port specified: {container}<empty>"));
    }
    let proto = proto.to_lowercase();
    let proto = match proto.as_str() {
        "" => "tcp".to_owned(),
        "tcp" | "udp" | "sctp" => proto,
        _ => return Err(format!("invalid proto: {proto}")),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (start, end) =
        parse_port_range(port).map_err(|()| format!("invalid containerPort: {port}"))?;
    if !host_port.is_empty() {
        let (hs, he) =
            parse_port_range(host_port).map_err(|()| format!("invalid hostPort: {host_port}"))?;
        if end - start != he - hs && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {port} and {host_port}"
            ));
        }
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn parse_port_range(ports: &str) -> Result<(u64, u64), ()> {
    let parse = |s: &str| s.parse::<u16>().map(u64::from).map_err(|_| ());
    match ports.split_once('-') {
        None => {
            let p = parse(ports)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            if b.contains('-') {
                return Err(());
            }
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a { Err(()) } else { Ok((a, b)) }
        }
    }
}

/// The Linux signal names moby's `signal.ParseSignal` knows.
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN",
    "RTMAX",
];

/// moby's `signal.ParseSignal`: a number above 0, or a name with or without `SIG`
/// (`RTMIN+3` too).
pub(crate) fn valid_signal(signal: &str) -> bool {
    if let Ok(n) = signal.parse::<u32>() {
        return n != 0;
    }
    let name = signal.to_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if SIGNALS.contains(&name) {
        return true;
    }
    for (base, max) in [("RTMIN+", 15), ("RTMAX-", 14)] {
        if let Some(n) = name.strip_prefix(base).and_then(|n| n.parse::<u32>().ok()) {
            return (1..=max).contains(&n);
        }
    }
    false
}

/// The closest candidate to `value` (case-insensitive Levenshtein distance at most 2, and
/// less than the value's length), as BuildKit's `suggest` picks "did you mean" hints.
pub(crate) fn suggest(value: &str, candidates: &[String]) -> Option<String> {
    let value_lower = value.to_lowercase();
    let mut best: Option<(usize, &String)> = None;
    for c in candidates {
        let d = hoist_dockerfile::edit_distance(&value_lower, &c.to_lowercase());
        if d <= 2 && d < value.len() && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.clone())
}

/// The file name BuildKit's Dockerfile frontend gives an `ADD <URL>` download: `path.Base` of the
/// URL's (percent-decoded) path, or `__unnamed__` when there is none or the URL does not parse.
pub(crate) fn url_file_name(url: &str) -> String {
    const UNNAMED: &str = "__unnamed__";
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_fragment = after_scheme.split('#').next().unwrap_or("");
    let without_query = without_fragment.split('?').next().unwrap_or("");
    let raw_path = without_query.find('/').map_or("", |i| &without_query[i..]);
    let Some(path) = percent_decode(raw_path) else {
        return UNNAMED.to_owned();
    };
    // Go's `path.Base`: trailing slashes dropped, then the last element. (`..` would name a file
    // outside the download directory: it is unnamed too.)
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_owned(),
        _ => UNNAMED.to_owned(),
    }
}

/// `%XX` escapes decoded, as Go's `url.Parse` does for the path; `None` for a bad escape or bytes
/// that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names_are_buildkits() {
        let name = |url: &str| url_file_name(url);
        assert_eq!(name("https://example.com/a/b/tool.tar.gz"), "tool.tar.gz");
        assert_eq!(name("https://example.com/dl/file.txt?sig=1#x"), "file.txt");
        assert_eq!(name("https://example.com/a%20b.txt"), "a b.txt");
        assert_eq!(name("https://example.com/dir/"), "dir");
        assert_eq!(name("https://example.com/"), "__unnamed__");
        assert_eq!(name("https://example.com"), "__unnamed__");
        assert_eq!(name("https://example.com/a/%2e"), "__unnamed__");
        assert_eq!(name("https://example.com/bad%zz"), "__unnamed__");
        assert_eq!(name("https://example.com/a/%2e%2e"), "__unnamed__");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn paths_clean_and_join_like_buildkit() {
        assert_eq!(hoist_context::clean_path("/a/../b/./c/"), "/b/c");
        assert_eq!(hoist_context::clean_path("/.."), "/");
        assert_eq!(path_relative_to("/src", "."), "/src/");
        assert_eq!(path_relative_to("/src", "./"), "/src/");
        assert_eq!(path_relative_to("/src", "a/b"), "/src/a/b");
        assert_eq!(path_relative_to("/src", "/x/"), "/x/");
        assert_eq!(path_relative_to("/", "app"), "/app");
        assert_eq!(normalize_workdir("/src", "../lib").as_deref(), Some("/lib"));
        assert_eq!(normalize_workdir("", "rel").as_deref(), Some("/rel"));
        assert_eq!(normalize_workdir("/a", ""), None);
    }

    #[test]
    fn references_normalize() {
        assert_eq!(
            normalize_reference("alpine").as_deref(),
            Some("docker.io/library/alpine:latest")
        );
        assert_eq!(
            normalize_reference("alpine:3.20").as_deref(),
            Some("docker.io/library/alpine:3.20")
        );
        assert_eq!(
            normalize_reference("ghcr.io/o/r").as_deref(),
            Some("ghcr.io/o/r:latest")
        );
        assert_eq!(
            normalize_reference("localhost:5000/x:1").as_deref(),
            Some("localhost:5000/x:1")
        );
        assert_eq!(normalize_reference("Alpine"), None);
        assert_eq!(normalize_reference("a b"), None);
        assert_eq!(normalize_reference("alpine:"), None);
    }

    #[test]
    fn ports_and_signals() {
        assert_eq!(parse_port_spec("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port_spec("8000-8001").unwrap(),
            ["8000/tcp", "8001/tcp"]
        );
        assert_eq!(parse_port_spec("80/xyz").unwrap_err(), "invalid proto: xyz");
        assert_eq!(
            parse_port_spec("abc").unwrap_err(),
            "invalid containerPort: abc"
        );
        assert!(
            valid_signal("SIGTERM")
                && valid_signal("term")
                && valid_signal("9")
                && valid_signal("SIGRTMIN+3")
        );
        assert!(!valid_signal("SIGNOPE") && !valid_signal("0"));
        assert_eq!(
            suggest("buidler", &["builder".to_owned(), "dev".to_owned()]).as_deref(),
            Some("builder")
        );
        assert_eq!(suggest("nosuch", &["foo".to_owned()]), None);
    }
}
