//! `cargo bench -p cellwatch-exporter`: parsing one powermetrics plist sample, and encoding a
//! full snapshot (every collector's series, as on a Mac Studio with three Thunderbolt links).

use std::path::Path;
use std::time::Duration;

use cellwatch_exporter::collector::powermetrics::PowerHandler;
use cellwatch_exporter::collector::thunderbolt::{Counters, Topology};
use cellwatch_exporter::collector::vmstat;
use cellwatch_exporter::node::Identity;
use cellwatch_exporter::parse::{
    ibv_devinfo, netstat, networksetup, powermetrics, rdma_ctl, sysctl, system_profiler, vm_stat,
};
use cellwatch_exporter::store::{self, Sample, Store};
use cellwatch_exporter::supervisor::Handler;

fn main() {
    divan::main();
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/macos")
            .join(name),
    )
    .unwrap()
}

fn full_snapshot() -> Vec<Sample> {
    let store = Store::new();
    store.set_info(
        Identity {
            cell: "a".into(),
            node: "b".into(),
            hw_model: "Mac15,14".into(),
            os_version: "26.2".into(),
        }
        .samples(),
    );
    let slot = store.slot("powermetrics");
    slot.supervised();
    slot.publish(
        PowerHandler::default()
            .document(fixture("powermetrics-m3ultra.plist").as_bytes())
            .unwrap(),
        Duration::ZERO,
        true,
    );
    let slot = store.slot("vmstat");
    let vm = vm_stat::parse(&fixture("vm_stat.txt")).unwrap();
    let ctl = sysctl::parse(&fixture("sysctl.txt")).unwrap();
    slot.publish(
        vmstat::samples(Some(&vm), Some(&ctl)).0,
        Duration::ZERO,
        true,
    );
    let slot = store.slot("thunderbolt");
    let t = Topology {
        links: Topology::links_from(&networksetup::parse(&fixture("networksetup.txt")).unwrap()),
        receptacles: Some(system_profiler::parse(&fixture("system_profiler.json")).unwrap()),
        rdma_devices: Some(ibv_devinfo::parse(&fixture("ibv_devinfo.txt")).unwrap()),
        rdma_enabled: Some(rdma_ctl::parse(&fixture("rdma_ctl.txt")).unwrap()),
    };
    let mut s = t.samples();
    s.extend(Counters::default().samples(
        &t.links,
        &netstat::parse(&fixture("netstat-ib.txt")).unwrap(),
    ));
    slot.publish(s, Duration::ZERO, true);
    store.samples()
}

#[divan::bench]
fn parse_powermetrics_plist(b: divan::Bencher<'_, '_>) {
    let doc = fixture("powermetrics-m3ultra.plist").into_bytes();
    b.counter(divan::counter::BytesCount::new(doc.len()))
        .bench(|| powermetrics::parse(divan::black_box(&doc)).unwrap());
}

#[divan::bench]
fn powermetrics_document_to_samples(b: divan::Bencher<'_, '_>) {
    let doc = fixture("powermetrics-m3ultra.plist").into_bytes();
    let mut h = PowerHandler::default();
    b.bench_local(|| h.document(divan::black_box(&doc)).unwrap());
}

#[divan::bench]
fn encode_full_snapshot(b: divan::Bencher<'_, '_>) {
    let samples = full_snapshot();
    b.counter(divan::counter::ItemsCount::new(samples.len()))
        .bench(|| store::encode(divan::black_box(&samples)));
}

#[divan::bench]
fn parse_netstat(b: divan::Bencher<'_, '_>) {
    let text = fixture("netstat-ib.txt");
    b.bench(|| netstat::parse(divan::black_box(&text)).unwrap());
}

#[divan::bench]
fn parse_vm_stat(b: divan::Bencher<'_, '_>) {
    let text = fixture("vm_stat.txt");
    b.bench(|| vm_stat::parse(divan::black_box(&text)).unwrap());
}
