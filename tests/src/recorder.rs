//! An in-test webhook receiver.

use serde_json::Value;

/// An in-test HTTP receiver that records every JSON body POSTed to it, by path (the webhook,
/// PagerDuty and Slack endpoints).
#[derive(Clone, Default)]
pub struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>);

impl Recorder {
    pub async fn start() -> (Recorder, String) {
        let r = Recorder::default();
        let rec = r.clone();
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let rec = rec.clone();
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    rec.0.lock().unwrap().push((uri.path().to_string(), v));
                    "ok"
                }
            });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (r, base)
    }

    pub fn at(&self, path: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every body received, with its path.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.0.lock().unwrap().clone()
    }
}
