//! How client commands print: tables for people, one JSON document (or JSON lines for `tail`)
//! for scripts, errors on stderr, and a spinner on stderr while something waits.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use comfy_table::{presets, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::value::RawValue;
use syros_client::Error;

use super::exit;

/// What a command prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON document per command (JSON lines for `events tail`), stable field names.
    Json,
}

/// A table with a header row, in the borderless style of `kubectl get`.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// Print one record as two columns, FIELD VALUE.
pub fn print_record(rows: Vec<(&str, String)>) {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (field, value) in rows {
        table.add_row(vec![field.to_string(), value]);
    }
    print_table(&table);
}

/// Print a table on stdout, without the padding comfy-table leaves at line ends.
pub fn print_table(table: &Table) {
    println!("{}", table.trim_fmt());
}

/// Print `value` as one pretty JSON document on stdout.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("syros: cannot encode the output as JSON: {err}"),
    }
}

/// Print `value` as one JSON line on stdout, flushed at once (for followers such as `tail`).
pub fn print_json_line(value: &impl Serialize) {
    if let Ok(text) = serde_json::to_string(value) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }
}

/// Report a failed command on stderr (with its error code) and return its exit status.
pub fn report_error(err: &Error, format: OutputFormat) -> u8 {
    let exit_code = exit::code_for(err.kind);
    match format {
        OutputFormat::Table => {
            eprintln!("syros: error[{}]: {}", err.code(), err.message);
            if !err.details.is_empty() {
                let details: Vec<String> = err
                    .details
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                eprintln!("  ({})", details.join(", "));
            }
        }
        OutputFormat::Json => {
            let document = serde_json::json!({
                "error": {
                    "code": err.code(),
                    "message": err.message,
                    "retryable": err.retryable,
                    "details": err.details,
                    "exit_code": exit_code,
                }
            });
            eprintln!("{document}");
        }
    }
    exit_code
}

/// JSON text the server stored (event data, saga input and outputs), embedded as it is; text
/// that is not valid JSON is embedded as a string.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddedJson {
    /// Valid JSON, passed through unparsed.
    Json(Box<RawValue>),
    /// Anything else.
    Text(String),
}

impl EmbeddedJson {
    /// `text` as JSON when it is JSON.
    pub fn new(text: &str) -> EmbeddedJson {
        RawValue::from_string(text.to_string())
            .map(EmbeddedJson::Json)
            .unwrap_or_else(|_| EmbeddedJson::Text(text.to_string()))
    }
}

/// A server timestamp (ms since the Unix epoch) as RFC 3339 UTC, `-` for none.
pub fn timestamp(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        _ => "-".to_string(),
    }
}

/// How far a server timestamp is from now, as `in 9s` or `3m 2s ago` (whole seconds).
pub fn relative(ms: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let seconds = |delta: i64| {
        humantime::format_duration(Duration::from_secs(delta.unsigned_abs() / 1000)).to_string()
    };
    if ms >= now {
        format!("in {}", seconds(ms - now))
    } else {
        format!("{} ago", seconds(now - ms))
    }
}

/// An elapsed time between two server timestamps, `-` while unfinished.
pub fn elapsed(started_ms: i64, finished_ms: i64) -> String {
    if finished_ms <= 0 || finished_ms < started_ms {
        return "-".to_string();
    }
    let ms = u64::try_from(finished_ms - started_ms).unwrap_or(0);
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// A spinner on stderr while the command waits; drawn only when stderr is a terminal, so
/// scripts and pipes see nothing of it.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Start spinning with `message`.
    pub fn start(message: impl Into<String>) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }

    /// Remove the spinner from the terminal.
    pub fn stop(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}
