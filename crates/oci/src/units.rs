//! Sizes, durations and timestamps the way Docker prints and parses them (`github.com/docker/go-units`), so that
//! `hoist images` and `hoist prune` read like their Docker counterparts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// A size in decimal units with 3 significant digits, as `docker images` shows it: `1.99MB`, `512B`, `12.3kB`.
pub fn human_size_short(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// A size in decimal units with 4 significant digits, as `docker system prune` reports reclaimed space: `12.35MB`.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 4)
}

fn human_size_with_precision(bytes: u64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    // Lossy above 2^53 bytes, as in Go, where the value is a float64 too.
    #[allow(clippy::cast_precision_loss)]
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(size, precision), UNITS[unit])
}

/// Go's `%.<precision>g`: `precision` significant digits, trailing zeros removed, exponent form for large or tiny
/// exponents (`1e+03`).
fn format_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let precision = precision.max(1);
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` output always contains an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponents are integers");
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    let precision = i32::try_from(precision).unwrap_or(i32::MAX);
    if exponent < -4 || exponent >= precision {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exponent.abs())
    } else {
        let decimals = usize::try_from(precision - 1 - exponent).unwrap_or(0);
        strip(&format!("{value:.decimals$}"))
    }
}

/// Parses a size like Docker's `--keep-storage` (go-units `RAMInBytes`): a number, an optional space, and an
/// optional unit `k`, `m`, `g`, `t`, `p` with optional `i` and `b`, case-insensitive. Units are binary, as in
/// Docker: `10GB` and `10GiB` both mean 10 × 1024³ bytes; a bare number or `B` is bytes.
pub fn parse_size(input: &str) -> Result<u64> {
    let invalid = || Error::InvalidSize {
        input: input.to_owned(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut rest = unit.as_str();
    let mut multiplier = 1u64;
    if let Some(first) = rest.chars().next() {
        let power = match first {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(power) = power {
            multiplier = 1024u64.pow(power);
            rest = &rest[1..];
        }
    }
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(invalid());
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let bytes = (value * multiplier as f64) as u64;
    Ok(bytes)
}

/// How long ago, as `docker images` prints the CREATED column (go-units `HumanDuration`): `Less than a second`,
/// `About a minute`, `2 hours`, `3 weeks`, …
pub fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    let minutes = seconds / 60;
    // Hours round to nearest, as go-units does.
    let hours = (elapsed.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        () if seconds < 1 => "Less than a second".to_owned(),
        () if seconds == 1 => "1 second".to_owned(),
        () if seconds < 60 => format!("{seconds} seconds"),
        () if minutes == 1 => "About a minute".to_owned(),
        () if minutes < 60 => format!("{minutes} minutes"),
        () if hours == 1 => "About an hour".to_owned(),
        () if hours < 48 => format!("{hours} hours"),
        () if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        () if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        () if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        () => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05.123456789Z`, or with a `+hh:mm` offset), as image configs
/// carry in `created`. Returns `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<9}", &fraction[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let whole = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        Some(UNIX_EPOCH + whole + Duration::from_nanos(u64::from(nanos)))
    } else {
        Some(UNIX_EPOCH - whole + Duration::from_nanos(u64::from(nanos)))
    }
}

/// A time as Docker's `CreatedAt` prints it (Go's `time.Time.String()` in UTC): `2026-11-24 00:23:45 +0000 UTC`.
pub fn format_docker_time(time: SystemTime) -> String {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            // Round toward the earlier second, as the calendar does.
            let before = before.duration();
            -i64::try_from(before.as_secs()).unwrap_or(i64::MAX)
                - i64::from(before.subsec_nanos() > 0)
        }
    };
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size_short(1_985_472), "1.99MB");
        assert_eq!(human_size_short(0), "0B");
        assert_eq!(human_size_short(512), "512B");
        assert_eq!(human_size_short(1_500), "1.5kB");
        assert_eq!(human_size_short(2_000_000), "2MB");
        assert_eq!(human_size_short(77_800_000), "77.8MB");
        // Go prints this one in exponent form too.
        assert_eq!(human_size_short(999_999), "1e+03kB");
        assert_eq!(human_size(12_345_678), "12.35MB");
        assert_eq!(human_size(1_985_472), "1.985MB");
    }

    #[test]
    fn sizes_parse_like_docker_keep_storage() {
        assert_eq!(parse_size("10GB").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size("512mb").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("100B").unwrap(), 100);
        assert_eq!(parse_size("2 g").unwrap(), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("0").unwrap(), 0);
        for bad in ["", "GB", "10XB", "-1", "1..2", "10 GB extra", ".5"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_like_docker() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(45)), "45 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(10 * 60)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(2 * 3600)), "2 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(21 * 86_400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86_400)), "3 months");
        assert_eq!(human_duration(s(3 * 365 * 86_400)), "3 years");
    }

    #[test]
    fn times_print_like_docker_created_at() {
        for text in [
            "2026-11-24T00:23:45Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "1969-12-31T23:59:59Z",
        ] {
            let time = parse_timestamp(text).unwrap();
            let printed = format_docker_time(time);
            assert_eq!(
                printed,
                format!("{} {} +0000 UTC", &text[..10], &text[11..19])
            );
        }
    }

    #[test]
    fn timestamps_parse_with_fraction_and_offset() {
        let at = |secs: u64, nanos: u64| {
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos)
        };
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_timestamp("2026-11-24T00:23:45.705034338Z"),
            Some(at(1_795_479_825, 705_034_338))
        );
        assert_eq!(
            parse_timestamp("2026-11-24T02:23:45.5+02:00"),
            Some(at(1_795_479_825, 500_000_000))
        );
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59Z"),
            Some(UNIX_EPOCH - Duration::from_secs(1))
        );
        for bad in [
            "",
            "2026-11-24",
            "2026-13-01T00:00:00Z",
            "2026-11-24T00:00:00",
            "2026-11-24T00:00:00.Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
