//! TLS with one crypto backend (ring): the HTTP client every outbound request uses (webhooks,
//! PagerDuty, Slack, OTLP, Prometheus) and the server side of `--web.config.file`.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The ring provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting the Mozilla roots (webpki-roots) and, when given, more
/// roots (PEM).
pub fn client_config(extra_roots_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_roots_pem {
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| format!("a root certificate: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("a root certificate: {e}"))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Makes ring the process's default provider (for any TLS user that asks for the default; our
/// own clients and servers name ring explicitly). Idempotent.
pub fn install_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A URL without its user information, for messages and logs (scrape targets, OTLP endpoints).
/// Text that is no URL with an authority (`admin:secret@prometheus:9090`, `//u:p@host`) loses
/// everything before its last `@` but the scheme.
pub fn without_credentials(url: &str) -> String {
    if let Ok(mut u) = reqwest::Url::parse(url)
        && u.has_host()
    {
        let _ = u.set_username("");
        let _ = u.set_password(None);
        return u.to_string();
    }
    match url.rfind('@') {
        Some(at) => {
            let scheme = url
                .find("://")
                .filter(|&s| s < at)
                .map_or("", |s| &url[..s + 3]);
            format!("{scheme}{}", &url[at + 1..])
        }
        None => url.to_string(),
    }
}

/// A reqwest client builder over [`client_config`]: http:// and https:// with ring.
pub fn http_client() -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder();
    match client_config(None) {
        Ok(c) => b.use_preconfigured_tls(c),
        // Only a provider without safe protocol versions fails; ring has them.
        Err(_) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_with_ring_and_bad_roots_are_refused() {
        assert!(http_client().build().is_ok());
        assert!(client_config(None).is_ok());
        let e = client_config(Some(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        ))
        .unwrap_err();
        assert!(e.contains("root certificate"), "{e}");
    }

    #[test]
    fn credentials_leave_urls() {
        assert_eq!(
            without_credentials("https://u:secret@h:9817/metrics"),
            "https://h:9817/metrics"
        );
        assert_eq!(without_credentials("x://u:secret@ bad"), "x:// bad");
        assert_eq!(without_credentials("http://h/"), "http://h/");
        // No scheme, or no authority: the credentials still go.
        assert_eq!(
            without_credentials("admin:SECRET@prometheus:9090"),
            "prometheus:9090"
        );
        assert_eq!(without_credentials("//u:p@host/x"), "host/x");
        assert_eq!(without_credentials("mailto:a:b@c"), "c");
    }
}
