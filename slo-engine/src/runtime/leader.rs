use super::{deliver_forever, hold_lease};
use crate::alerting::alert_samples;
use crate::config::{Budgeting, Config, Source};
use crate::eval::{evaluate_with, retention, samples};
use crate::ledger::{Ledger, LedgerError};
use crate::model::MINUTE_RETENTION;
use crate::source::prometheus::PromSource;
use crate::source::scrape::{Baselines, scrape_once};
use crate::util::time::{Clock, now_ms};
use crate::web::{AppState, Limits};
use crate::{alerting, notify};
use cellwatch_http::exposition::{Sample, encode};
use cellwatch_metrics as m;
use std::sync::Arc;
use std::time::Duration;

pub(super) enum Feeder {
    Scrape {
        client: reqwest::Client,
        baselines: Baselines,
        max_gap: i64,
        last_problems: String,
    },
    Prometheus(Box<PromSource>),
}

/// Runs the engine until the process ends.
pub async fn run(config: Config, ledger: Ledger, listen: &str) -> std::io::Result<()> {
    run_with(config, ledger, listen, Clock::default()).await
}

/// Runs the engine with a given clock.
pub async fn run_with(
    config: Config,
    ledger: Ledger,
    listen: &str,
    clock: Clock,
) -> std::io::Result<()> {
    run_web(config, ledger, listen, clock, None, Limits::default()).await
}

/// As [`run_with`], serving over TLS and behind basic authentication when `web` says so
/// (`--web.config.file`); silence writes keep authenticating with the API's bearer token.
pub async fn run_web(
    config: Config,
    ledger: Ledger,
    listen: &str,
    clock: Clock,
    web: Option<cellwatch_http::web::WebConfig>,
    limits: Limits,
) -> std::io::Result<()> {
    let retention = retention(&config);
    let (interval, mut feeder) = match &config.source {
        Source::Scrape {
            interval, ca_pem, ..
        } => (
            *interval,
            Feeder::Scrape {
                client: {
                    let mut b = cellwatch_http::tls::http_client();
                    if let Some(pem) = ca_pem
                        && let Ok(tls) = cellwatch_http::tls::client_config(Some(pem))
                    {
                        b = b.use_preconfigured_tls(tls);
                    }
                    b.timeout((*interval).min(Duration::from_secs(10)))
                        .build()
                        .unwrap_or_default()
                },
                baselines: None,
                max_gap: (interval.as_secs() as i64 * 3).max(30),
                last_problems: String::new(),
            },
        ),
        Source::Prometheus {
            url,
            interval,
            delay,
            timeout,
            headers,
        } => (
            *interval,
            Feeder::Prometheus(Box::new(PromSource::new(
                url,
                *interval,
                *delay,
                *timeout,
                headers,
                Duration::from_secs(retention as u64),
            ))),
        ),
    };
    let token = config.alerting.api_token.clone();
    let state = AppState::new(ledger.clone(), clock.clone(), token, limits);
    let routes = alerting::Routes::new(&config.alerting.routes);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, cells = config.cells.len(), slos = config.slos.len(), "listening");
    let app = crate::web::router(state.clone());
    // Loaded from the ledger when this engine takes the lead (below).
    let mut alerts = alerting::State::default();
    let wake = Arc::new(tokio::sync::Notify::new());
    let is_leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // This engine's name in the leader lease, and the lease's length: a standby takes over
    // within two intervals of the leader's last renewal.
    let me = format!("{}-{}", std::process::id(), now_ms() % 1_000_000);
    let mut leader = false;
    let took_lease = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(hold_lease(
        ledger.clone(),
        me.clone(),
        interval,
        clock.clone(),
        is_leader.clone(),
        took_lease.clone(),
    ));
    tokio::spawn(deliver_forever(
        config.alerting.clone(),
        ledger.clone(),
        wake.clone(),
        clock.clone(),
        is_leader.clone(),
    ));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = String::new();
        let mut down_cells = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = took_lease.notified() => {}
            }
            let now_ms = clock.now_ms();
            let was_leader = leader;
            leader = is_leader.load(std::sync::atomic::Ordering::Relaxed);
            if leader && !was_leader {
                tracing::info!(engine = %me, "leading: recording, judging, alerting and delivering");
                // Carry on from what the last leader saved.
                match ledger.alert_state().await {
                    Ok(Some(json)) => match serde_json::from_str(&json) {
                        Ok(a) => alerts = a,
                        Err(e) => {
                            tracing::error!(error = %e, "the saved alert state is unreadable; starting with none")
                        }
                    },
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "reading the alert state failed"),
                }
            }
            // The time the ledger is complete up to: evaluation windows end there.
            let t = match &mut feeder {
                Feeder::Scrape {
                    client,
                    baselines,
                    max_gap,
                    last_problems,
                } => {
                    let t = now_ms.div_euclid(1000);
                    // A standby scrapes too (which cells are down), but records nothing: the
                    // ledger's baselines say where the leader's records reach.
                    match scrape_once(&config, &ledger, client, baselines, t, *max_gap, leader)
                        .await
                    {
                        Ok(p) => {
                            down_cells = p.down;
                            let joined = p.problems.join("; ");
                            if joined != *last_problems {
                                if !joined.is_empty() {
                                    tracing::warn!(problems = %joined, "some nodes did not answer");
                                }
                                *last_problems = joined;
                            }
                        }
                        Err(e @ LedgerError::Moved { .. }) => {
                            tracing::warn!(error = %e, "another engine recorded meanwhile; carrying on from its baselines at the next scrape")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "recording slices failed; the next scrape records the increases")
                        }
                    }
                    t
                }
                Feeder::Prometheus(src) if !leader => {
                    src.stand_by();
                    (now_ms - src.delay.as_millis() as i64).div_euclid(1000)
                }
                Feeder::Prometheus(src) => match src.pull(&config, &ledger, now_ms).await {
                    Ok(t) => {
                        match src.down_cells(&config, now_ms).await {
                            Ok(d) => down_cells = d,
                            Err(e) => {
                                tracing::warn!(error = %e, "reading up from Prometheus failed")
                            }
                        }
                        if !last_error.is_empty() {
                            tracing::info!(url = %src.url, "Prometheus answers again");
                            last_error.clear();
                        }
                        t
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_error {
                            tracing::error!(error = %msg, "reading from Prometheus failed; retrying every interval");
                            last_error = msg;
                        }
                        continue;
                    }
                },
            };
            // Silences made or expired through another engine's API: compiled once each.
            if let Err(e) = state.silences.refresh(&ledger).await {
                tracing::error!(error = %e, "reading silences failed; using the ones held");
            }
            let started = std::time::Instant::now();
            let took = |started: std::time::Instant| {
                Sample::new(
                    &m::SLO_EVALUATION_DURATION,
                    &[],
                    started.elapsed().as_secs_f64(),
                )
            };
            match evaluate_with(&config, &ledger, t, leader).await {
                Ok(r) if !leader => {
                    let mut all = samples(&r);
                    all.push(took(started));
                    let text = encode(&all);
                    state.publish(r, text);
                }
                Ok(r) => {
                    let a = &config.alerting;
                    let wanted = alerting::wanted(&config, &r, &down_cells, &a.timing);
                    let mut next = alerts.clone();
                    next.step_alerts(&wanted, t);
                    let silences = state.silences.snapshot();
                    let active: Vec<&crate::model::CompiledSilence> = silences
                        .iter()
                        .map(|c| c.as_ref())
                        .filter(|c| c.silence.state(t) == "active")
                        .collect();
                    let maintenance = &config.maintenance;
                    let muted =
                        |l: &crate::model::Labels| alerting::muted(&active, maintenance, l, t);
                    let notes = next.dispatch(&routes, &a.timing, &muted, t);
                    let duration = took(started);
                    let rows = notify::outbox_rows(a, &notes);
                    let json = serde_json::to_string(&next).unwrap_or_default();
                    // The state change and its notifications, in one transaction.
                    match ledger
                        .save_alerts(&json, t, &rows, Some((&me, clock.now_ms())))
                        .await
                    {
                        Ok(()) => {
                            for n in &notes {
                                tracing::info!(cell = %n.cell, receiver = %n.receiver, status = %n.status, reason = %n.reason, alerts = n.alerts.len(), key = %n.key, "notification queued");
                            }
                            alerts = next;
                            state.set_alerts(alerts.clone());
                            if !rows.is_empty() {
                                wake.notify_one();
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "saving the alert state failed; evaluated again next interval")
                        }
                    }
                    let mut all = samples(&r);
                    all.extend(alert_samples(&alerts));
                    all.push(duration);
                    let text = encode(&all);
                    state.publish(r, text);
                    // Scheduled reports due since the last tick (a restart or a failover within
                    // two intervals still sends them; their keys make them once only).
                    let since = match ledger.cursor("reports").await {
                        Ok(Some(ms)) => ms.div_euclid(1000),
                        _ => t - (2 * interval.as_secs() as i64).max(2),
                    }
                    .max(t - 86_400);
                    for sched in &config.alerting.reports {
                        for at in notify::occurrences(sched, since, t) {
                            match crate::report::build(&config, &ledger, at - sched.range, at).await
                            {
                                Ok(rep) => {
                                    let mail = notify::ReportMail {
                                        subject: format!("cellwatch budget report: {}", sched.name),
                                        text: crate::report::table(&rep),
                                        csv: crate::report::csv(&rep),
                                    };
                                    let row = notify::report_row(sched, at, &mail);
                                    match ledger.queue(&[row]).await {
                                        Ok(()) => {
                                            tracing::info!(report = %sched.name, receiver = %sched.receiver, "report queued");
                                            wake.notify_one();
                                        }
                                        Err(e) => {
                                            tracing::error!(error = %e, report = %sched.name, "queueing a report failed")
                                        }
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, report = %sched.name, "building a report failed")
                                }
                            }
                        }
                    }
                    if !config.alerting.reports.is_empty()
                        && let Err(e) = ledger.record_upto(&[], Some(("reports", t * 1000))).await
                    {
                        tracing::error!(error = %e, "saving the reports cursor failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "evaluation failed"),
            }
            if leader && t % 3600 < interval.as_secs() as i64 {
                // Minute rows: a day for the short windows (longer ones come from the rollups),
                // the whole period for time-slice SLOs (judged again from them when their
                // threshold changes); rollups: the period.
                for slo in &config.slos {
                    let keep = match slo.budgeting {
                        Budgeting::Timeslices { .. } => retention,
                        Budgeting::Occurrences => MINUTE_RETENTION,
                    };
                    let _ = ledger.prune_minutes(Some(&slo.name), t - keep).await;
                }
                let _ = ledger.prune_minutes(Some(""), t - MINUTE_RETENTION).await;
                // And rows of SLOs no longer configured.
                let _ = ledger.prune_minutes(None, t - retention).await;
                let _ = ledger.prune_hourly(t - retention).await;
                // Delivered notifications and ended silences: kept a period for the record.
                let _ = ledger.prune_delivered(t - retention).await;
            }
        }
    });
    let web = web.map(|mut w| {
        w.bearer_prefix = Some("/api/v1/silences");
        w
    });
    cellwatch_http::web::serve(
        listener,
        app,
        web.as_ref(),
        limits.web,
        std::future::pending(),
    )
    .await
}
