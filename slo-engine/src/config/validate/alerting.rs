//! Validation of `alerting`: links, timing, the API token.

use std::path::Path;
use std::time::Duration;

use super::{Fail, burn_rates, files, receivers, reports, routes};
use crate::config::check::check_url;
use crate::config::error::ConfigError;
use crate::config::raw::RawAlerting;
use crate::config::secret_source::TokenSource;
use crate::config::types::{Alerting, Timing};

/// `alerting:` links, timings, receivers, routes, reports, burn rates, the API token.
pub(super) fn alerting(
    a: &RawAlerting,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Alerting, ConfigError> {
    links(a, fail)?;
    let timing = timing(a, fail)?;
    let receivers = receivers::receivers(&a.receivers, base, fail)?;
    let routes = routes::routes(a, &receivers, fail)?;
    let reports = reports::reports(&a.reports, &receivers, fail)?;
    let burn_rates = burn_rates::burn_rates(&a.burn_rates, fail)?;
    let api_token = api_token(a, base, fail)?;
    Ok(Alerting {
        burn_rates,
        reports,
        timing,
        external_url: a.external_url.clone(),
        dashboard_url: a.dashboard_url.clone(),
        receivers,
        routes,
        api_token,
    })
}

/// `external_url` and `dashboard_url`, usable http(s) URLs.
fn links(a: &RawAlerting, fail: Fail<'_>) -> Result<(), ConfigError> {
    if let Some(u) = &a.external_url {
        check_url(u, false, "http://cellwatch.internal:9820")
            .map_err(|m| fail.at("alerting.external_url", m))?;
    }
    if let Some(u) = &a.dashboard_url {
        check_url(
            u,
            false,
            "http://grafana.internal/d/cellwatch-cell?var-cell={cell}",
        )
        .map_err(|m| fail.at("alerting.dashboard_url", m))?;
    }
    Ok(())
}

fn timing(a: &RawAlerting, fail: Fail<'_>) -> Result<Timing, ConfigError> {
    if a.group_interval < Duration::from_secs(1) || a.repeat_interval < a.group_interval {
        return Err(fail.at(
            "alerting.repeat_interval",
            "group_interval must be at least 1s and repeat_interval at least group_interval",
        ));
    }
    let secs = |d: Duration| d.as_secs() as i64;
    Ok(Timing {
        group_wait: secs(a.group_wait),
        group_interval: secs(a.group_interval),
        repeat_interval: secs(a.repeat_interval),
        no_data_for: secs(a.no_data_for),
        cell_down_for: secs(a.cell_down_for),
        resolve_wait: secs(a.resolve_wait),
    })
}

/// `api_token_file` or `api_token_env`, not both.
fn api_token(
    a: &RawAlerting,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Option<TokenSource>, ConfigError> {
    Ok(match (&a.api_token_file, &a.api_token_env) {
        (Some(_), Some(_)) => {
            return Err(fail.at(
                "alerting.api_token_file",
                "give api_token_file or api_token_env, not both",
            ));
        }
        (Some(f), None) => Some(TokenSource::File(files::secret_file(
            "alerting.api_token_file".into(),
            f,
            base,
            fail,
        )?)),
        (None, Some(v)) => Some(TokenSource::Env(v.clone())),
        (None, None) => None,
    })
}
