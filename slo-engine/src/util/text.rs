//! Values in messages: quoted, cut, on one line, never a control character.

use std::path::Path;

pub use cellwatch_http::text::{QUOTE_CHARS, quote};

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

pub fn show_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars().count() > 4 * QUOTE_CHARS {
        clip(&s)
    } else {
        s.replace(|c: char| c.is_control(), "?")
    }
}

/// A message on one line: line breaks (a regex error's, a YAML parser's) become `; `, and a
/// message that quotes a huge value anyway is cut.
pub fn one_line(m: &str) -> String {
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
