//! Parsers for the output of the commands macOS ships, and of the Linux files and commands
//! (`/proc/meminfo`, sysfs, `nvidia-smi`). Pure functions: text in, values out; no
//! IO, no clock. Bad input is a [`ParseError`] that names the input and, where there is one, the
//! line; it never panics.

pub mod ibv_devinfo;
pub mod macmon;
pub mod meminfo;
pub mod netstat;
pub mod networksetup;
pub mod nvidia_smi;
pub mod powermetrics;
pub mod rdma_ctl;
pub mod sysctl;
pub mod sysfs;
pub mod system_profiler;
pub mod vm_stat;

use thiserror::Error;

/// Output that could not be understood.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParseError {
    /// The command printed nothing usable.
    #[error("{what}: no data in the output")]
    Empty {
        /// The input, e.g. "vm_stat output".
        what: &'static str,
    },
    /// A line is malformed.
    #[error("{what}, line {line}: {message}: {text:?}")]
    Line {
        /// The input.
        what: &'static str,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
        /// The line (shortened).
        text: String,
    },
    /// The document as a whole is malformed.
    #[error("{what}: {message}")]
    Invalid {
        /// The input.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ParseError {
    pub(crate) fn line(
        what: &'static str,
        line: usize,
        message: impl Into<String>,
        text: &str,
    ) -> Self {
        let text: String = text.chars().take(120).collect();
        ParseError::Line {
            what,
            line,
            message: message.into(),
            text,
        }
    }

    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        ParseError::Invalid {
            what,
            message: message.into(),
        }
    }
}
