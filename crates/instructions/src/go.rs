//! Small Go standard-library behaviours BuildKit relies on, reproduced exactly.
//!
//! BuildKit validates flag values with Go's `time.ParseDuration`, `strconv.ParseInt`,
//! `strconv.ParseUint`, `strconv.ParseBool`, a single-line CSV reader (`go-csvvalue`) and
//! `go-units`' `RAMInBytes`, and suggests fixes with a Levenshtein distance. What these
//! accept, and the text of their errors, is part of the Dockerfile language, so each is
//! rewritten here with the same rules.

/// A nanosecond count as Go's `time.Duration` (signed 64-bit).
pub(crate) type GoDuration = i64;

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units `ns us µs μs ms s m h`.
/// The error is Go's message (`time: invalid duration "x"`).
pub(crate) fn parse_duration(text: &str) -> Result<GoDuration, String> {
    const MAX: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {}", time_quote(text));
    let mut rest = text;
    let mut negative = false;
    if let Some(first) = rest.bytes().next()
        && (first == b'-' || first == b'+')
    {
        negative = first == b'-';
        rest = &rest[1..];
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let before = rest.len();
        let (whole, after) = leading_int(rest).ok_or_else(invalid)?;
        rest = after;
        let had_whole = before != rest.len();
        let mut fraction = 0u64;
        let mut scale = 1f64;
        let mut had_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let before = after_dot.len();
            let (f, s, after) = leading_fraction(after_dot);
            fraction = f;
            scale = s;
            rest = after;
            had_fraction = before != rest.len();
        }
        if !had_whole && !had_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .bytes()
            .position(|b| b == b'.' || b.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(text)
            ));
        }
        let (unit_text, after) = rest.split_at(unit_len);
        rest = after;
        let unit: u64 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(unit_text),
                    time_quote(text)
                ));
            }
        };
        if whole > MAX / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Truncating conversion, as Go's uint64(float64) does for these magnitudes.
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > MAX {
                return Err(invalid());
            }
        }
        // Go adds in uint64 and only then compares, so 2^63 + 2^63 wraps to 0: same here.
        total = total.wrapping_add(value);
        if total > MAX {
            return Err(invalid());
        }
    }
    if negative {
        // total <= 2^63, so the negation fits (2^63 itself becomes i64::MIN).
        return Ok((total as i64).wrapping_neg());
    }
    if total > MAX - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// `[0-9]*` as an integer; `None` on overflow past 2^63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let mut value: u64 = 0;
    let mut end = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        if value > (1 << 63) / 10 {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
        if value > 1 << 63 {
            return None;
        }
        end += 1;
    }
    Some((value, &s[end..]))
}

/// `[0-9]*` after a decimal point: digits past the precision limit are consumed and ignored.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let mut value: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    let mut end = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        end += 1;
        if overflow {
            continue;
        }
        if value > ((1u64 << 63) - 1) / 10 {
            overflow = true;
            continue;
        }
        let next = value * 10 + u64::from(b - b'0');
        if next > 1 << 63 {
            overflow = true;
            continue;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale, &s[end..])
}

/// The `time` package's own quoting: `"`…`"`, `"` and `\` escaped, bytes of non-ASCII or
/// control characters as `\xHH`.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if !c.is_ascii() || c < ' ' {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Why Go's `strconv` rejected a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    /// Not a number at all (`invalid syntax`).
    Syntax,
    /// A number too large for the bit size (`value out of range`).
    Range,
}

impl NumError {
    /// Go's text for the error kind.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "invalid syntax",
            Self::Range => "value out of range",
        }
    }
}

/// Go's `strconv.ParseUint(s, base, bits)` for base 8 or 10 (no prefixes, no underscores).
pub(crate) fn parse_uint(s: &str, base: u32, bits: u32) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let max: u128 = (1u128 << bits) - 1;
    let mut value: u128 = 0;
    let mut overflow = false;
    for c in s.chars() {
        let digit = c.to_digit(base).ok_or(NumError::Syntax)?;
        if !overflow {
            value = value * u128::from(base) + u128::from(digit);
            if value > max {
                overflow = true;
            }
        }
    }
    if overflow {
        return Err(NumError::Range);
    }
    u64::try_from(value).map_err(|_| NumError::Range)
}

/// Go's `strconv.ParseInt(s, 10, 32)`.
pub(crate) fn parse_int32(s: &str) -> Result<i64, NumError> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_uint(digits, 10, 63).map_err(|e| match e {
        NumError::Syntax => NumError::Syntax,
        NumError::Range => NumError::Range,
    })?;
    if negative {
        if magnitude > 1 << 31 {
            return Err(NumError::Range);
        }
        Ok(-(magnitude as i64))
    } else {
        if magnitude > (1 << 31) - 1 {
            return Err(NumError::Range);
        }
        Ok(magnitude as i64)
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `go-units`' `RAMInBytes`: a number with an optional binary suffix (`64m`, `1 GiB`, `512k`).
pub(crate) fn ram_in_bytes(text: &str) -> Option<i64> {
    let sep = text.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')?;
    let (number, suffix) = if text.as_bytes()[sep] == b' ' {
        (&text[..sep], &text[sep + 1..])
    } else {
        (&text[..=sep], &text[sep + 1..])
    };
    let size = parse_go_float(number)?;
    if size < 0.0 {
        return None;
    }
    if suffix.is_empty() {
        return Some(size as i64);
    }
    if suffix.len() > 3 {
        return None;
    }
    let suffix = suffix.to_ascii_lowercase();
    let mut chars = suffix.chars();
    let unit = chars.next()?;
    if unit == 'b' {
        return (suffix.len() == 1).then_some(size as i64);
    }
    let multiplier: f64 = match unit {
        'k' => 1024.0,
        'm' => 1024.0 * 1024.0,
        'g' => 1024.0 * 1024.0 * 1024.0,
        't' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        'p' => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let tail = chars.as_str();
    match tail.len() {
        0 => {}
        1 if tail == "b" => {}
        2 if tail == "ib" => {}
        _ => return None,
    }
    Some((size * multiplier) as i64)
}

/// The decimal subset of Go's `strconv.ParseFloat` that `RAMInBytes` can be given: an
/// optional sign, digits with an optional fraction, an optional exponent.
fn parse_go_float(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let valid = !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !valid {
        return None;
    }
    text.parse::<f64>().ok()
}

/// A single-line CSV value split into fields (`go-csvvalue`'s `Fields`): `,` separates,
/// a field may be wrapped in `"` with `""` for a literal quote. The error text is Go's
/// `csv.ParseError` (`parse error on line 1, column 3: bare " in non-quoted-field`), or `EOF`
/// for an empty value.
pub(crate) fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    if line.is_empty() {
        return Err("EOF".to_owned());
    }
    let parse_error =
        |pos: usize, what: &str| format!("parse error on line 1, column {}: {what}", pos + 1);
    const BARE_QUOTE: &str = "bare \" in non-quoted-field";
    const QUOTE: &str = "extraneous or missing \" in quoted-field";
    let mut fields = Vec::new();
    let mut rest = line;
    let mut pos = 0;
    'field: loop {
        if !rest.starts_with('"') {
            let end = rest.find(',');
            let field = &rest[..end.unwrap_or(rest.len())];
            if let Some(quote) = field.find('"') {
                return Err(parse_error(pos + quote, BARE_QUOTE));
            }
            fields.push(field.to_owned());
            match end {
                Some(end) => {
                    rest = &rest[end + 1..];
                    pos += end + 1;
                    continue;
                }
                None => break,
            }
        }
        rest = &rest[1..];
        pos += 1;
        let mut field = String::new();
        loop {
            let Some(quote) = rest.find('"') else {
                return Err(parse_error(pos, QUOTE));
            };
            field.push_str(&rest[..quote]);
            rest = &rest[quote + 1..];
            pos += quote + 1;
            if rest.starts_with('"') {
                field.push('"');
                rest = &rest[1..];
                pos += 1;
            } else if rest.starts_with(',') {
                fields.push(field);
                rest = &rest[1..];
                pos += 1;
                continue 'field;
            } else if rest.is_empty() {
                fields.push(field);
                break 'field;
            } else {
                return Err(parse_error(pos - 1, QUOTE));
            }
        }
    }
    Ok(fields)
}

/// BuildKit's `suggest.WrapError` choice: the option closest to `value`, if closer than 3
/// edits, and `None` when `value` is itself an option.
pub(crate) fn suggest<'a>(value: &str, options: &[&'a str]) -> Option<&'a str> {
    hoist_dockerfile::closest_match(value, options.iter().copied())
}

/// Formats a `suggest` result the way BuildKit appends it: ` (did you mean x?)`.
pub(crate) fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("50ns"), Ok(50));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("1h2m3s"), Ok(3_723_000_000_000));
        assert_eq!(parse_duration("-1ms"), Ok(-1_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration(".5m"), Ok(30_000_000_000));
        assert_eq!(parse_duration("1\u{b5}s"), Ok(1_000));
        assert_eq!(
            parse_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_duration("10x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"10x\""
        );
        assert_eq!(
            parse_duration("").unwrap_err(),
            "time: invalid duration \"\""
        );
        assert_eq!(
            parse_duration(".s").unwrap_err(),
            "time: invalid duration \".s\""
        );
        assert!(parse_duration("9999999999999999999h").is_err());
        assert_eq!(parse_duration("-9223372036854775808ns"), Ok(i64::MIN));
        assert!(parse_duration("9223372036854775808ns").is_err());
        assert_eq!(
            parse_duration("9223372036854775808ns9223372036854775808ns"),
            Ok(0)
        );
        assert_eq!(
            parse_duration("\u{e9}s").unwrap_err(),
            "time: invalid duration \"\\xc3\\xa9s\""
        );
    }

    #[test]
    fn numbers_like_strconv() {
        assert_eq!(parse_uint("0755", 8, 32), Ok(0o755));
        assert_eq!(parse_uint("8", 8, 32), Err(NumError::Syntax));
        assert_eq!(parse_uint("4294967296", 10, 32), Err(NumError::Range));
        assert_eq!(parse_uint("-1", 10, 32), Err(NumError::Syntax));
        assert_eq!(parse_int32("-1"), Ok(-1));
        assert_eq!(parse_int32("+3"), Ok(3));
        assert_eq!(parse_int32("2147483648"), Err(NumError::Range));
        assert_eq!(parse_int32("-2147483648"), Ok(-2_147_483_648));
        assert_eq!(parse_int32("1_0"), Err(NumError::Syntax));
        assert_eq!(parse_int32(""), Err(NumError::Syntax));
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(ram_in_bytes("64m"), Some(64 * 1024 * 1024));
        assert_eq!(ram_in_bytes("1 GiB"), Some(1024 * 1024 * 1024));
        assert_eq!(ram_in_bytes("512"), Some(512));
        assert_eq!(ram_in_bytes("10b"), Some(10));
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("10x"), None);
        assert_eq!(ram_in_bytes("10mbb"), None);
        assert_eq!(ram_in_bytes("m"), None);
        assert_eq!(ram_in_bytes("-1"), None);
    }

    #[test]
    fn csv_like_go() {
        assert_eq!(csv_fields("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert_eq!(csv_fields("\"a,b\",c").unwrap(), ["a,b", "c"]);
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), ["a\"b"]);
        assert_eq!(csv_fields("").unwrap_err(), "EOF");
        assert_eq!(
            csv_fields("a\"b").unwrap_err(),
            "parse error on line 1, column 2: bare \" in non-quoted-field"
        );
        assert_eq!(
            csv_fields("\"ab").unwrap_err(),
            "parse error on line 1, column 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            csv_fields("\"a\"b").unwrap_err(),
            "parse error on line 1, column 3: extraneous or missing \" in quoted-field"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "[-+0-9.a-z\u{b5}\u{3bc}\"', ]{0,40}|\\PC{0,40}") {
            let _ = parse_duration(&text);
            let _ = parse_uint(&text, 8, 32);
            let _ = parse_int32(&text);
            let _ = ram_in_bytes(&text);
            let _ = csv_fields(&text);
            let _ = suggest(&text, &["type", "target"]);
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("--form", &["--from", "--chown"]), Some("--from"));
        assert_eq!(suggest("--from", &["--from"]), None);
        assert_eq!(suggest("zzzzzz", &["--from"]), None);
    }
}
