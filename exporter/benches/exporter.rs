//! `cargo bench -p cellwatch-exporter`: parsing one powermetrics plist sample (and, for
//! comparison, reading it into a plist tree), and encoding a
//! full snapshot (every collector's series, as on a Mac Studio with three Thunderbolt links).

use std::path::Path;

use cellwatch_exporter::collector::powermetrics::PowerHandler;
use cellwatch_exporter::node::Identity;
use cellwatch_exporter::parse::{netstat, powermetrics, vm_stat};
use cellwatch_exporter::replay;
use cellwatch_exporter::store::{self, Sample};
use cellwatch_exporter::supervisor::Handler;

fn main() {
    divan::main();
}

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/macos")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

fn full_snapshot() -> Vec<Sample> {
    let id = Identity {
        cell: "a".into(),
        node: "b".into(),
        hw_model: "Mac15,14".into(),
        os_version: "26.2".into(),
    };
    replay::snapshot(&dir(), &id).unwrap().samples()
}

/// A 15 MiB adapter page (the old 16 MiB cap; `--collector.inference.adapter-max-page-size`
/// allows it): read through the line filter in 64 KiB chunks, as it arrives, and normalized.
#[divan::bench(sample_count = 5)]
fn adapter_page_of_15_mib(b: divan::Bencher<'_, '_>) {
    use cellwatch_exporter::adapter::{self, PageFilter, Server};
    let page = adapter::synthetic_vllm_page(15 << 20);
    let models = cellwatch_exporter::proxy::ModelLabels::new(20);
    b.bench(|| {
        let mut f = PageFilter::new(Server::Vllm);
        for chunk in page.as_bytes().chunks(64 << 10) {
            f.push(chunk);
        }
        adapter::normalize_filtered(Server::Vllm, f.finish(), "m", &models).unwrap()
    });
}

#[divan::bench]
fn parse_powermetrics_plist(b: divan::Bencher<'_, '_>) {
    let doc = fixture("powermetrics-m3ultra.plist").into_bytes();
    b.counter(divan::counter::BytesCount::new(doc.len()))
        .bench(|| powermetrics::parse(divan::black_box(&doc)).unwrap());
}

/// The document tree the parse used to build first (plist crate), for comparison: the old
/// parse cost this plus picking the keys from the tree.
#[divan::bench]
fn plist_tree_of_powermetrics_plist(b: divan::Bencher<'_, '_>) {
    let doc = fixture("powermetrics-m3ultra.plist").into_bytes();
    b.counter(divan::counter::BytesCount::new(doc.len()))
        .bench(|| plist::Value::from_reader_xml(divan::black_box(&doc[..])).unwrap());
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

#[divan::bench]
fn meter_sse_stream_of_200_chunks(b: divan::Bencher<'_, '_>) {
    use cellwatch_exporter::proxy::meter::{Api, Format, Meter};
    let mut body = String::new();
    for i in 0..200 {
        body.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}}}}],\"usage\":null}}\n\n"
        ));
    }
    body.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":200}}\n\ndata: [DONE]\n\n");
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(180).collect();
    b.counter(divan::counter::BytesCount::new(body.len()))
        .bench(|| {
            let mut m = Meter::new(Api::ChatCompletions, Format::Sse);
            for c in &chunks {
                m.feed(c, std::time::Duration::ZERO);
            }
            m.finish()
        });
}

/// A whole (non-streaming) chat completion of 20 tokens, as the bench's upstream sends it: the
/// fast reading (the proxy's path) against the general one (serde), on the same bytes.
#[divan::bench(args = [true, false])]
fn meter_whole_json_response(b: divan::Bencher<'_, '_>, fast: bool) {
    use cellwatch_exporter::proxy::meter::{Api, Format, Meter, whole_readings_agree};
    let body = br#"{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19 ","role":"assistant"}}],"id":"cmpl-1","model":"bench","object":"chat.completion","usage":{"completion_tokens":20,"prompt_tokens":10,"total_tokens":30}}"#;
    assert!(whole_readings_agree(Api::ChatCompletions, body));
    // An escaped key (of a field neither reading uses) sends the document to serde.
    let general = [&body[..body.len() - 1], br#","\u0078":1}"#.as_slice()].concat();
    let body: &[u8] = if fast { body } else { &general };
    b.counter(divan::counter::BytesCount::new(body.len()))
        .bench(|| {
            let mut m = Meter::new(Api::ChatCompletions, Format::Json);
            m.feed(divan::black_box(body), std::time::Duration::ZERO);
            m.finish()
        });
}

/// One metered request's span on the proxy's path: started from the request's headers (no
/// client `traceparent`), the upstream's `traceparent` written, ended with the meter's
/// summary. At ratio 0 the span is discarded at its end; at ratio 1 it is queued for the
/// export thread (sending to a closed port here, so the queue is drained and never full).
#[divan::bench(args = [0.0, 1.0])]
fn proxy_span_start_end(b: divan::Bencher<'_, '_>, ratio: f64) {
    use cellwatch_exporter::proxy::Outcome;
    use cellwatch_exporter::proxy::meter::{Api, FinishReason, Summary};
    use cellwatch_exporter::proxy::trace::{TraceSettings, Tracing};
    use std::time::{Duration, SystemTime};
    let settings = TraceSettings {
        endpoint: "http://127.0.0.1:9".into(),
        protocol: cellwatch_exporter::otlp::Protocol::HttpProtobuf,
        timeout: Duration::from_secs(1),
        headers: vec![],
        sample_ratio: ratio,
        slow: Duration::from_secs(60),
    };
    let tracing = Tracing::start(&settings, &[], ("127.0.0.1", 8000)).unwrap();
    let tracer = tracing.tracer();
    let summary = Summary {
        ttft: Some(Duration::from_millis(80)),
        prompt_tokens: Some(12),
        generated_tokens: Some(20),
        tpot: None,
        finish_reason: FinishReason::new("stop"),
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    b.bench_local(|| {
        let mut span = tracer.start(&mut headers, Api::ChatCompletions, None, SystemTime::now());
        span.set_model("bench");
        span.end(Outcome::Ok, Some(200), &summary, None);
    });
    tracing.shutdown();
}

/// The OTLP request for a full snapshot (every family, the inference histograms included), and
/// its protobuf encoding: the work of one push.
#[divan::bench]
fn otlp_request_for_full_snapshot(b: divan::Bencher<'_, '_>) {
    use prost::Message;
    let id = Identity {
        cell: "a".into(),
        node: "b".into(),
        hw_model: "Mac15,14".into(),
        os_version: "26.2".into(),
    };
    let families = replay::snapshot(&dir(), &id).unwrap().gather();
    let resource = [
        ("service.name", "cellwatch-exporter"),
        ("cell", "a"),
        ("node", "b"),
    ];
    b.counter(divan::counter::ItemsCount::new(families.len()))
        .bench(|| {
            cellwatch_exporter::otlp::request(divan::black_box(&families), &resource, 1, 2)
                .encode_to_vec()
        });
}

/// One Linux snapshot: RAPL and InfiniBand read from the fixture tree, twice.
#[divan::bench]
fn read_linux_sysfs_tree(b: divan::Bencher<'_, '_>) {
    let sys = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/linux/sys");
    b.bench(|| {
        (
            cellwatch_exporter::collector::rapl::read_zones(&sys).unwrap(),
            cellwatch_exporter::collector::infiniband::read_ports(&sys).unwrap(),
        )
    });
}

/// Basic authentication of a scrape whose credentials were verified before (the cache), next to
/// a first verification at bcrypt cost 10.
#[divan::bench(args = [true, false])]
fn basic_auth_check(b: divan::Bencher<'_, '_>, cached: bool) {
    use base64::Engine;
    let hash = bcrypt::hash("pw", 10).unwrap();
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:pw")
    );
    let text = format!("basic_auth_users:\n  u: '{hash}'\n");
    if cached {
        let w = cellwatch_exporter::web::parse(Path::new("web.yml"), &text).unwrap();
        assert!(w.check_basic(&header));
        b.bench(|| w.check_basic(divan::black_box(&header)));
    } else {
        b.with_inputs(|| cellwatch_exporter::web::parse(Path::new("web.yml"), &text).unwrap())
            .bench_local_values(|w| w.check_basic(&header));
    }
}
