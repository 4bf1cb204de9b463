//! URLs in messages and logs, three ways: the database URL keeps its user and hides its
//! password, a scrape or API target loses its user information, a notifier URL keeps only its
//! scheme and host (the path of a webhook is a secret).

/// A URL without its user information (scrape targets, the Prometheus source, OTLP endpoints).
pub use cellwatch_http::tls::without_credentials as credentials;

/// The URL with any password replaced, for messages and logs.
pub fn password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A URL for messages: only its scheme and host (webhook paths hold secrets).
pub fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            // user:password@host: the credentials are secrets too.
            let host = authority.rsplit('@').next().unwrap_or("");
            format!("{scheme}://{host}/…")
        }
        None => "(url)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            password("postgres://cw:secret@db:5432/cw"),
            "postgres://cw:***@db:5432/cw"
        );
        assert_eq!(password("postgres://cw@db/cw"), "postgres://cw@db/cw");
        assert_eq!(password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn notifier_urls_keep_their_host_only() {
        assert_eq!(
            origin("https://hooks.slack.com/services/T/B/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(origin("http://u:pw@hooks:80/x"), "http://hooks:80/…");
        assert_eq!(
            credentials("http://u:pw@studio-a-1:9817/metrics"),
            "http://studio-a-1:9817/metrics"
        );
    }
}
