//! Silences over the API: list, create (authorized), expire.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;

use crate::ledger::{Ledger, LedgerError};
use crate::web::{ApiError, AppState, api_error};

pub(super) type Compiled = Arc<crate::model::CompiledSilence>;

/// The silences as the engine holds them: every silence of the ledger, newest first, each
/// compiled once (when created here or first read from the ledger). Requests and evaluations
/// read the snapshot; writes (a POST, an expiry, a refresh from the ledger) take turns.
#[derive(Clone, Default)]
pub(crate) struct SilenceStore {
    writes: Arc<tokio::sync::Mutex<()>>,
    all: Arc<Mutex<Arc<Vec<Compiled>>>>,
}

impl SilenceStore {
    pub(crate) fn snapshot(&self) -> Arc<Vec<Compiled>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Newest first, then by id: the ledger's order.
    fn order(a: &Compiled, b: &Compiled) -> std::cmp::Ordering {
        (b.silence.starts_at, &a.silence.id).cmp(&(a.silence.starts_at, &b.silence.id))
    }

    pub(crate) fn replace(&self, mut v: Vec<Compiled>) {
        v.sort_by(SilenceStore::order);
        *self.all.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
    }

    pub(crate) fn add(&self, c: Compiled) {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        let v = Arc::make_mut(&mut all);
        let at = v.partition_point(|x| SilenceStore::order(x, &c).is_lt());
        v.insert(at, c);
    }

    /// Takes what the ledger holds (silences made or expired by other engines too), keeping
    /// the compiled matchers of the silences already known.
    pub(crate) async fn refresh(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        let _turn = self.writes.lock().await;
        let fresh = ledger.silences().await?;
        let known: std::collections::HashMap<String, Compiled> = self
            .snapshot()
            .iter()
            .map(|c| (c.silence.id.clone(), c.clone()))
            .collect();
        let mut out = Vec::with_capacity(fresh.len());
        for s in fresh {
            match known.get(&s.id) {
                Some(c) if c.silence == s => out.push(c.clone()),
                Some(c) if c.silence.matchers == s.matchers => out.push(Arc::new(c.with(s))),
                _ => {
                    let id = s.id.clone();
                    match s.compile() {
                        Ok(c) => out.push(Arc::new(c)),
                        Err(e) => {
                            tracing::warn!(id = %id, error = %e, "a stored silence does not compile; it mutes nothing")
                        }
                    }
                }
            }
        }
        self.replace(out);
        Ok(())
    }
}

/// Writes need `Authorization: Bearer <token>`, compared in constant time; without a configured
/// token the API is read-only.
pub(crate) fn authorize(s: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    use axum::http::StatusCode;
    let Some(want) = s.token.as_ref().and_then(|t| t.read()) else {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "writes are disabled: set alerting.api_token_file or alerting.api_token_env",
        ));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = got.len() == want.len()
        && got
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is needed",
        ))
    }
}

/// `POST /api/v1/silences`: a new silence, as Alertmanager's API v2 takes it.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PostableSilence {
    /// The labels an alert must match, all of them, to be muted.
    #[schemars(length(min = 1))]
    pub matchers: Vec<crate::model::Matcher>,
    /// When it starts (RFC 3339; now when absent).
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub starts_at: Option<String>,
    /// When it ends (RFC 3339), after `startsAt` and after now.
    #[schemars(extend("format" = "date-time"))]
    pub ends_at: String,
    /// Who made it (not blank).
    #[schemars(length(min = 1))]
    pub created_by: String,
    /// Why (not blank).
    #[schemars(length(min = 1))]
    pub comment: String,
}

fn parse_time(field: &str, v: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp())
        .map_err(|e| format!("{field} {v:?}: {e} (RFC 3339, e.g. 2026-11-25T10:00:00Z)"))
}

/// The silence a `POST /api/v1/silences` body asks for at `now` (Unix seconds), named `id`,
/// checked and compiled; the error says what is wrong (the API answers it with 400). Pure.
pub fn checked_silence(
    body: &[u8],
    id: String,
    now: i64,
) -> Result<crate::model::CompiledSilence, String> {
    let p: PostableSilence = serde_json::from_slice(body).map_err(|e| format!("silence: {e}"))?;
    let starts_at = match &p.starts_at {
        Some(v) => parse_time("startsAt", v)?,
        None => now,
    };
    let ends_at = parse_time("endsAt", &p.ends_at)?;
    if ends_at <= starts_at || ends_at <= now {
        return Err("endsAt must be later than startsAt and than now".into());
    }
    if p.matchers.is_empty() || p.created_by.trim().is_empty() || p.comment.trim().is_empty() {
        return Err("a silence needs matchers, createdBy and comment".into());
    }
    crate::model::Silence {
        id,
        matchers: p.matchers,
        starts_at,
        ends_at,
        created_by: p.created_by,
        comment: p.comment,
    }
    .compile()
    .map_err(|e| format!("silence: {e}"))
}

/// `GET /api/v1/silences`: every silence, newest first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Silences {
    /// Active, pending and expired silences, newest first.
    pub silences: Vec<SilenceView>,
}

/// One silence, as Alertmanager's API v2 writes it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SilenceView {
    /// A random UUID.
    pub id: String,
    /// The labels an alert must match, all of them, to be muted.
    pub matchers: Vec<crate::model::Matcher>,
    /// When it starts (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub starts_at: String,
    /// When it ends (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub ends_at: String,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Where it stands now.
    pub status: SilenceStatus,
}

/// Where a silence stands.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct SilenceStatus {
    /// `pending` (before `startsAt`), `active` or `expired` (from `endsAt`).
    #[schemars(extend("enum" = ["pending", "active", "expired"]))]
    pub state: &'static str,
}

/// The answer to a new silence.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct SilenceCreated {
    /// The new silence's id.
    #[serde(rename = "silenceID")]
    pub silence_id: String,
}

/// The answer to an expiry.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct SilenceExpired {
    /// The expired silence's id.
    pub expired: String,
}

pub(crate) fn silence_view(x: &crate::model::Silence, now: i64) -> SilenceView {
    let t = crate::util::time::rfc3339;
    SilenceView {
        id: x.id.clone(),
        matchers: x.matchers.clone(),
        starts_at: t(x.starts_at),
        ends_at: t(x.ends_at),
        created_by: x.created_by.clone(),
        comment: x.comment.clone(),
        status: SilenceStatus {
            state: x.state(now),
        },
    }
}

pub(crate) async fn list_silences(State(s): State<AppState>) -> axum::Json<Silences> {
    let now = s.clock.now_ms().div_euclid(1000);
    let all = s.silences.snapshot();
    axum::Json(Silences {
        silences: all.iter().map(|x| silence_view(&x.silence, now)).collect(),
    })
}

/// A new silence's id: a random UUID (version 4), as Alertmanager makes them.
pub(crate) fn silence_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

pub(crate) async fn post_silence(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<SilenceCreated>, ApiError> {
    use axum::http::StatusCode;
    authorize(&s, &headers)?;
    let now = s.clock.now_ms().div_euclid(1000);
    let id = silence_id().map_err(|e| {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no random silence id: {e}"),
        )
    })?;
    let compiled = checked_silence(&body, id.clone(), now)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, e))?;
    let max = s.limits.max_silences;
    {
        let _turn = s.silences.writes.lock().await;
        let added = s
            .ledger
            .add_silence(&compiled.silence, now, max)
            .await
            .map_err(|e| api_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        if !added {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "silence: {max} silences are active or pending, the limit (--silences.max-active): expire some first"
                ),
            ));
        }
        s.silences.add(Arc::new(compiled.clone()));
    }
    tracing::info!(id = %id, created_by = ?compiled.silence.created_by, "silence created");
    Ok(axum::Json(SilenceCreated { silence_id: id }))
}

pub(crate) async fn expire_silence(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<SilenceExpired>, ApiError> {
    use axum::http::StatusCode;
    authorize(&s, &headers)?;
    let now = s.clock.now_ms().div_euclid(1000);
    let _turn = s.silences.writes.lock().await;
    match s.ledger.expire_silence(&id, now).await {
        Ok(true) => {
            let all = s
                .silences
                .snapshot()
                .iter()
                .map(|c| {
                    if c.silence.id == id {
                        let mut x = c.silence.clone();
                        x.ends_at = now;
                        Arc::new(c.with(x))
                    } else {
                        c.clone()
                    }
                })
                .collect();
            s.silences.replace(all);
            tracing::info!(id = %id, "silence expired");
            Ok(axum::Json(SilenceExpired { expired: id }))
        }
        Ok(false) => Err(api_error(
            StatusCode::NOT_FOUND,
            format!("no active or pending silence {id:?}"),
        )),
        Err(e) => Err(api_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}
