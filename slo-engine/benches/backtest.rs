//! `cargo bench -p cellwatch-slo --bench backtest`: the replay of a month of a four-node cell
//! (the `month` scenario: 30 days every 15 s, about 26 million samples, after a month of
//! baseline read every 5 minutes) through the ledger (SQLite in memory), the evaluation and the
//! alert state machine. The history is generated before the timing; the replay is timed.

use std::path::Path;

use cellwatch_slo::backtest::{self, Input, Options};

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 2, sample_size = 1)]
fn replay_a_month_of_a_four_node_cell(b: divan::Bencher<'_, '_>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/backtest/cell.yaml");
    let config = cellwatch_slo::config::load(&path).unwrap();
    let o = Options {
        configs: vec![("cell.yaml".into(), config)],
        input: Input::Scenario("month".into()),
        range: None,
        ledger: None,
        exact: false,
    };
    let history = rt.block_on(backtest::load(&o)).unwrap();
    b.bench_local(|| {
        let r = rt.block_on(backtest::run(&o, &history)).unwrap();
        let r = &r[0];
        eprintln!(
            "{} days, {} evaluations, {} notifications, replayed in {:.2} s",
            (r.to - r.from) / 86_400,
            r.evaluations,
            r.notifications.len(),
            r.replay_seconds
        );
    });
}
