//! Tokens per kWh and kWh per 1,000 requests.

/// Tokens per kWh, when energy was used.
pub fn tokens_per_kwh(tokens: f64, joules: f64) -> Option<f64> {
    (joules > 0.0 && tokens.is_finite()).then(|| tokens / (joules / 3.6e6))
}

/// kWh per 1,000 requests, when there were requests.
pub fn kwh_per_1k_requests(joules: f64, requests: f64) -> Option<f64> {
    (requests > 0.0 && joules.is_finite()).then(|| (joules / 3.6e6) / (requests / 1000.0))
}
