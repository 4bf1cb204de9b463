//! One-line error text helpers shared by the exporter and the engine: values quoted and cut
//! short, and deserialization errors with the values they quote hidden (they may be secrets).

/// How many characters of a value a message quotes.
pub const QUOTE_CHARS: usize = 100;

/// A value quoted for a message, at most [`QUOTE_CHARS`] characters: `"studio-a"`; a longer
/// value is cut and its length given (`"aaaa…"… (4096 bytes)`).
pub fn quote(v: &str) -> String {
    let cut: String = v.chars().take(QUOTE_CHARS).collect();
    if cut.len() < v.len() {
        format!("{cut:?}… ({} bytes)", v.len())
    } else {
        format!("{cut:?}")
    }
}

/// A deserialization error without the value it quotes (`invalid type: string "…", expected
/// a map`): the value may be a password. Field names (in backticks) stay; one line.
pub fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..i]);
        // The value runs to the last quote before the next `, expected` (or the end).
        let tail = &rest[i + 1..];
        let end = tail
            .find("\", expected")
            .or_else(|| tail.rfind('"'))
            .unwrap_or(tail.len());
        out.push_str("(value not shown)");
        rest = tail.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    let line = out.lines().next().unwrap_or("").to_string();
    if line.chars().count() > 200 {
        line.chars().take(200).collect::<String>() + "…"
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_cut_short() {
        assert_eq!(quote("TLS11"), "\"TLS11\"");
        let long = quote(&"x".repeat(500));
        assert_eq!(long, format!("{:?}… (500 bytes)", "x".repeat(QUOTE_CHARS)));
    }

    #[test]
    fn quoted_values_are_hidden_and_field_names_kept() {
        let e = redact("invalid type: string \"hunter2\", expected a map at line 1\nmore");
        assert_eq!(
            e,
            "invalid type: string (value not shown), expected a map at line 1"
        );
        let e = redact("unknown field `rate_limit`, expected one of `a`, `b`");
        assert!(e.contains("`rate_limit`"), "{e}");
        assert!(redact(&"y".repeat(1000)).chars().count() <= 201);
    }
}
