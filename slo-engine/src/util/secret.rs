//! Secrets (API token, basic-auth and SMTP passwords, PagerDuty routing keys, Slack URLs), read
//! one way wherever they come from.
//!
//! **The rule:** a secret is the file's content, or the environment variable's value, with white
//! space at both ends removed (Rust's [`str::trim`]: spaces, tabs, CR and LF). A file written
//! by an editor or `echo` (trailing newline, CRLF on Windows) and a variable set from
//! `$(cat file)` give the same secret, and it is the rule Prometheus and Alertmanager apply to
//! their `*_file` secrets, so files shared with them read alike. A secret cannot begin or end
//! with white space. A file is read only when it is a regular file of at most
//! [`MAX_SECRET_BYTES`]; it is read again at each use, so it can be rotated.

use std::path::Path;

/// The largest secret file read (password, token, routing key, webhook URL: 64 KiB).
pub const MAX_SECRET_BYTES: u64 = 64 << 10;

/// The rule: white space at both ends removed.
pub fn clean(raw: &str) -> &str {
    raw.trim()
}

/// A secret file's secret (see [the rule](self)); the error names the file, never its content.
pub fn read_file(path: &Path) -> Result<String, String> {
    cellwatch_http::file::read_text(path, MAX_SECRET_BYTES)
        .map(|v| clean(&v).to_string())
        .map_err(|e| format!("{}: {e}", crate::util::text::show_path(path)))
}

/// An environment variable's secret (see [the rule](self)); `None` when it is not set (or not
/// Unicode).
pub fn read_env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| clean(&v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_space_at_both_ends_goes() {
        assert_eq!(clean("s3cret\n"), "s3cret");
        assert_eq!(clean("s3cret\r\n"), "s3cret");
        assert_eq!(clean("  s3 cret \t\n\n"), "s3 cret");
        assert_eq!(clean("\n"), "");
    }

    #[test]
    fn files_and_variables_read_alike() {
        let dir = std::env::temp_dir().join(format!("cellwatch-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("password");
        std::fs::write(&f, " pass word \r\n").unwrap();
        assert_eq!(read_file(&f).unwrap(), "pass word");
        let missing = read_file(&dir.join("missing")).unwrap_err();
        assert!(missing.contains("missing"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read_env("CELLWATCH_SECRET_TEST_SURELY_UNSET"), None);
    }
}
