//! Service logs: what `sit run`, `sit collect`, `sit worker` and `sit serve` say while they
//! run, through `tracing`, on standard error.
//!
//! Every message is an event with a level (errors that stop a part of the service, warnings
//! for a retry or a refusal, information for what was done) and a target naming the
//! component that says it (`sit::service`, `sit::publisher::day`, `sit::network::collect`,
//! `sit::network::ship`, `sit::server`), so an operator's log pipeline can route and filter
//! them. Three formats (`--log-format`):
//! - `text` (the default): the message alone, one a line, as the service has always written
//!   it, so that a terminal and a test that reads standard error see the same text;
//! - `full`: time (UTC), level, target and message;
//! - `json`: one JSON object a line with `timestamp`, `level`, `target` and `fields.message`.
//!
//! `SIT_LOG` filters with the usual directives (`warn`, `sit::server=debug,info`); the
//! default is `info`. No message carries a key or a secret: keys are read from files or named
//! environment variables and only their ids and the variables' names are ever formatted.

use std::fmt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How service logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The message alone (the default).
    #[default]
    Text,
    /// Time, level, target and message.
    Full,
    /// One JSON object a line.
    Json,
}

impl Format {
    /// The names `--log-format` takes.
    pub const NAMES: [&'static str; 3] = ["text", "full", "json"];

    /// The format named `s` (one of [`Format::NAMES`]).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "full" => Some(Format::Full),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The environment variable holding the filter directives.
pub const FILTER_VAR: &str = "SIT_LOG";

/// Install the process's log subscriber (once; a second call changes nothing). A bad
/// `SIT_LOG` is an error naming it.
pub fn init(format: Format) -> Result<(), String> {
    let filter = match std::env::var(FILTER_VAR) {
        Ok(s) if !s.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&s).map_err(|e| {
                format!("{FILTER_VAR}={s:?}: {e} (try `info`, `warn` or `sit::server=debug,info`)")
            })?
        }
        // object_store says each retry of a request at info; the mirror reports what failed
        _ => tracing_subscriber::EnvFilter::new("info,object_store=warn"),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        Format::Text => b.event_format(MessageOnly).try_init(),
        Format::Full => b.with_target(true).try_init(),
        Format::Json => b.json().with_target(true).try_init(),
    };
    Ok(())
}

/// The message of an event and nothing else (other fields, if any, follow as `key=value`).
struct MessageOnly;

impl<S, N> FormatEvent<S, N> for MessageOnly
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
