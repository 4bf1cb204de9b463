//! `ConfigError` and the size limits of what the configuration reads.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::util::text::{clip, one_line, show_path};

/// A configuration that cannot be used. Displayed on one line; quoted values are cut (see
/// [`quote`]) and secrets are never shown.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, not a regular file, too large, not UTF-8).
    #[error("{}: {}", show_path(.path), one_line(&.source.to_string()))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema (syntax, types, unknown fields).
    #[error("{}:{line}:{column}: {}: {}", show_path(.path), clip(.field), one_line(.message))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field, as a path (`slos[2].sli`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{}:{line}: {}: {}", show_path(.path), clip(.field), one_line(.message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (best effort: the line of the field or of its nearest parent).
        line: usize,
        /// The field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The YAML nests deeper than [`MAX_DEPTH`] (refused before parsing).
    #[error("{}:{line}: {}", show_path(.path), one_line(.message))]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// 1-based line where the limit is passed.
        line: usize,
        /// What to do.
        message: String,
    },
}

/// The largest configuration or OpenSLO file read (4 MiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

pub use crate::util::secret::MAX_SECRET_BYTES;

/// The largest CA certificate file read (1 MiB).
pub const MAX_CA_BYTES: u64 = 1 << 20;

/// The deepest nesting a YAML file may have (block indentation levels plus flow brackets).
pub const MAX_DEPTH: usize = 64;

/// The longest duration any field or flag takes: 10 years (humantime's `10y`).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);
