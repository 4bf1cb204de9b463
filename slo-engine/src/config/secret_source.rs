//! Where a secret is read from: a file or an environment variable.

use std::path::PathBuf;

/// Where a secret is read from (at each use, so it can be rotated): the API token, an SMTP
/// password, a PagerDuty routing key. Either way, [`crate::util::secret`]'s one rule applies
/// (white space at both ends removed).
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// A file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl TokenSource {
    /// The secret, if it can be read and is not empty.
    pub fn read(&self) -> Option<String> {
        self.fetch("", "").ok().filter(|v| !v.is_empty())
    }

    /// The secret (perhaps empty), or why not: `"{file} {path}: {error}"` or
    /// `"{variable} {name} is not set"`.
    pub fn fetch(&self, file: &str, variable: &str) -> Result<String, String> {
        match self {
            TokenSource::File(p) => {
                crate::util::secret::read_file(p).map_err(|e| format!("{file} {e}"))
            }
            TokenSource::Env(v) => {
                crate::util::secret::read_env(v).ok_or_else(|| format!("{variable} {v} is not set"))
            }
        }
    }
}
