//! Validation of `alerting.receivers` into resolved integrations.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Fail, files, safe_name};
use crate::config::check::check_url;
use crate::config::error::ConfigError;
use crate::config::raw::{Email, PagerDuty, RawReceiver, Slack};

use crate::config::receiver::{
    AlertmanagerApi, EmailTarget, Integration, PagerDutyTarget, Receiver, SlackTarget, SlackUrl,
    SmtpAuth, SmtpTls, WebhookTarget,
};
use crate::config::secret_source::TokenSource;
use crate::util::text::quote;

/// `alerting.receivers`: safe unique names, at least one integration each, resolved.
pub(super) fn receivers(
    raw: &[RawReceiver],
    base: &Path,
    fail: Fail<'_>,
) -> Result<BTreeMap<String, Receiver>, ConfigError> {
    let mut receivers = BTreeMap::new();
    for (i, r) in raw.iter().enumerate() {
        let f = format!("alerting.receivers[{i}]");
        let receiver = receiver(r, &f, base, fail)?;
        if receivers.insert(r.name.clone(), receiver).is_some() {
            return Err(fail.at(
                format!("{f}.name"),
                format!("receiver {} is defined twice", quote(&r.name)),
            ));
        }
    }
    Ok(receivers)
}

/// One receiver. Its integrations are checked in this order (the first error shown stays the
/// same) and listed in the outbox's order.
fn receiver(
    r: &RawReceiver,
    f: &str,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Receiver, ConfigError> {
    safe_name(&r.name, f, fail)?;
    if r.email.is_none()
        && r.webhook.is_none()
        && r.pagerduty.is_none()
        && r.slack.is_none()
        && r.alertmanager.is_none()
    {
        return Err(fail.at(
            f,
            format!(
                "receiver {} has no integration: give email, webhook, pagerduty, slack or alertmanager",
                quote(&r.name)
            ),
        ));
    }
    let url = |field: String, v: &str, secret: bool, example: &str| {
        check_url(v, secret, example).map_err(|m| fail.at(field, m))
    };
    let pagerduty = r
        .pagerduty
        .as_ref()
        .map(|p| pagerduty(p, f, base, fail))
        .transpose()?;
    let slack = r
        .slack
        .as_ref()
        .map(|s| slack(s, f, base, fail))
        .transpose()?;
    let alertmanager = match &r.alertmanager {
        None => None,
        Some(a) => {
            url(
                format!("{f}.alertmanager.url"),
                &a.url,
                false,
                "http://alertmanager:9093",
            )?;
            Some(Integration::Alertmanager(AlertmanagerApi {
                alerts_url: format!("{}/api/v2/alerts", a.url.trim_end_matches('/')),
            }))
        }
    };
    let email = r
        .email
        .as_ref()
        .map(|e| email(e, f, base, fail))
        .transpose()?;
    let webhook = match &r.webhook {
        None => None,
        Some(w) => {
            let example = "https://chatops.internal/hooks/cellwatch";
            url(format!("{f}.webhook.url"), &w.url, true, example)?;
            Some(Integration::Webhook(WebhookTarget { url: w.url.clone() }))
        }
    };
    Ok(Receiver {
        name: r.name.clone(),
        integrations: [email, webhook, pagerduty, slack, alertmanager]
            .into_iter()
            .flatten()
            .collect(),
    })
}

fn pagerduty(
    p: &PagerDuty,
    f: &str,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Integration, ConfigError> {
    let routing_key = match (&p.routing_key_file, &p.routing_key_env) {
        (Some(k), None) => {
            let field = format!("{f}.pagerduty.routing_key_file");
            TokenSource::File(files::secret_file(field, k, base, fail)?)
        }
        (None, Some(v)) => TokenSource::Env(v.clone()),
        _ => {
            return Err(fail.at(
                format!("{f}.pagerduty"),
                "give exactly one of routing_key_file and routing_key_env",
            ));
        }
    };
    check_url(&p.url, false, "https://events.pagerduty.com/v2/enqueue")
        .map_err(|m| fail.at(format!("{f}.pagerduty.url"), m))?;
    Ok(Integration::PagerDuty(PagerDutyTarget {
        url: p.url.clone(),
        routing_key,
    }))
}

fn slack(s: &Slack, f: &str, base: &Path, fail: Fail<'_>) -> Result<Integration, ConfigError> {
    let url = match (&s.url_file, &s.url) {
        (Some(file), None) => {
            let field = format!("{f}.slack.url_file");
            SlackUrl::File(files::slack_url_file(field, file, base, fail)?)
        }
        (None, Some(u)) => {
            check_url(u, true, "https://hooks.slack.com/services/…")
                .map_err(|m| fail.at(format!("{f}.slack.url"), m))?;
            SlackUrl::Inline(u.clone())
        }
        _ => {
            return Err(fail.at(
                format!("{f}.slack"),
                "give exactly one of url_file and url (an http(s) URL)",
            ));
        }
    };
    Ok(Integration::Slack(SlackTarget { url }))
}

fn email(e: &Email, f: &str, base: &Path, fail: Fail<'_>) -> Result<Integration, ConfigError> {
    let addr_ok = |x: &str| x.parse::<lettre::Address>().is_ok();
    if e.to.is_empty() || !e.to.iter().all(|t| addr_ok(t)) {
        return Err(fail.at(
            format!("{f}.email.to"),
            "a list of mail addresses such as oncall@example.com",
        ));
    }
    if !addr_ok(&e.from) {
        return Err(fail.at(
            format!("{f}.email.from"),
            format!("{} is not a mail address", quote(&e.from)),
        ));
    }
    let (host, port) = smarthost(&e.smarthost).ok_or_else(|| {
        fail.at(
            format!("{f}.email.smarthost"),
            format!(
                "{} is not host:port with a port in 1..=65535 (e.g. smtp.example.com:587)",
                quote(&e.smarthost)
            ),
        )
    })?;
    let tls = match e.tls.as_str() {
        "starttls" => SmtpTls::StartTls,
        "implicit" => SmtpTls::Implicit,
        "none" => SmtpTls::None,
        _ => {
            return Err(fail.at(
                format!("{f}.email.tls"),
                format!("{}: use starttls, implicit or none", quote(&e.tls)),
            ));
        }
    };
    Ok(Integration::Email(EmailTarget {
        to: e.to.clone(),
        from: e.from.clone(),
        host,
        port,
        tls,
        auth: smtp_auth(e, f, base, fail)?,
    }))
}

/// `host:port`, a host and a port in 1..=65535.
fn smarthost(s: &str) -> Option<(String, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!h.is_empty()).then(|| (h.to_string(), port))
}

/// With a username, exactly one of `password_file` and `password_env`.
fn smtp_auth(
    e: &Email,
    f: &str,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Option<SmtpAuth>, ConfigError> {
    if e.username.is_some() && (e.password_file.is_some() == e.password_env.is_some()) {
        return Err(fail.at(
            format!("{f}.email"),
            "with a username, give exactly one of password_file and password_env",
        ));
    }
    // A password file is checked even without a username, as it always was.
    let file = match &e.password_file {
        Some(p) => Some(files::secret_file(
            format!("{f}.email.password_file"),
            p,
            base,
            fail,
        )?),
        None => None,
    };
    let Some(username) = &e.username else {
        return Ok(None);
    };
    let password = match (file, &e.password_env) {
        (Some(p), _) => TokenSource::File(p),
        (None, Some(v)) => TokenSource::Env(v.clone()),
        (None, None) => return Ok(None),
    };
    Ok(Some(SmtpAuth {
        username: username.clone(),
        password,
    }))
}
