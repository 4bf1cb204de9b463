use super::*;
use std::path::Path;
use std::time::Duration;

/// A value for a message: on one line, at most [`QUOTE_CHARS`] characters, control characters
/// escaped; a longer value is cut and its length given.
pub fn clip(v: &str) -> String {
    let mut out = String::new();
    for (n, c) in v.chars().enumerate() {
        if n == QUOTE_CHARS {
            out.push_str(&format!("… ({} bytes)", v.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value quoted for a message, cut as [`clip`] cuts it: `"studio-a"`.
pub fn quote(v: &str) -> String {
    let cut: String = v.chars().take(QUOTE_CHARS).collect();
    if cut.len() < v.len() {
        format!("{cut:?}… ({} bytes)", v.len())
    } else {
        format!("{cut:?}")
    }
}

pub(super) fn show_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars().count() > 4 * QUOTE_CHARS {
        clip(&s)
    } else {
        s.replace(|c: char| c.is_control(), "?")
    }
}

/// A message on one line: line breaks (a regex error's, a YAML parser's) become `; `, and a
/// message that quotes a huge value anyway is cut.
pub(super) fn one_line(m: &str) -> String {
    let joined = m
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(|c: char| c.is_control(), "?");
    if joined.chars().count() > 6 * QUOTE_CHARS {
        let cut: String = joined.chars().take(6 * QUOTE_CHARS).collect();
        format!("{cut}… (cut)")
    } else {
        joined
    }
}

/// A regex crate error on one line: its last line says what is wrong (`unclosed group`); the
/// pattern and the caret line above it are left out.
pub fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or("invalid syntax")
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled expression is larger than {limit} bytes")
        }
        other => one_line(&other.to_string()),
    }
}

/// Parses a duration (`30s`, `5m`, `30d`) of at most [`MAX_DURATION`]; the message says what is
/// wrong without naming the field.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => {
            format!(
                "{} is out of range: durations are at most 10 years",
                quote(s)
            )
        }
        e => format!("{}: {e} (examples: 500ms, 2s, 5m, 30d)", quote(s)),
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "{} is out of range: durations are at most 10 years",
            quote(s)
        ));
    }
    Ok(d)
}

pub(super) fn parse_duration(field: &str, s: &str) -> Result<Duration, String> {
    duration(s).map_err(|m| format!("{field} {m}"))
}
