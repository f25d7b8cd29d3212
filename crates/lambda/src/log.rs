//! What the emulator writes: START/END/REPORT lines on stdout (with the function's own output), and its own log
//! lines on stderr in the official format `02 Jan 2006 15:04:05,000 [INFO] (rapid) <message>`.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// logrus levels, least to most verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `panic`
    Panic,
    /// `fatal`
    Fatal,
    /// `error`
    Error,
    /// `warn` (or `warning`)
    Warn,
    /// `info`
    Info,
    /// `debug`
    Debug,
    /// `trace`
    Trace,
}

impl LogLevel {
    /// Parses a logrus level name, case-insensitively.
    pub fn parse(value: &str) -> Option<LogLevel> {
        Some(match value.to_ascii_lowercase().as_str() {
            "panic" => LogLevel::Panic,
            "fatal" => LogLevel::Fatal,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            LogLevel::Panic => "PANIC",
            LogLevel::Fatal => "FATAL",
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARNING",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }
}

/// Where the emulator writes. The binary uses [`Output::stdio`].
pub struct Output {
    reports: Mutex<Box<dyn Write + Send>>,
    logs: Mutex<Box<dyn Write + Send>>,
    level: LogLevel,
}

impl Output {
    /// START/END/REPORT to stdout, the emulator's log lines to stderr, at level info.
    pub fn stdio() -> Output {
        Output::new(Box::new(std::io::stdout()), Box::new(std::io::stderr()))
    }

    /// Any two writers, at level info.
    pub fn new(reports: Box<dyn Write + Send>, logs: Box<dyn Write + Send>) -> Output {
        Output {
            reports: Mutex::new(reports),
            logs: Mutex::new(logs),
            level: LogLevel::Info,
        }
    }

    pub(crate) fn set_level(&mut self, level: LogLevel) {
        self.level = level;
    }

    /// Writes one emulator log line if `level` is enabled. Write failures are ignored: logging never stops an invoke.
    pub(crate) fn log(&self, level: LogLevel, message: &str) {
        if level > self.level {
            return;
        }
        let line = format!(
            "{} [{}] (rapid) {message}\n",
            timestamp(SystemTime::now()),
            level.label()
        );
        if let Ok(mut w) = self.logs.lock() {
            let _ = w.write_all(line.as_bytes()).and_then(|()| w.flush());
        }
    }

    fn report_line(&self, line: &str) {
        if let Ok(mut w) = self.reports.lock() {
            let _ = w.write_all(line.as_bytes()).and_then(|()| w.flush());
        }
    }

    /// Passes the function's own output on, unchanged.
    pub(crate) fn function_output(&self, bytes: &[u8]) {
        if let Ok(mut w) = self.reports.lock() {
            let _ = w.write_all(bytes).and_then(|()| w.flush());
        }
    }

    /// Writes the START line and returns it.
    pub(crate) fn start(&self, request_id: &str, version: &str) -> String {
        let line = format!("START RequestId: {request_id} Version: {version}\n");
        self.report_line(&line);
        line
    }

    /// Writes the END line and returns it.
    pub(crate) fn end(&self, request_id: &str) -> String {
        let line = format!("END RequestId: {request_id}\n");
        self.report_line(&line);
        line
    }

    /// Writes the REPORT line and returns it.
    pub(crate) fn report(&self, report: &Report) -> String {
        let line = report.line();
        self.report_line(&line);
        line
    }

    /// Writes Lambda's `Task timed out` line and returns it.
    pub(crate) fn timed_out(&self, request_id: &str, seconds: u64) -> String {
        let line = format!(
            "{} {request_id} Task timed out after {seconds}.00 seconds\n",
            iso_timestamp(SystemTime::now())
        );
        self.report_line(&line);
        line
    }
}

/// The facts of one REPORT line.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) request_id: String,
    pub(crate) init_duration: Option<Duration>,
    pub(crate) duration: Duration,
    pub(crate) memory_size_mb: u64,
    pub(crate) max_memory_used_mb: u64,
    pub(crate) status: Option<&'static str>,
}

impl Report {
    fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut line = format!("REPORT RequestId: {}\t", self.request_id);
        if let Some(init) = self.init_duration {
            line.push_str(&format!("Init Duration: {:.2} ms\t", ms(init)));
        }
        let billed = ms(self.duration).ceil() as u64;
        line.push_str(&format!(
            "Duration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
            ms(self.duration),
            self.memory_size_mb,
            self.max_memory_used_mb
        ));
        if let Some(status) = self.status {
            line.push_str(&format!("Status: {status}\t"));
        }
        line.push('\n');
        line
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

fn parts(t: SystemTime) -> Parts {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    Parts {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        millis: since.subsec_millis(),
    }
}

/// Go's `02 Jan 2006 15:04:05,000`, in UTC.
fn timestamp(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let p = parts(t);
    let month = MONTHS[(p.month as usize).saturating_sub(1) % 12];
    format!(
        "{:02} {month} {} {:02}:{:02}:{:02},{:03}",
        p.day, p.year, p.hour, p.minute, p.second, p.millis
    )
}

/// `2006-01-02T15:04:05.000Z`, as Lambda prefixes its `Task timed out` line.
fn iso_timestamp(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_go_layouts() {
        let t = UNIX_EPOCH + Duration::from_millis(1_136_214_245_007);
        assert_eq!(timestamp(t), "02 Jan 2006 15:04:05,007");
        assert_eq!(iso_timestamp(t), "2006-01-02T15:04:05.007Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso_timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn report_line_layout() {
        let r = Report {
            request_id: "id".into(),
            init_duration: Some(Duration::from_micros(12_345)),
            duration: Duration::from_micros(1_001),
            memory_size_mb: 3008,
            max_memory_used_mb: 12,
            status: None,
        };
        assert_eq!(
            r.line(),
            "REPORT RequestId: id\tInit Duration: 12.35 ms\tDuration: 1.00 ms\tBilled Duration: 2 ms\t\
             Memory Size: 3008 MB\tMax Memory Used: 12 MB\t\n"
        );
    }
}
