//! Validation of `alerting.routes`.

use std::collections::BTreeMap;

use super::Fail;
use crate::config::error::ConfigError;
use crate::config::raw::RawAlerting;
use crate::config::receiver::Receiver;
use crate::config::types::Route;
use crate::model::Matcher;
use crate::util::text::{clip, one_line, quote, regex_error};

/// `alerting.routes`: known receivers, whole-value regular expressions. None: everything goes
/// to the first receiver.
pub(super) fn routes(
    raw: &RawAlerting,
    receivers: &BTreeMap<String, Receiver>,
    fail: Fail<'_>,
) -> Result<Vec<Route>, ConfigError> {
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if !receivers.contains_key(&r.receiver) {
            return Err(fail.at(
                format!("alerting.routes[{i}].receiver"),
                format!(
                    "no receiver named {} (receivers: {})",
                    quote(&r.receiver),
                    clip(&receivers.keys().cloned().collect::<Vec<_>>().join(", "))
                ),
            ));
        }
        let mut match_re = Vec::new();
        for (k, v) in &r.match_re {
            let field = format!("alerting.routes[{i}].match_re.{}", clip(k));
            match_re.push(regex_matcher(k, v, field, fail)?);
        }
        routes.push(Route {
            receiver: r.receiver.clone(),
            matchers: r.matchers.clone(),
            match_re,
            continue_: r.continue_,
            notify: r.notify,
            update_interval: r.update_interval.as_secs() as i64,
        });
    }
    if routes.is_empty()
        && let Some(first) = raw.receivers.first()
    {
        routes.push(Route {
            receiver: first.name.clone(),
            matchers: BTreeMap::new(),
            match_re: Vec::new(),
            continue_: false,
            notify: Default::default(),
            update_interval: 0,
        });
    }
    Ok(routes)
}

fn regex_matcher(k: &str, v: &str, field: String, fail: Fail<'_>) -> Result<Matcher, ConfigError> {
    let m = Matcher {
        name: k.to_string(),
        value: v.to_string(),
        is_regex: true,
        is_equal: true,
    };
    if let Err(e) = regex::Regex::new(&format!("^(?:{v})$")) {
        return Err(fail.at(
            field,
            format!(
                "{} is not a regular expression: {}",
                quote(v),
                regex_error(&e)
            ),
        ));
    }
    m.validate().map_err(|e| fail.at(field, one_line(&e)))?;
    Ok(m)
}
