//! The engine's tick, every interval (and at once when this engine takes the lead): read the
//! source, evaluate, step the alerts, publish, and, when leading, send the scheduled reports
//! and prune the ledger.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cellwatch_http::exposition::{Sample, encode};
use cellwatch_metrics as m;
use tokio::sync::Notify;
use tracing::Instrument;
use tracing::field::Empty;

use super::feeder::Feeder;
use super::{prune, reports};
use crate::alerting::{self, alert_samples};
use crate::config::Config;
use crate::eval::{Evaluator, Report, attach_health, samples};
use crate::ledger::Ledger;
use crate::model::{CompiledSilence, Labels};
use crate::notify;
use crate::util::time::Clock;
use crate::util::trace;
use crate::web::AppState;

/// What the tick reads and writes, and what it carries from one tick to the next.
pub(super) struct Leader {
    pub(super) config: Config,
    pub(super) ledger: Ledger,
    pub(super) clock: Clock,
    /// What the web serves: the last evaluation, the alerts, the silences.
    pub(super) web: AppState,
    pub(super) routes: alerting::Routes,
    /// This engine's name in the leader lease.
    pub(super) me: String,
    /// The lease's own timeline, which fences the saves.
    pub(super) lease: super::lease::LeaseTimeline,
    /// Set by the lease holder.
    pub(super) is_leader: Arc<AtomicBool>,
    /// Wakes the delivery loop.
    pub(super) wake: Arc<Notify>,
    pub(super) interval: Duration,
    /// The longest period (seconds).
    pub(super) retention: i64,
    pub(super) feeder: Feeder,
    /// Whether this engine led at the last tick.
    pub(super) leading: bool,
    /// Loaded from the ledger when this engine takes the lead.
    pub(super) alerts: alerting::State,
    /// The cells none of whose nodes answered, as the source last said.
    pub(super) down_cells: BTreeSet<String>,
    /// Keeps each series' settled sums from one evaluation to the next while leading.
    pub(super) evaluator: Evaluator,
}

/// The alert state after one evaluation, and the notifications it calls for: saved together.
struct Stepped {
    next: alerting::State,
    notes: Vec<alerting::Notification>,
}

impl Leader {
    /// Ticks every interval, and at once when `took_lease` says this engine took the lead.
    pub(super) async fn run(mut self, took_lease: Arc<Notify>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = took_lease.notified() => {}
            }
            self.tick().await;
        }
    }

    /// One tick, its steps in order; the evaluation is a [`trace::EVALUATE`] span.
    pub(super) async fn tick(&mut self) {
        let now_ms = self.clock.now_ms();
        self.follow_lease().await;
        let span = tracing::info_span!(
            trace::EVALUATE,
            { trace::ENGINE_ROLE } = if self.leading { "leader" } else { "standby" },
            { trace::CELLS } = Empty,
            { trace::SLOS } = Empty,
            { trace::NOTIFICATIONS } = Empty,
            { trace::OUTCOME } = Empty,
            { trace::ERROR_TYPE } = Empty,
            { trace::STATUS_CODE } = Empty,
            { trace::STATUS_DESCRIPTION } = Empty,
        );
        let Some(t) = self.evaluate(now_ms, &span).instrument(span.clone()).await else {
            return;
        };
        if self.leading && prune::due(t, self.interval) {
            prune::prune(&self.config, &self.ledger, t, self.retention).await;
        }
    }

    /// Reads the source at `now_ms`, evaluates, and when leading steps and saves the alerts and
    /// queues the due reports; records the counts and the outcome on `span`. Returns the time
    /// evaluated, None when the source failed.
    async fn evaluate(&mut self, now_ms: i64, span: &tracing::Span) -> Option<i64> {
        // The time the ledger is complete up to: evaluation windows end there.
        let read = tracing::info_span!(trace::READ_SOURCE);
        let Some(t) = self.read_source(now_ms).instrument(read).await else {
            // Prometheus failed: nothing new to evaluate
            failed(span, "source_failed", "source", "reading the source failed");
            return None;
        };
        self.refresh_silences().await;
        let started = Instant::now();
        let judge = tracing::info_span!(trace::JUDGE);
        let evaluated = self
            .evaluator
            .evaluate(&self.config, &self.ledger, t, self.leading)
            .instrument(judge)
            .await
            .map(|mut r| {
                let (health, down) = (&self.feeder.health, &self.down_cells);
                attach_health(&mut r, &self.config, health, down, t);
                r
            });
        let r = match evaluated {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "evaluation failed");
                failed(span, "evaluation_failed", "ledger", &e.to_string());
                return Some(t);
            }
        };
        span.record(trace::CELLS, r.cells.len());
        span.record(trace::SLOS, self.config.slos.len());
        if !self.leading {
            // A standby serves its evaluation, and neither alerts nor sends.
            self.publish(r, None, || took(started));
            span.record(trace::OUTCOME, "ok");
            return Some(t);
        }
        let alerts = tracing::info_span!(trace::ALERTS);
        let stepped = alerts.in_scope(|| self.step_alerts(&r, t));
        span.record(trace::NOTIFICATIONS, stepped.notes.len());
        // The evaluation's duration includes stepping the alerts, not saving them.
        let duration = took(started);
        let saved = self.save_alerts(stepped, t).instrument(alerts).await;
        self.publish(r, Some(&self.alerts), || duration);
        match saved {
            Saved::Yes => {
                span.record(trace::OUTCOME, "ok");
            }
            Saved::LeaseLost => {
                span.record(trace::OUTCOME, "lease_lost");
            }
            Saved::Failed(e) => failed(span, "save_failed", "ledger", &e),
        }
        reports::queue_due(&self.config, &self.ledger, &self.wake, self.interval, t).await;
        Some(t)
    }

    /// Follows the lease: on taking the lead, carries on from the alert state the last leader
    /// saved.
    async fn follow_lease(&mut self) {
        let was_leading = self.leading;
        self.leading = self.is_leader.load(Ordering::Relaxed);
        if !self.leading || was_leading {
            return;
        }
        tracing::info!(engine = %self.me, "leading: recording, judging, alerting and delivering");
        match self.ledger.alert_state().await {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(a) => self.alerts = a,
                Err(e) => {
                    tracing::error!(error = %e, "the saved alert state is unreadable; starting with none")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "reading the alert state failed"),
        }
    }

    /// Reads the source at `now_ms` (recording when leading) and learns which cells are down.
    /// Returns the time the ledger is complete up to; None when Prometheus failed.
    async fn read_source(&mut self, now_ms: i64) -> Option<i64> {
        let leading = self.leading;
        let (config, ledger) = (&self.config, &self.ledger);
        self.feeder
            .read(config, ledger, now_ms, leading, &mut self.down_cells)
            .await
    }

    /// Takes the silences made or expired through another engine's API (each compiled once).
    async fn refresh_silences(&self) {
        if let Err(e) = self.web.silences.refresh(&self.ledger).await {
            tracing::error!(error = %e, "reading silences failed; using the ones held");
        }
    }

    /// The alerts an evaluation calls for, stepped from the held state, and the notifications
    /// due at `t`, leaving out alerts that active silences or maintenance windows mute.
    fn step_alerts(&self, r: &Report, t: i64) -> Stepped {
        let a = &self.config.alerting;
        let wanted = alerting::wanted(&self.config, r, &self.down_cells, &a.timing);
        let mut next = self.alerts.clone();
        next.step_alerts(&wanted, t);
        let silences = self.web.silences.snapshot();
        let active: Vec<&CompiledSilence> = silences
            .iter()
            .map(|c| c.as_ref())
            .filter(|c| c.silence.state(t) == "active")
            .collect();
        let maintenance = &self.config.maintenance;
        let muted = |l: &Labels| alerting::muted(&active, maintenance, l, t);
        let notes = next.dispatch(&self.routes, &a.timing, &muted, t);
        Stepped { next, notes }
    }

    /// Saves the stepped state with its notifications' outbox rows in one transaction; once
    /// saved, the state is held and served, and the delivery loop woken. When saving fails,
    /// the held state stays and the next tick evaluates again. The save is fenced on the lease's
    /// own timeline (its last renewal plus the monotonic time since), not on the wall clock,
    /// which NTP may step during the evaluation.
    async fn save_alerts(&mut self, Stepped { next, notes }: Stepped, t: i64) -> Saved {
        let Some(lease_now) = self.lease.now_ms() else {
            tracing::warn!(engine = %self.me, "lost the leader lease; the alert state was not saved");
            return Saved::LeaseLost;
        };
        let rows = notify::outbox_rows(&self.config.alerting, &notes);
        let json = serde_json::to_string(&next).unwrap_or_default();
        let lease = Some((self.me.as_str(), lease_now));
        match self.ledger.save_alerts(&json, t, &rows, lease).await {
            Ok(()) => {
                for n in &notes {
                    tracing::info!(cell = %n.cell, receiver = %n.receiver, status = %n.status, reason = %n.reason, alerts = n.alerts.len(), key = %n.key, "notification queued");
                }
                self.alerts = next;
                self.web.set_alerts(self.alerts.clone());
                if !rows.is_empty() {
                    self.wake.notify_one();
                }
                Saved::Yes
            }
            Err(e) => {
                tracing::error!(error = %e, "saving the alert state failed; evaluated again next interval");
                Saved::Failed(e.to_string())
            }
        }
    }

    /// Serves an evaluation: the report, and on `/metrics` its samples, the alerts' (when
    /// leading), the source's gaps and the evaluation's duration (`duration` is called last).
    fn publish(
        &self,
        r: Report,
        alerts: Option<&alerting::State>,
        duration: impl FnOnce() -> Sample,
    ) {
        let mut all = samples(&r);
        if let Some(a) = alerts {
            all.extend(alert_samples(a));
        }
        all.extend(self.feeder.gap_samples(&self.config));
        all.push(duration());
        self.web.publish(r, encode(&all));
    }
}

/// Whether the stepped alert state was saved.
enum Saved {
    Yes,
    /// The lease was lost before saving: nothing was written.
    LeaseLost,
    /// The ledger refused it (why).
    Failed(String),
}

/// Records a failed evaluation on its span: the outcome, `error.type` and the error status.
fn failed(span: &tracing::Span, outcome: &str, kind: &str, message: &str) {
    span.record(trace::OUTCOME, outcome);
    span.record(trace::ERROR_TYPE, kind);
    span.record(trace::STATUS_CODE, "ERROR");
    span.record(trace::STATUS_DESCRIPTION, message);
}

/// The evaluation's duration since `started`, as a sample.
fn took(started: Instant) -> Sample {
    Sample::new(
        &m::SLO_EVALUATION_DURATION,
        &[],
        started.elapsed().as_secs_f64(),
    )
}
