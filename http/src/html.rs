//! HTML text: the one escape every page and HTML mail uses.

/// `s` escaped for HTML text and double-quoted attribute values: `&`, `<`, `>` and `"`.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped_ampersands_first() {
        assert_eq!(
            escape(r#"<a href="x?a=1&b=2">&amp;</a>"#),
            "&lt;a href=&quot;x?a=1&amp;b=2&quot;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("it's plain"), "it's plain");
    }
}
