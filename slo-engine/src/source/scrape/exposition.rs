//! Reading an exporter's `/metrics` page: the families the engine reads.

use prometheus_parse::{Scrape, Value};

use std::collections::BTreeMap;

use cellwatch_metrics as m;

use super::tracker::Reading;
use crate::health::{LinkObs, NodeSnapshot};

/// The families the engine reads from an exporter: latency, time to first token and time per
/// output token (histograms), requests, tokens and energy (counters), and the waiting requests
/// (a gauge: its readings are kept as they are, never turned into increases; see
/// [`increase`](super::increase)).
pub static FAMILIES: [&cellwatch_metrics::MetricDef; 7] = [
    &cellwatch_metrics::INFERENCE_REQUEST_DURATION,
    &cellwatch_metrics::INFERENCE_TTFT,
    &cellwatch_metrics::INFERENCE_REQUESTS,
    &cellwatch_metrics::INFERENCE_TOKENS,
    &cellwatch_metrics::NODE_ENERGY_JOULES,
    &cellwatch_metrics::INFERENCE_TPOT,
    &cellwatch_metrics::INFERENCE_WAITING,
];

pub(super) fn le(x: f64) -> String {
    if x.is_infinite() {
        "+Inf".into()
    } else {
        format!("{x}")
    }
}

/// Parses an exporter's `/metrics` page into the counters the SLOs read.
pub fn read(page: &str) -> Result<Reading, String> {
    read_all(page).map(|(r, _)| r)
}

/// Parses an exporter's `/metrics` page into the counters the SLOs read and the node's health
/// series.
pub fn read_all(page: &str) -> Result<(Reading, NodeSnapshot), String> {
    let scrape = Scrape::parse(page.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| format!("not a metrics page: {e}"))?;
    if scrape.samples.is_empty() {
        return Err("no samples on the page".into());
    }
    let reading = counters(&scrape);
    let snapshot = snapshot(&scrape, &reading);
    Ok((reading, snapshot))
}

/// The counters the SLOs read.
fn counters(scrape: &Scrape) -> Reading {
    let mut out = Reading::new();
    for s in &scrape.samples {
        let base = s
            .metric
            .trim_end_matches("_count")
            .trim_end_matches("_bucket");
        if !FAMILIES.iter().any(|f| f.name == base) {
            continue;
        }
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        match &s.value {
            Value::Histogram(buckets) => {
                for b in buckets.iter().filter(|b| b.count.is_finite()) {
                    let mut l = labels.clone();
                    l.push(("le".into(), le(b.less_than)));
                    l.sort();
                    out.insert((format!("{base}_bucket"), l), b.count);
                }
            }
            Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) if v.is_finite() => {
                out.insert((s.metric.clone(), labels), *v);
            }
            _ => {}
        }
    }
    out
}

/// A finite value of a counter, gauge or untyped sample.
fn value(v: &Value) -> Option<f64> {
    match v {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) if v.is_finite() => Some(*v),
        _ => None,
    }
}

/// The node's health series: links, RDMA, whole-node power, restart counters, and the
/// latency histograms summed over models (from `reading`).
fn snapshot(scrape: &Scrape, reading: &Reading) -> NodeSnapshot {
    let mut s = NodeSnapshot::default();
    let mut power: BTreeMap<String, f64> = BTreeMap::new();
    let mut links: BTreeMap<String, LinkObs> = BTreeMap::new();
    for x in &scrape.samples {
        let Some(v) = value(&x.value) else { continue };
        let l = |k: &str| x.labels.get(k).unwrap_or("").to_string();
        let name = l("link");
        match x.metric.as_str() {
            n if n == m::LINK_INFO.name => {
                let (rdma, peer, domain, pd) =
                    (l("rdma_device"), l("peer"), l("domain"), l("peer_domain"));
                let o = link_of(&mut links, &name);
                (o.rdma_device, o.peer, o.domain, o.peer_domain) = (rdma, peer, domain, pd);
            }
            n if n == m::LINK_UP.name => link_of(&mut links, &name).up = Some(v > 0.0),
            n if n == m::LINK_SPEED.name => link_of(&mut links, &name).speed = Some(v),
            n if n == m::LINK_ERRORS.name => link_of(&mut links, &name).errors += v,
            n if n == m::RDMA_PORT_ACTIVE.name => {
                s.rdma_active.insert(l("device"), v > 0.0);
            }
            n if n == m::RDMA_ENABLED.name => s.rdma_enabled = Some(v > 0.0),
            n if n == m::NODE_POWER_WATTS.name => {
                power.insert(l("source"), v);
            }
            n if n == m::COLLECTOR_RESTARTS.name => {
                s.restarts.insert(("collector", l("collector")), v);
            }
            n if n == m::INFERENCE_UPSTREAM_RESTARTS.name => {
                *s.restarts.entry(("inference", l("server"))).or_default() += v;
            }
            _ => {}
        }
    }
    s.links = links.into_values().filter(|l| !l.link.is_empty()).collect();
    let p = |k: &str| power.get(k).copied();
    // The whole-node rule of the energy counters: SMC, else SoC; else RAPL plus NVIDIA.
    s.power_watts = p("smc")
        .or_else(|| p("soc"))
        .or_else(|| match (p("rapl"), p("nvidia")) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        });
    s.latency = histogram(reading, m::INFERENCE_REQUEST_DURATION.name);
    s.ttft = histogram(reading, m::INFERENCE_TTFT.name);
    s
}

/// The link named `name`, added when new.
fn link_of<'a>(links: &'a mut BTreeMap<String, LinkObs>, name: &str) -> &'a mut LinkObs {
    links.entry(name.to_string()).or_insert_with(|| LinkObs {
        link: name.to_string(),
        ..Default::default()
    })
}

/// A histogram's cumulative buckets summed over its series: (bound, count).
fn histogram(reading: &Reading, family: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{family}_bucket");
    let mut by: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for ((f, labels), v) in reading {
        if *f != bucket {
            continue;
        }
        let le = labels.iter().find(|(k, _)| k == "le").and_then(|(_, v)| {
            if v == "+Inf" {
                Some(f64::INFINITY)
            } else {
                v.parse().ok()
            }
        });
        if let Some(le) = le {
            by.entry(le.to_bits()).or_insert((le, 0.0)).1 += v;
        }
    }
    by.into_values().collect()
}
