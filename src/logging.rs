//! How `tomato` writes its own log to stderr: plain text, coloured only for a person at a
//! terminal, or JSON lines for a log collector.
//!
//! The choice is a pure function of the environment ([`LogStyle::choose`]) so it is tested
//! without a terminal; [`init`] carries it out once at start.

use std::io::IsTerminal;

/// What the log looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Human-readable lines; `colour` adds ANSI colour codes.
    Text { colour: bool },
    /// One JSON object per line (`TOMATO_LOG_FORMAT=json`), never coloured.
    Json,
}

impl LogStyle {
    /// The style for the environment: `TOMATO_LOG_FORMAT` (`json` or `text`, the default),
    /// whether stderr is a terminal, and `NO_COLOR` (any non-empty value turns colour off,
    /// see <https://no-color.org>). Colour codes in a file or a pipe are noise, so they are
    /// written only to a terminal.
    pub fn choose(
        format: Option<&str>,
        stderr_is_terminal: bool,
        no_color: Option<&str>,
    ) -> Result<Self, String> {
        match format.map(str::trim).unwrap_or("") {
            "json" => Ok(LogStyle::Json),
            "" | "text" => Ok(LogStyle::Text {
                colour: stderr_is_terminal && no_color.is_none_or(str::is_empty),
            }),
            other => Err(format!(
                "TOMATO_LOG_FORMAT={other:?} is not a log format; use text (the default) or json"
            )),
        }
    }
}

/// Starts the log: level filter from `TOMATO_LOG` (default `info,tower_http=warn`), style
/// from [`LogStyle::choose`]. An unknown `TOMATO_LOG_FORMAT` is an error for `main` to report.
pub fn init() -> Result<(), String> {
    let style = LogStyle::choose(
        std::env::var("TOMATO_LOG_FORMAT").ok().as_deref(),
        std::io::stderr().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    )?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOMATO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match style {
        LogStyle::Json => builder.json().with_ansi(false).init(),
        LogStyle::Text { colour } => builder.with_ansi(colour).init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_is_only_for_a_terminal_and_no_color_turns_it_off() {
        let text = |colour| Ok(LogStyle::Text { colour });
        assert_eq!(LogStyle::choose(None, true, None), text(true));
        assert_eq!(
            LogStyle::choose(None, false, None),
            text(false),
            "a file or a pipe"
        );
        assert_eq!(LogStyle::choose(None, true, Some("1")), text(false));
        assert_eq!(
            LogStyle::choose(Some("text"), true, Some("")),
            text(true),
            "an empty NO_COLOR is unset (no-color.org)"
        );
    }

    #[test]
    fn json_lines_are_chosen_by_name_and_a_typo_is_refused() {
        assert_eq!(LogStyle::choose(Some("json"), true, None), Ok(LogStyle::Json));
        let e = LogStyle::choose(Some("jsno"), false, None).unwrap_err();
        assert!(e.contains("TOMATO_LOG_FORMAT=\"jsno\""), "{e}");
    }
}
