//! The only validation steps that read files: each names the field it checks.

use std::path::{Path, PathBuf};

use cellwatch_http::file::read_bounded;

use super::Fail;
use crate::config::check::{check_secret_file, check_url, read_secret_file};
use crate::config::error::{ConfigError, MAX_CA_BYTES};
use crate::config::raw::BasicAuth;
use crate::util::text::{one_line, show_path};

/// `source.scrape.ca_file`: read and parsed as PEM certificates now.
pub(super) fn ca_pem(path: &Path, fail: Fail<'_>) -> Result<Vec<u8>, ConfigError> {
    let field = "source.scrape.ca_file";
    let pem = read_bounded(path, MAX_CA_BYTES)
        .map_err(|e| fail.at(field, format!("{}: {e}", show_path(path))))?;
    cellwatch_http::tls::client_config(Some(&pem)).map_err(|e| {
        fail.at(
            field,
            format!("{}: {}", show_path(path), one_line(&e.to_string())),
        )
    })?;
    Ok(pem)
}

/// `source.scrape.basic_auth`: the password file beside the configuration, readable now.
pub(super) fn basic_auth(
    b: BasicAuth,
    base: &Path,
    fail: Fail<'_>,
) -> Result<BasicAuth, ConfigError> {
    let b = BasicAuth {
        username: b.username,
        password_file: base.join(b.password_file),
    };
    check_secret_file(&b.password_file)
        .map_err(|e| fail.at("source.scrape.basic_auth.password_file", e))?;
    Ok(b)
}

/// A secret file, found beside the configuration (as `check` looks for it), readable and not
/// empty now; it is read again at each use.
pub(super) fn secret_file(
    field: String,
    p: &Path,
    base: &Path,
    fail: Fail<'_>,
) -> Result<PathBuf, ConfigError> {
    let p = base.join(p);
    check_secret_file(&p).map_err(|m| fail.at(field, m))?;
    Ok(p)
}

/// A Slack `url_file`: a secret file whose content is a usable URL.
pub(super) fn slack_url_file(
    field: String,
    file: &Path,
    base: &Path,
    fail: Fail<'_>,
) -> Result<PathBuf, ConfigError> {
    let file = secret_file(field.clone(), file, base, fail)?;
    let u = read_secret_file(&file).map_err(|m| fail.at(field.clone(), m))?;
    check_url(&u, true, "https://hooks.slack.com/services/…")
        .map_err(|m| fail.at(field, format!("the URL in the file: {m}")))?;
    Ok(file)
}
