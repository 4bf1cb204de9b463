//! The ledger on SQLite and on a real PostgreSQL (`CELLWATCH_TEST_POSTGRES_URL`, which
//! `./scripts/test` starts; under CI it must be set).

use std::time::Duration;

use cellwatch_slo::config::{Budgeting, Period, Sli, Slo};
use cellwatch_slo::ledger::{Judge, Ledger, Table};
use cellwatch_slo::math::budget_remaining;
use cellwatch_slo::model::SliceData;

struct Backend {
    name: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vec![Backend {
        name: "sqlite",
        url: format!("sqlite://{}", dir.path().join("ledger.db").display()),
        _dir: Some(dir),
    }];
    match std::env::var("CELLWATCH_TEST_POSTGRES_URL") {
        Ok(admin) => {
            // A fresh database per test.
            sqlx::any::install_default_drivers();
            let db = format!("cw_{test}_{}", std::process::id());
            let pool = sqlx::AnyPool::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(b, _)| b)
                .to_string();
            v.push(Backend {
                name: "postgres",
                url: format!("{base}/{db}"),
                _dir: None,
            });
        }
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the ledger tests on PostgreSQL: set CELLWATCH_TEST_POSTGRES_URL (./scripts/test does)"
            );
            eprintln!(
                "CELLWATCH_TEST_POSTGRES_URL is not set: this run covers SQLite only (./scripts/test starts PostgreSQL)"
            );
        }
    }
    v
}

fn slice(start: i64, good: f64, total: f64) -> SliceData {
    SliceData {
        start,
        good,
        total,
        tokens: 10.0,
        joules: 20.0,
        requests: total,
    }
}

#[tokio::test]
async fn records_add_up_survive_a_restart_and_prune() {
    for b in backends("records").await {
        let l = Ledger::open(&b.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        l.record("studio-a", "latency", &slice(60, 9.0, 10.0))
            .await
            .unwrap();
        l.record("studio-a", "latency", &slice(60, 5.0, 5.0))
            .await
            .unwrap();
        l.record("studio-a", "latency", &slice(120, 1.0, 2.0))
            .await
            .unwrap();
        l.record("studio-b", "latency", &slice(60, 1.0, 1.0))
            .await
            .unwrap();
        l.close().await;

        // A restart: the same URL, the same history.
        let l = Ledger::open(&b.url).await.unwrap();
        let got = l.slices("studio-a", "latency", 0, 1000).await.unwrap();
        assert_eq!(got.len(), 2, "{}", b.name);
        assert_eq!(
            (got[0].good, got[0].total, got[0].tokens, got[0].requests),
            (14.0, 15.0, 20.0, 15.0),
            "{}",
            b.name
        );
        assert_eq!(got[1].start, 120);
        assert_eq!(
            l.slices("studio-a", "latency", 61, 1000)
                .await
                .unwrap()
                .len(),
            1,
            "{}: [from, to)",
            b.name
        );
        assert_eq!(l.prune(100).await.unwrap(), 2, "{}", b.name);
        assert_eq!(
            l.slices("studio-a", "latency", 0, 1000)
                .await
                .unwrap()
                .len(),
            1
        );
        l.close().await;
    }
}

#[tokio::test]
async fn budgets_from_the_ledger_match_the_hand_computation() {
    let slo = Slo {
        name: "latency".into(),
        description: None,
        cells: vec!["studio-a".into()],
        objective: 0.99,
        period: Period::Rolling(Duration::from_secs(86400)),
        budgeting: Budgeting::Occurrences,
        min_events: cellwatch_slo::config::MinEvents::Fixed(0),
        sli: Sli::Latency(2.0),
    };
    for b in backends("budgets").await {
        let l = Ledger::open(&b.url).await.unwrap();
        // A day of minutes: 200 requests each, 1 slow; the last hour 10 slow a minute.
        for m in 0..1440i64 {
            let bad = if m >= 1380 { 10.0 } else { 1.0 };
            l.record("studio-a", "latency", &slice(m * 60, 200.0 - bad, 200.0))
                .await
                .unwrap();
        }
        let slices = l.slices("studio-a", "latency", 0, 86400).await.unwrap();
        let remaining = budget_remaining(&slo, &slices, 86400).unwrap();
        let (total, bad) = (1440.0 * 200.0, 1380.0 + 600.0);
        assert!(
            (remaining - (1.0 - bad / (0.01 * total))).abs() < 1e-12,
            "{}: {remaining}",
            b.name
        );
        l.close().await;
    }
}

#[tokio::test]
async fn postgres_connections_run_without_jit_and_with_room_to_hash_every_cell() {
    for b in backends("session").await {
        let l = Ledger::open(&b.url).await.unwrap();
        let jit = l.postgres_setting("jit").await.unwrap();
        let work_mem = l.postgres_setting("work_mem").await.unwrap();
        match b.name {
            "postgres" => {
                assert_eq!(jit.as_deref(), Some("off"));
                assert_eq!(work_mem.as_deref(), Some("16MB"));
            }
            _ => assert_eq!((jit, work_mem), (None, None), "{}", b.name),
        }
        l.close().await;
        if b.name == "postgres" {
            // What the operator set is kept when larger, raised when smaller.
            for (asked, kept) in [("64MB", "64MB"), ("1MB", "16MB")] {
                let url = format!("{}?options[work_mem]={asked}", b.url);
                let l = Ledger::open(&url).await.unwrap();
                let work_mem = l.postgres_setting("work_mem").await.unwrap();
                assert_eq!(
                    work_mem.as_deref(),
                    Some(kept),
                    "work_mem {asked} in the URL"
                );
                assert_eq!(
                    l.postgres_setting("jit").await.unwrap().as_deref(),
                    Some("off")
                );
                l.close().await;
            }
        }
    }
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error_without_the_password() {
    let e = Ledger::open("postgres://cw:hunter2@127.0.0.1:1/cw")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("opening the ledger") && e.contains("127.0.0.1:1") && !e.contains("hunter2"),
        "{e}"
    );
}

#[tokio::test]
async fn band_sums_in_the_database_match_the_rows() {
    for b in backends("sums").await {
        let l = Ledger::open(&b.url).await.unwrap();
        // Two cells, 3 hours of minutes; cell b has twice a's traffic.
        let mut rows = Vec::new();
        for m in 0..180i64 {
            rows.push(("a".to_string(), "lat".to_string(), slice(m * 60, 9.0, 10.0)));
            rows.push((
                "b".to_string(),
                "lat".to_string(),
                slice(m * 60, 18.0, 20.0),
            ));
        }
        l.record_many(&rows).await.unwrap();
        let now = 180 * 60;
        let cols = ["good", "total", "tokens", "joules", "requests"].map(String::from);
        let minute = l
            .bands(
                Table::Minutes,
                "lat",
                &[now - 3600, now - 300, now + 1],
                &[true, true],
                &cols,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(minute["a"][0][..2], [495.0, 550.0], "{}", b.name);
        assert_eq!(minute["b"][1][..2], [90.0, 100.0], "{}", b.name);
        // The hourly rollup, skipping the middle hour (read from elsewhere).
        let hourly = l
            .bands(
                Table::Hours,
                "lat",
                &[0, 3600, 7200, now + 1],
                &[true, false, true],
                &cols,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            hourly["a"][0],
            [540.0, 600.0, 600.0, 1200.0, 600.0],
            "{}",
            b.name
        );
        assert_eq!(hourly["a"][1], [0.0; 5], "{}", b.name);
        assert_eq!(hourly["a"][2][..2], [540.0, 600.0], "{}", b.name);
        let daily = l
            .bands(Table::Days, "lat", &[0, 86400], &[true], &cols, &[])
            .await
            .unwrap();
        assert_eq!(daily["b"][0][..2], [3240.0, 3600.0], "{}", b.name);
        // A verdict as a column: minutes with 90 % good reach a 0.9 target.
        let (g, t, params) = Judge::Ratio { slice_target: 0.9 }.sql(1);
        let judged = l
            .bands(
                Table::Minutes,
                "lat",
                &[0, now + 1],
                &[true],
                &[g, t, "0".into(), "0".into(), "0".into()],
                &params,
            )
            .await
            .unwrap();
        assert_eq!(judged["a"][0][..2], [180.0, 180.0], "{}", b.name);
        assert!(
            l.bands(Table::Minutes, "nope", &[0, now], &[true], &cols, &[])
                .await
                .unwrap()
                .is_empty()
        );
        l.close().await;
    }
}

/// A deterministic pseudo-random stream (no dependency, the same on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const EQUIV_CONFIG: &str = "cells:
  - { name: a, nodes: [ { name: n, url: \"http://a:9817/metrics\" } ] }
  - { name: b, nodes: [ { name: n, url: \"http://b:9817/metrics\" } ] }
slos:
  - { name: latency, objective: 0.99, period: 5d, sli: { latency: { threshold: 2s } } }
  - { name: availability, objective: 0.995, period: calendar-month, sli: { availability: {} } }
  - { name: latency-slices, objective: 0.9, period: 5d, budgeting: timeslices, slice: 10m, slice_target: 0.95, sli: { latency: { threshold: 2s } } }
  - { name: efficiency, objective: 0.9, period: 5d, slice: 5m, sli: { tokens_per_kwh: { threshold: THRESHOLD, min_tokens: 100 } } }
";

/// Six days of random slices for two cells, every SLO kind, the month changing on the way.
fn random_rows(from: i64, to: i64, seed: u64) -> Vec<(String, String, SliceData)> {
    let mut r = Lcg(seed);
    let mut rows = Vec::new();
    for cell in ["a", "b"] {
        let mut t = from;
        while t < to {
            for (slo, every) in [
                ("latency", 600),
                ("availability", 600),
                ("latency-slices", 600),
                ("efficiency", 300),
                ("", 600),
            ] {
                if t % every != 0 || r.next(10) == 0 {
                    continue; // gaps: no data
                }
                let total = r.next(40) as f64; // zero sometimes: idle
                let good = total - (r.next(3) as f64).min(total);
                let tokens = [0.0, 50.0, 5_000.0, 20_000.0][r.next(4) as usize];
                let joules = [0.0, 1.0e5, 2.0e5, 4.0e5][r.next(4) as usize];
                rows.push((
                    cell.to_string(),
                    slo.to_string(),
                    SliceData {
                        start: t,
                        good,
                        total,
                        tokens,
                        joules,
                        requests: total,
                    },
                ));
            }
            t += 300;
        }
    }
    rows
}

/// The report the pure math gives for the same rows, with the engine's windows: up to 6h, the
/// slices that start in the last `w` before `to` (`now + 1`, or the start of the time slice in
/// progress); a day and longer, and the period, from the start of the hour in which they begin.
/// The burn rate of a judged window.
fn burn(w: cellwatch_slo::math::WindowState) -> Option<f64> {
    match w {
        cellwatch_slo::math::WindowState::Judged { burn_rate, .. } => Some(burn_rate),
        _ => None,
    }
}

fn check_against_math(
    name: &str,
    cfg: &cellwatch_slo::config::Config,
    rows: &[(String, String, SliceData)],
    report: &cellwatch_slo::eval::Report,
    now: i64,
) {
    use cellwatch_slo::math;
    for s in &report.slos {
        let slo = cfg.slos.iter().find(|x| x.name == s.slo).unwrap();
        let slices: Vec<SliceData> = rows
            .iter()
            .filter(|(c, n, _)| *c == s.cell && *n == s.slo)
            .map(|(_, _, d)| *d)
            .collect();
        let to = match slo.budgeting {
            Budgeting::Timeslices { slice, .. } => math::slice_start(now, slice),
            Budgeting::Occurrences => now + 1,
        };
        let (start, _) = math::period_bounds(&slo.period, now);
        let hour = |t: i64| t - t.rem_euclid(3600);
        for (i, (w, secs)) in cellwatch_slo::model::WINDOWS.iter().enumerate() {
            let from = if *secs > 21_600 {
                hour(to - *secs as i64)
            } else {
                to - *secs as i64
            };
            let want = math::tally(slo, &slices, from, to);
            let got = &s.windows[i];
            assert_eq!(got.window, *w);
            assert_eq!(got.total, want.total, "{name}: {} {} {w}", s.cell, s.slo);
            assert_eq!(
                got.sli,
                (want.total > 0.0).then(|| want.good / want.total),
                "{name}: {} {} {w}",
                s.cell,
                s.slo
            );
            assert_eq!(got.burn_rate, burn(math::window_state(slo, want, *secs)));
        }
        let want = math::tally(slo, &slices, hour(start), to);
        let period = math::window_state(slo, want, math::period_elapsed(slo, now));
        assert_eq!(s.windows.last().unwrap().burn_rate, burn(period));
        assert_eq!(
            s.windows.last().unwrap().total,
            want.total,
            "{name}: {} {} period",
            s.cell,
            s.slo
        );
        assert_eq!(
            s.budget_remaining,
            math::budget_from_tally(slo, want, now),
            "{name}: {} {} budget",
            s.cell,
            s.slo
        );
    }
    for c in &report.cells {
        let totals: Vec<SliceData> = rows
            .iter()
            .filter(|(cell, n, _)| *cell == c.cell && n.is_empty())
            .map(|(_, _, d)| *d)
            .collect();
        for (w, secs) in cellwatch_slo::model::WINDOWS {
            let from = if secs > 21_600 {
                (now + 1 - secs as i64).div_euclid(3600) * 3600
            } else {
                now + 1 - secs as i64
            };
            let (tokens, joules) = totals
                .iter()
                .filter(|d| d.start >= from && d.start <= now)
                .fold((0.0, 0.0), |(t, j), d| (t + d.tokens, j + d.joules));
            assert_eq!(
                c.tokens_per_kwh[w],
                math::tokens_per_kwh(tokens, joules),
                "{name}: {} {w}",
                c.cell
            );
        }
    }
}

#[tokio::test]
async fn evaluation_in_the_database_equals_the_pure_math() {
    use cellwatch_slo::eval::evaluate;
    // 2026-03-04 00:00 UTC: the calendar month began three days ago.
    let now = 1_772_582_400;
    let path = std::path::Path::new("equiv.yaml");
    let cfg =
        cellwatch_slo::config::parse(&EQUIV_CONFIG.replace("THRESHOLD", "150000"), path).unwrap();
    let first = random_rows(now - 6 * 86400, now + 1, 7);
    // The next two hours, recorded later.
    let later = random_rows(now + 300, now + 7200 + 1, 11);
    for b in backends("equiv").await {
        let l = Ledger::open(&b.url).await.unwrap();
        l.record_many(&first).await.unwrap();
        let r = evaluate(&cfg, &l, now).await.unwrap();
        check_against_math(b.name, &cfg, &first, &r, now);
        // Again: nothing is judged twice.
        let r = evaluate(&cfg, &l, now).await.unwrap();
        check_against_math(&format!("{} again", b.name), &cfg, &first, &r, now);
        // More slices, judged incrementally.
        l.record_many(&later).await.unwrap();
        let all: Vec<_> = first.iter().chain(&later).cloned().collect();
        let r = evaluate(&cfg, &l, now + 7200).await.unwrap();
        check_against_math(&format!("{} later", b.name), &cfg, &all, &r, now + 7200);
        // A new threshold: every kept slice is judged again under it.
        let cfg2 = cellwatch_slo::config::parse(&EQUIV_CONFIG.replace("THRESHOLD", "60000"), path)
            .unwrap();
        let r = evaluate(&cfg2, &l, now + 7200).await.unwrap();
        check_against_math(
            &format!("{} new threshold", b.name),
            &cfg2,
            &all,
            &r,
            now + 7200,
        );
        l.close().await;
    }
}

/// The leader's evaluator keeps each series' settled sums and moves them from tick to tick: at
/// every tick over two days (crossing a month and midnight, ticks from 15 s to 4 h apart,
/// slices recorded in parts, late rows, verdicts judged again under a new threshold) its report
/// is the pure math's for the rows recorded so far, and it sums in full only when it must.
#[tokio::test]
async fn kept_sums_move_from_tick_to_tick_and_equal_the_pure_math() {
    use cellwatch_slo::eval::Evaluator;
    // 2026-02-28 20:00 UTC: the calendar month ends in four hours.
    let start = 1_772_308_800;
    let path = std::path::Path::new("equiv.yaml");
    let cfg =
        cellwatch_slo::config::parse(&EQUIV_CONFIG.replace("THRESHOLD", "150000"), path).unwrap();
    let cfg2 =
        cellwatch_slo::config::parse(&EQUIV_CONFIG.replace("THRESHOLD", "60000"), path).unwrap();
    let mut rows = random_rows(start - 6 * 86400, start + 2 * 86400, 23);
    rows.sort_by_key(|r| r.2.start);
    for b in backends("kept").await {
        let l = Ledger::open(&b.url).await.unwrap();
        let mut ev = Evaluator::keeping(&l);
        let mut r = Lcg(5);
        // What was written: a row of an occurrence SLO or of the totals may be written in two
        // halves, the second at the next tick.
        let mut recorded: Vec<(String, String, SliceData)> = Vec::new();
        let mut pending: Vec<(String, String, SliceData)> = Vec::new();
        let mut next = 0;
        let mut t = start;
        let (mut ticks, mut late, mut moved, mut prev) = (0, 0, 0, start);
        let ticks_max = if b.name == "sqlite" { 400 } else { 150 };
        let mut config = &cfg;
        while ticks < ticks_max && t < start + 2 * 86400 {
            let mut write = std::mem::take(&mut pending);
            while next < rows.len() && rows[next].2.start <= t {
                let row = rows[next].clone();
                next += 1;
                let split = matches!(row.1.as_str(), "latency" | "availability" | "")
                    && row.2.start > t - 300;
                if split {
                    let mut half = row.2;
                    for v in [
                        &mut half.good,
                        &mut half.total,
                        &mut half.tokens,
                        &mut half.joules,
                        &mut half.requests,
                    ] {
                        *v /= 2.0;
                    }
                    write.push((row.0.clone(), row.1.clone(), half));
                    pending.push((row.0, row.1, half));
                } else {
                    write.push(row);
                }
            }
            let full_before = ev.full_sums();
            // The series that must be summed in full: those written before what they settled
            // at the last tick (two minutes before its end, on the minute).
            let settled = (prev + 1).div_euclid(60) * 60 - 120;
            let mut must: std::collections::BTreeSet<String> = write
                .iter()
                .filter(|(_, _, d)| ticks > 0 && d.start < settled)
                .map(|(_, slo, _)| slo.clone())
                .collect();
            // Now and then a late row, an hour back.
            if ticks > 0 && r.next(25) == 0 {
                let start = (t - 3600).div_euclid(600) * 600;
                write.push((
                    "a".into(),
                    "latency".into(),
                    SliceData {
                        start,
                        good: 3.0,
                        total: 4.0,
                        tokens: 0.0,
                        joules: 0.0,
                        requests: 4.0,
                    },
                ));
                if start < settled {
                    must.insert("latency".into());
                    late += 1;
                }
            }
            if !write.is_empty() {
                l.record_many(&write).await.unwrap();
            }
            // Halfway, a new threshold: its time slices are judged again from the start.
            if ticks == ticks_max / 2 {
                config = &cfg2;
                must.insert("efficiency".into());
            }
            let report = ev.evaluate(config, &l, t, true).await.unwrap();
            let so_far: Vec<_> = recorded.iter().chain(&write).cloned().collect();
            check_against_math(&format!("{} at {t}", b.name), config, &so_far, &report, t);
            let full = ev.full_sums() - full_before;
            let want = if ticks == 0 { 5 } else { must.len() as u64 };
            assert_eq!(full, want, "{} at {t}: full sums ({must:?})", b.name);
            recorded.extend(write);
            moved += 5 - full;
            ticks += 1;
            prev = t;
            t += [15, 60, 60, 60, 60, 60, 300, 1800, 4 * 3600][r.next(9).min(r.next(9)) as usize];
        }
        eprintln!(
            "{}: {ticks} ticks, {late} late rows, {moved} sums moved on",
            b.name
        );
        assert!(late >= 3, "{}: {late} late rows", b.name);
        assert!(
            moved >= 4 * ticks,
            "{}: {moved} sums moved on in {ticks} ticks",
            b.name
        );
        l.close().await;
    }
}

#[tokio::test]
async fn the_outbox_claims_once_and_prunes_what_was_delivered() {
    use cellwatch_slo::ledger::OutboxRow;
    for b in backends("outbox").await {
        let l = Ledger::open(&b.url).await.unwrap();
        let row = |key: &str| OutboxRow {
            key: key.into(),
            receiver: "oncall".into(),
            integration: "email".into(),
            payload: "{}".into(),
            created_at: 100,
            attempts: 0,
        };
        l.save_alerts("{}", 100, &[row("a"), row("b")], None)
            .await
            .unwrap();
        // Queued again (a retry of the same evaluation): still two rows.
        l.queue(&[row("a")]).await.unwrap();
        let first = l.due(100, 10).await.unwrap();
        assert_eq!(first.len(), 2, "{}", b.name);
        // Claimed: nobody else gets them for 30 s.
        assert!(l.due(101, 10).await.unwrap().is_empty(), "{}", b.name);
        l.attempted("a", 102, Ok(())).await.unwrap();
        l.attempted("b", 102, Err(("SMTP down", 104)))
            .await
            .unwrap();
        assert!(
            l.due(103, 10).await.unwrap().is_empty(),
            "{}: b waits",
            b.name
        );
        let again = l.due(104, 10).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1), "{}", b.name);
        // A save by an engine that does not hold the lease writes nothing.
        assert!(l.lease("leader", "me", 1_000, 500).await.unwrap());
        assert!(
            !l.lease("leader", "other", 1_200, 500).await.unwrap(),
            "{}",
            b.name
        );
        let e = l
            .save_alerts("{}", 100, &[row("c")], Some(("other", 1_200)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not the leader"), "{}: {e}", b.name);
        assert!(
            l.lease("leader", "other", 1_600, 500).await.unwrap(),
            "{}: expired",
            b.name
        );
        assert_eq!(l.prune_delivered(103).await.unwrap(), 1, "{}", b.name);
        l.close().await;
    }
}

/// Serves one exporter page at `/metrics` with `n` ok requests; `set` changes `n`.
async fn counter_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let page = n.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = page.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                format!(
                    "# TYPE cellwatch_inference_requests_total counter\n\
                     cellwatch_inference_requests_total{{model=\"m\",outcome=\"ok\"}} {n}\n"
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/metrics"), n)
}

/// A leader that cannot write (a failed write, a lost lease) consumes no increase: it is
/// recorded once when the lease is back, or by the next leader, which carries on from the
/// ledger's baselines; two engines that both think they lead never count twice.
#[tokio::test]
async fn increases_scraped_while_not_recording_are_recorded_exactly_once() {
    use cellwatch_slo::source::scrape::{Baselines, scrape_once};
    use std::sync::atomic::Ordering;
    let (url, n) = counter_server().await;
    let cfg = cellwatch_slo::config::parse(
        &format!(
            "cells:\n  - {{ name: c, nodes: [ {{ name: n1, url: \"{url}\" }} ] }}\n\
             slos:\n  - {{ name: a, objective: 0.99, period: 1d, sli: {{ availability: {{}} }} }}\n"
        ),
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    let client = cellwatch_exporter::tls::http_client().build().unwrap();
    for b in backends("handover").await {
        let l = Ledger::open(&b.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        // (the SLO's total, the cell's requests) recorded so far.
        let recorded = async |l: &Ledger| {
            let slo = l.slices("c", "a", 0, 100_000).await.unwrap();
            let cell = l.slices("c", "", 0, 100_000).await.unwrap();
            (
                slo.iter().map(|s| s.total).sum::<f64>(),
                cell.iter().map(|s| s.requests).sum::<f64>(),
            )
        };
        let scrape = async |base: &mut Baselines, l: &Ledger, count: u64, t: i64, lead: bool| {
            n.store(count, Ordering::SeqCst);
            scrape_once(&cfg, l, &client, base, &mut Default::default(), t, 30, lead)
                .await
                .map(|_| ())
        };
        let (mut a, mut b2): (Baselines, Baselines) = (None, None);
        // A leads: a baseline, then 10 requests.
        scrape(&mut a, &l, 0, 1000, true).await.unwrap();
        scrape(&mut a, &l, 10, 1001, true).await.unwrap();
        assert_eq!(recorded(&l).await, (10.0, 10.0), "{}", b.name);
        // A loses the lease for two scrapes (10 more requests), then regains it.
        scrape(&mut a, &l, 15, 1002, false).await.unwrap();
        scrape(&mut a, &l, 20, 1003, false).await.unwrap();
        assert_eq!(recorded(&l).await, (10.0, 10.0), "{}", b.name);
        scrape(&mut a, &l, 25, 1004, true).await.unwrap();
        assert_eq!(
            recorded(&l).await,
            (25.0, 25.0),
            "{}: once, when the lease is back",
            b.name
        );
        // B takes over while A still thinks it leads and holds a reading older than B's last
        // (A stalled between its scrape and its write): A writes nothing, B's records stand.
        scrape(&mut b2, &l, 30, 1005, true).await.unwrap();
        let stale = scrape(&mut a, &l, 28, 1005, true).await.unwrap_err();
        assert!(
            matches!(stale, cellwatch_slo::ledger::LedgerError::Moved { .. }),
            "{}: {stale}",
            b.name
        );
        assert_eq!(
            recorded(&l).await,
            (30.0, 30.0),
            "{}: nothing twice",
            b.name
        );
        scrape(&mut b2, &l, 40, 1007, true).await.unwrap();
        // A's next scrape starts from B's baseline.
        scrape(&mut a, &l, 42, 1008, true).await.unwrap();
        assert_eq!(recorded(&l).await, (42.0, 42.0), "{}: handed over", b.name);
        // A write that fails moves nothing: the next one records both scrapes' increases.
        let closed = Ledger::open(&b.url).await.unwrap();
        closed.clone().close().await;
        assert!(scrape(&mut a, &closed, 45, 1009, true).await.is_err());
        assert_eq!(recorded(&l).await, (42.0, 42.0), "{}", b.name);
        scrape(&mut a, &l, 50, 1010, true).await.unwrap();
        assert_eq!(
            recorded(&l).await,
            (50.0, 50.0),
            "{}: after a failed write",
            b.name
        );
        // A restart carries on from the ledger's baselines.
        let mut c: Baselines = None;
        scrape(&mut c, &l, 55, 1011, true).await.unwrap();
        assert_eq!(
            recorded(&l).await,
            (55.0, 55.0),
            "{}: after a restart",
            b.name
        );
        // Longer than max_gap since the last record, no reset: the whole increase counts.
        scrape(&mut c, &l, 70, 1100, true).await.unwrap();
        scrape(&mut c, &l, 71, 1101, true).await.unwrap();
        assert_eq!(recorded(&l).await, (71.0, 71.0), "{}: after a gap", b.name);
        // More than an hour since the last record: only a new baseline.
        scrape(&mut c, &l, 80, 1101 + 3601, true).await.unwrap();
        scrape(&mut c, &l, 81, 1101 + 3602, true).await.unwrap();
        assert_eq!(
            recorded(&l).await,
            (72.0, 72.0),
            "{}: after more than an hour",
            b.name
        );
        l.close().await;
    }
}

/// A query source's stretch is recorded only from where the ledger's cursor is: an engine
/// that read the cursor before another recorded writes nothing.
#[tokio::test]
async fn a_query_sources_stretch_is_recorded_once() {
    use cellwatch_slo::ledger::LedgerError;
    for b in backends("chunks").await {
        let l = Ledger::open(&b.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        let rows = vec![("c".to_string(), "a".to_string(), slice(60, 9.0, 10.0))];
        let total = async || -> f64 {
            l.slices("c", "a", 0, 1000)
                .await
                .unwrap()
                .iter()
                .map(|s| s.total)
                .sum()
        };
        l.record_chunk(&rows, "prometheus x", None, 60_000)
            .await
            .unwrap();
        // A second engine that also found no cursor, and one that read an old one.
        for expected in [None, Some(0)] {
            let e = l
                .record_chunk(&rows, "prometheus x", expected, 60_000)
                .await
                .unwrap_err();
            assert!(matches!(e, LedgerError::Moved { .. }), "{}: {e}", b.name);
        }
        assert_eq!(total().await, 10.0, "{}", b.name);
        l.record_chunk(&rows, "prometheus x", Some(60_000), 120_000)
            .await
            .unwrap();
        assert_eq!(total().await, 20.0, "{}", b.name);
        assert_eq!(l.cursor("prometheus x").await.unwrap(), Some(120_000));
        l.close().await;
    }
}

#[tokio::test]
async fn zero_traffic_is_data_and_no_rows_is_no_data() {
    let cfg = cellwatch_slo::config::parse(
        "cells:
  - { name: idle, nodes: [ { name: n1, url: \"http://n1:9817/metrics\" } ] }
  - { name: silent, nodes: [ { name: n1, url: \"http://m1:9817/metrics\" } ] }
slos:
  - { name: latency, objective: 0.99, period: 30d, sli: { latency: { threshold: 2s } } }
",
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    let now = 40 * 86_400;
    for b in backends("nodata").await {
        let l = Ledger::open(&b.url).await.unwrap();
        // The idle cell's exporters answered: rows of zeros (and idle watts in the totals).
        l.record("idle", "latency", &slice(now - 120, 0.0, 0.0))
            .await
            .unwrap();
        let mut totals = slice(now - 120, 0.0, 0.0);
        totals.joules = 6000.0;
        l.record("idle", "", &totals).await.unwrap();
        let r = cellwatch_slo::eval::evaluate(&cfg, &l, now).await.unwrap();
        let missing: Vec<(&str, bool)> = r
            .slos
            .iter()
            .map(|s| (s.cell.as_str(), s.data_missing))
            .collect();
        assert_eq!(missing, [("idle", false), ("silent", true)], "{}", b.name);
        l.close().await;
    }
}

#[tokio::test]
async fn the_hourly_history_and_the_notifications_of_a_period() {
    use cellwatch_slo::ledger::{HourRow, OutboxRow};
    let h0 = 20_000 * 86_400;
    for b in backends("history").await {
        let l = Ledger::open(&b.url).await.unwrap();
        let mut rows = Vec::new();
        // Cell a: two minutes in hour 0 (one partly bad), one in hour 2; one before the range
        // and one at its end (left out). Cell b: hour 1. Another SLO: left out.
        for (cell, slo, start, good, total) in [
            ("a", "avail", h0 + 60, 90.0, 100.0),
            ("a", "avail", h0 + 120, 100.0, 100.0),
            ("a", "avail", h0 + 2 * 3600 + 60, 50.0, 50.0),
            ("a", "avail", h0 - 60, 1.0, 1.0),
            ("a", "avail", h0 + 3 * 3600, 1.0, 1.0),
            ("b", "avail", h0 + 3600 + 600, 7.0, 8.0),
            ("a", "other", h0 + 60, 1.0, 1.0),
        ] {
            rows.push((cell.to_string(), slo.to_string(), slice(start, good, total)));
        }
        l.record_many(&rows).await.unwrap();
        let h = l
            .hourly_history("avail", false, h0, h0 + 3 * 3600)
            .await
            .unwrap();
        let row = |start, good, total| HourRow { start, good, total };
        assert_eq!(
            h["a"],
            [row(h0, 190.0, 200.0), row(h0 + 7200, 50.0, 50.0)],
            "{}",
            b.name
        );
        assert_eq!(h["b"], [row(h0 + 3600, 7.0, 8.0)], "{}", b.name);
        assert_eq!(h.len(), 2, "{}", b.name);
        // Judged time slices: a slice is good at 90 % good events; none judged yet.
        let judged = l
            .hourly_history("avail", true, h0, h0 + 3 * 3600)
            .await
            .unwrap();
        assert_eq!(judged["a"][0], row(h0, 0.0, 0.0), "{}", b.name);
        let judge = Judge::Ratio { slice_target: 0.95 };
        l.judge("avail", &judge, 60, h0, h0 + 3 * 3600)
            .await
            .unwrap();
        let judged = l
            .hourly_history("avail", true, h0, h0 + 3 * 3600)
            .await
            .unwrap();
        assert_eq!(
            judged["a"],
            [row(h0, 1.0, 2.0), row(h0 + 7200, 1.0, 1.0)],
            "{}",
            b.name
        );
        assert_eq!(judged["b"], [row(h0 + 3600, 0.0, 1.0)], "{}", b.name);

        // Notifications: one row per notification, whatever its integrations; reports and
        // rows outside the range left out.
        let out = |key: &str, integration: &str, payload: &str, at: i64| OutboxRow {
            key: format!("{key}#{integration}"),
            receiver: "oncall".into(),
            integration: integration.into(),
            payload: payload.into(),
            created_at: at,
            attempts: 0,
        };
        l.queue(&[
            out("n1", "email", "{\"n\":1}", h0 + 100),
            out("n1", "slack", "{\"n\":1}", h0 + 100),
            out("n2", "email", "{\"n\":2}", h0 + 200),
            out("r", "report", "{\"report\":1}", h0 + 150),
            out("n0", "email", "{\"n\":0}", h0 - 1),
            out("n3", "email", "{\"n\":3}", h0 + 300),
        ])
        .await
        .unwrap();
        assert_eq!(
            l.notifications_between(h0, h0 + 300).await.unwrap(),
            [
                (h0 + 100, "{\"n\":1}".to_string()),
                (h0 + 200, "{\"n\":2}".to_string())
            ],
            "{}",
            b.name
        );
        l.close().await;
    }
}
