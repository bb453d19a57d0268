//! Log lines on stderr through `tracing`: a UTC timestamp, a level, who
//! says it, what happened; as text (`2026-11-25T18:10:25.123Z WARN
//! node-a: …`) or, with `--log-format json`, one JSON object a line. A
//! closed stderr (a log pipe whose reader died) costs the lines, never
//! the process.

use std::fmt;
use std::io::Write as _;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskweave_postgres::{Level, LogLine};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::args::Args;

static INSTALLED: Once = Once::new();

/// Installs the log's format from `--log-format` (`text` or `json`), once;
/// a later call, or [`logger`] before any, keeps the first.
pub(crate) fn install(args: &Args) -> Result<(), String> {
    let json = match args.value("--log-format") {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(args.wrong(&format!("--log-format {other:?}: expected text or json")));
        }
    };
    install_format(json);
    Ok(())
}

fn install_format(json: bool) {
    INSTALLED.call_once(|| {
        // A closed stderr makes a write fail: the line is lost, and
        // tracing-subscriber must not report it on that same stderr (it
        // would panic).
        let builder = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .log_internal_errors(false);
        let _ = if json {
            let subscriber = builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
        } else {
            let subscriber = builder.event_format(TextLine).finish();
            tracing::subscriber::set_global_default(subscriber)
        };
    });
}

/// A log for `who`: each line an event at its level, with `who` as a
/// field.
pub(crate) fn logger(who: String) -> impl FnMut(LogLine<'_>) {
    install_format(false);
    move |line: LogLine<'_>| {
        let text = line.text;
        match line.level {
            Level::Info => tracing::info!(who = %who, "{text}"),
            Level::Warn => tracing::warn!(who = %who, "{text}"),
            Level::Error => tracing::error!(who = %who, "{text}"),
        }
    }
}

/// The text form: `TIME LEVEL WHO: MESSAGE`.
struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // One event, one line: a message's own line breaks (a server's
        // DETAIL and HINT) are written as `\n`.
        writeln!(
            writer,
            "{} {} {}: {}",
            timestamp(SystemTime::now()),
            event.metadata().level(),
            fields.who,
            fields.message.replace('\n', "\\n")
        )
    }
}

/// An event's `who` and `message`.
#[derive(Default)]
struct Fields {
    who: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "who" => self.who = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

/// `line` on stderr, unstamped (a command's own message), whatever
/// became of stderr.
pub(crate) fn complain(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `at` as RFC 3339 in UTC, to the millisecond: `2026-11-25T18:10:25.123Z`
/// (the epoch for an instant before it).
pub(crate) fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> String {
        timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_700_000_000, 999), "2023-11-14T22:13:20.999Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(
            timestamp(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
