//! `cellwatch-slo run`: the clock, the leader lease, the leader's tick (read the source, evaluate,
//! step the alerts, publish, send the scheduled reports, prune), the delivery loop. This module
//! only wires them to the web's routes.

mod deliver;
mod feeder;
mod leader;
mod lease;
mod prune;
mod reports;
pub mod trace;

use crate::config::Config;
use crate::eval::retention;
use crate::ledger::Ledger;
pub use crate::util::time::Clock;
use crate::util::time::now_ms;
use crate::web::{AppState, Limits};
use deliver::deliver_forever;
use feeder::Feeder;
use leader::Leader;
use lease::{LeaseTimeline, hold_lease};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::Notify;

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
    let me = engine_name();
    run_web(config, ledger, listen, clock, None, Limits::default(), me).await
}

/// A new name for this engine in the leader lease (and `service.instance.id` of its traces):
/// its process id and the time.
pub fn engine_name() -> String {
    format!("{}-{}", std::process::id(), now_ms() % 1_000_000)
}

/// As [`run_with`], serving over TLS and behind basic authentication when `web` says so
/// (`--web.config.file`); silence writes keep authenticating with the API's bearer token.
/// `me` is this engine's name in the leader lease ([`engine_name`]).
pub async fn run_web(
    config: Config,
    ledger: Ledger,
    listen: &str,
    clock: Clock,
    web: Option<cellwatch_http::web::WebConfig>,
    limits: Limits,
    me: String,
) -> std::io::Result<()> {
    let retention = retention(&config);
    let (interval, feeder) = Feeder::new(&config.source, retention);
    let token = config.alerting.api_token.clone();
    let state = AppState::new(ledger.clone(), clock.clone(), token, limits).with_slos(&config.slos);
    let routes = crate::alerting::Routes::new(&config.alerting.routes);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, cells = config.cells.len(), slos = config.slos.len(), "listening");
    let app = crate::web::router(state.clone());
    let wake = Arc::new(Notify::new());
    let is_leader = Arc::new(AtomicBool::new(false));
    // This engine's name in the leader lease (`me`): a standby takes over within two
    // intervals of the leader's last renewal.
    let took_lease = Arc::new(Notify::new());
    let lease = LeaseTimeline::default();
    tokio::spawn(hold_lease(
        ledger.clone(),
        me.clone(),
        interval,
        clock.clone(),
        lease.clone(),
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
    let leader = Leader {
        evaluator: crate::eval::Evaluator::keeping(&ledger),
        config,
        ledger,
        clock,
        web: state,
        routes,
        me,
        lease,
        is_leader,
        wake,
        interval,
        retention,
        feeder,
        leading: false,
        alerts: Default::default(),
        down_cells: Default::default(),
    };
    tokio::spawn(leader.run(took_lease));
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
