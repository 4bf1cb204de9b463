//! `rdma_ctl status`: `enabled` or `disabled`.

use super::ParseError;

const WHAT: &str = "rdma_ctl status output";

/// Whether RDMA is enabled. Whole words are compared, so "not enabled" is not enabled.
pub fn parse(text: &str) -> Result<bool, ParseError> {
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    let negated = words
        .windows(2)
        .any(|w| matches!(w[0], "not" | "isn" | "isnt") && w[1] == "enabled");
    if words.contains(&"disabled") || negated {
        Ok(false)
    } else if words.contains(&"enabled") {
        Ok(true)
    } else {
        Err(ParseError::invalid(
            WHAT,
            format!("neither enabled nor disabled: {:?}", text.trim()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_not_substrings() {
        assert_eq!(parse("enabled\n"), Ok(true));
        assert_eq!(parse("RDMA is Enabled"), Ok(true));
        assert_eq!(parse("disabled\n"), Ok(false));
        assert_eq!(parse("RDMA is not enabled"), Ok(false));
        assert!(parse("").is_err());
        assert!(parse("unknown state").is_err());
    }
}
