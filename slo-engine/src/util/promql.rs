//! PromQL text: the one way every query the engine sends or generates writes a label regex, a
//! bucket bound and a duration.

/// `s` as a regular expression matching exactly `s`, inside a PromQL double-quoted string:
/// RE2 metacharacters get a backslash, then the string's own escapes double every backslash
/// and escape `"`. `studio-a.ams1` becomes `studio-a\\.ams1`, which Prometheus reads as the
/// regex `studio-a\.ams1` (a lone `\.` in a PromQL string is a parse error).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '"' => out.push_str("\\\""),
            c if ".+*?()|[]{}^$".contains(c) => {
                out.push_str("\\\\");
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A regex alternation of exactly `values`, for `label=~"…"` in a PromQL string.
pub fn any_of<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| regex_escape(v.as_ref()))
        .collect::<Vec<_>>()
        .join("|")
}

/// The `le` matcher of a bucket bound: Prometheus 2 stores `le="2"`, Prometheus 3 `le="2.0"`.
pub fn le_matcher(t: f64) -> String {
    if t.fract() == 0.0 {
        format!("le=~\"{t}|{t}\\\\.0\"")
    } else {
        format!("le=\"{t}\"")
    }
}

/// Seconds as a PromQL duration in its largest whole unit: `5m`, `2h`, `30d`, `90s`.
pub fn duration(secs: u64) -> String {
    if secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_metacharacters_and_quotes_are_escaped_for_a_promql_string() {
        assert_eq!(regex_escape("studio-a.ams1"), r"studio-a\\.ams1");
        assert_eq!(regex_escape("gpu:pool_1"), "gpu:pool_1");
        assert_eq!(regex_escape(r#"a"b\c(d)"#), r#"a\"b\\\\c\\(d\\)"#);
        assert_eq!(any_of(&["b.c", "a"]), r"b\\.c|a");
    }

    #[test]
    fn durations_use_the_largest_whole_unit() {
        assert_eq!(duration(300), "5m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(30 * 86400), "30d");
        assert_eq!(duration(90), "90s");
    }
}
