//! Checks shared by the sections: URLs, secret fields and files, cron schedules, safe names.

use std::path::Path;

use crate::util::text::{quote, show_path};

/// A secret file's secret (at most [`MAX_SECRET_BYTES`], white space at both ends removed: the
/// one rule of [`crate::util::secret`]), with the error naming the file only.
pub use crate::util::secret::read_file as read_secret_file;

/// Whether `field` (a path such as `alerting.receivers[0].slack.url`) holds a value that may be
/// a secret, which messages must not show: anything under a header, basic auth, a Slack or
/// webhook receiver (their URLs carry tokens), a password, token or routing key; and the whole
/// document (`.`), whose value may be any file's content.
pub(super) fn secret_field(field: &str) -> bool {
    field.is_empty()
        || field == "."
        || field
            .split('.')
            .map(|s| s.split('[').next().unwrap_or(s))
            .any(|seg| {
                matches!(seg, "headers" | "basic_auth" | "slack" | "webhook")
                    || seg.starts_with("password")
                    || seg.starts_with("routing_key")
                    || seg.starts_with("api_token")
                    || seg == "token"
                    || seg.ends_with("_token")
            })
}

/// Checks an http(s) URL: a scheme of http or https, a host, a port in 1..=65535. `secret`: the
/// URL may hold a secret (a webhook's path), so the message does not quote it;
/// otherwise it quotes the URL without its credentials.
pub(super) fn check_url(url: &str, secret: bool, example: &str) -> Result<(), String> {
    let shown = || {
        if secret {
            // The error names the field.
            "the value".to_string()
        } else {
            quote(&crate::util::redact::credentials(url))
        }
    };
    let why = match reqwest::Url::parse(url) {
        _ if url.contains(char::is_whitespace) => "it contains white space".into(),
        Err(e) => e.to_string(),
        Ok(u) if !["http", "https"].contains(&u.scheme()) => {
            format!("the scheme {} is not http or https", quote(u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => "it has no host".into(),
        Ok(u) if u.port() == Some(0) => "port 0 cannot be reached".into(),
        Ok(_) => return Ok(()),
    };
    Err(format!(
        "{} is not a usable http(s) URL such as {example}: {why}",
        shown()
    ))
}

/// Whether a cron schedule ever fires, in any year the cron crate knows (1970 to 2100):
/// `0 0 0 30 2 *`, the 30th of February, never does. A schedule whose occurrences are all past
/// (`0 0 2 14 3 * 2027`, after that day) still passes, so that a configuration valid today
/// stays valid; it simply never opens a window again.
pub fn cron_fires(schedule: &cron::Schedule, tz: chrono_tz::Tz) -> bool {
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH.with_timezone(&tz);
    schedule.after(&epoch).next().is_some()
}

pub(super) fn label_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(|c| c.is_control())
}

/// Cell and SLO names end up inside PromQL strings, regexes and rule group names: letters,
/// digits and `_ . : -` only.
pub(super) fn name_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

pub(super) const NAME_RULE: &str = "a name of letters, digits and _ . : - (at most 128 characters)";

/// Checks a secret file now (it is read again at each use, so it can be rotated): a regular file
/// of at most [`MAX_SECRET_BYTES`], not empty. The message names the file, never its content.
pub(super) fn check_secret_file(path: &Path) -> Result<(), String> {
    if read_secret_file(path)?.is_empty() {
        return Err(format!("{}: the file is empty", show_path(path)));
    }
    Ok(())
}
