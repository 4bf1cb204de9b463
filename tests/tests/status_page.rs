//! End to end: the status page of a real engine (`cellwatch-slo demo`, its simulated incident
//! paging) in headless Chromium at a phone's width.
//!
//! - Every cell is a card; every SLO of every cell has its plot (budget left and burn rate over
//!   the period), and the page sent for the incident stands on the paging SLO's plot in red.
//! - At 412 px wide nothing overflows the page horizontally: a copy of the page in a frame that
//!   wide, with a probe added by the test (the page itself has no script), is measured in
//!   Chromium.
//! - The screenshot at that width is kept in `target/test-artifacts/status-page-phone.png`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cellwatch_e2e::browser::{Demo, chromium};
use cellwatch_e2e::{binary, free_port_range, workspace};
use serde_json::Value;

const CELL: &str = cellwatch_slo::demo::CELL;
const WIDTH: u32 = 412;

/// The probe, run by the copy of the page at the end of its body: what Chromium measured (the
/// document's scroll width against its viewport, and every element whose right edge passes it,
/// leaving out the insides of the tables' own scrolling boxes, `.wrap`), written into the
/// frame's parent.
const PROBE: &str = "<script>\
    var w = document.documentElement.clientWidth, over = [];\
    document.querySelectorAll('body *').forEach(function (e) {\
      var s = e.parentElement && e.parentElement.closest('.wrap');\
      if (s) return;\
      var r = e.getBoundingClientRect();\
      if (r.right > w + 0.5) over.push(e.tagName + '.' + e.getAttribute('class') + ':' + Math.round(r.right));\
    });\
    parent.document.getElementById('probe').textContent = 'client=' + w + ' scroll=' +\
      document.documentElement.scrollWidth + ' over=' + over.slice(0, 10).join(',');\
    </script>";

/// A page holding `html` in a frame `WIDTH` px wide and `height` high, and the probe's output
/// under it. Headless Chromium lays a window out at least 500 px wide (a screenshot of a
/// narrower window is that layout cut off), so the phone is the frame.
fn phone(html: &str, height: u32) -> String {
    let doc = html.replace('&', "&amp;").replace('"', "&quot;");
    format!(
        "<!doctype html><html><head><style>body{{margin:0}}\
         iframe{{border:0;width:{WIDTH}px;height:{height}px;display:block}}</style></head>\
         <body><iframe srcdoc=\"{doc}\"></iframe><pre id=\"probe\"></pre></body></html>"
    )
}

/// The PNG's width and height (its IHDR).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 24);
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_draws_every_cell_and_slo_and_fits_a_phone() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port_range(21);
    let err = std::fs::File::create(tmp.path().join("demo.err")).unwrap();
    let demo = Command::new(binary("cellwatch-slo"))
        .args(["demo", "--port", &port.to_string()])
        .args(["--incident-at", "5s", "--incident-for", "60s"])
        .args(["--duration", "300s"])
        .arg(format!("--dir={}", tmp.path().join("demo").display()))
        .arg(format!(
            "--standins={}",
            workspace().join("exporter/testdata/standins").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start the demo");
    let _demo = Demo(demo);
    let base = format!("http://127.0.0.1:{port}/");
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let r = cellwatch_e2e::http().get(url).send().await.ok()?;
            r.text().await.ok()
        }
    };
    // Until the incident's page stands on a plot.
    let started = Instant::now();
    let page = loop {
        if let Some(p) = get("").await.filter(|p| p.contains("<line class=\"page\"")) {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no page marker within 120 s\n{}",
            std::fs::read_to_string(tmp.path().join("demo.err")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let slos: Value = serde_json::from_str(&get("api/v1/slos").await.unwrap()).unwrap();
    let slos = slos["slos"].as_array().unwrap();
    assert!(!slos.is_empty());
    for s in slos {
        let (cell, slo) = (s["cell"].as_str().unwrap(), s["slo"].as_str().unwrap());
        assert!(
            page.contains(&format!("<section class=\"cell\" id=\"cell-{cell}\">")),
            "{cell}"
        );
        let at = page
            .find(&format!("<figure class=\"slo\" id=\"slo-{cell}-{slo}\">"))
            .unwrap_or_else(|| panic!("{cell} {slo}: no figure\n{page}"));
        let figure = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(figure.contains("<svg class=\"plot\""), "{figure}");
        // A budget in the report is a budget line on the plot (the same rows, hour by hour).
        if !s["budget_remaining"].is_null() {
            assert!(
                figure.contains("<polyline class=\"budget\""),
                "{cell} {slo}: {s}\n{figure}"
            );
        }
    }
    let cell = &page[page.find(&format!("id=\"cell-{CELL}\"")).unwrap()..];
    let cell = &cell[..cell.find("</section>").unwrap()];
    assert!(
        cell.contains("stroke=\"#d62728\""),
        "the page, in red: {cell}"
    );

    // At a phone's width, in Chromium: nothing passes the right edge.
    let copy = page
        .replace("<meta http-equiv=\"refresh\" content=\"15\">", "")
        .replace("</body>", &format!("{PROBE}</body>"));
    let probe = tmp.path().join("phone.html");
    std::fs::write(&probe, phone(&copy, 2400)).unwrap();
    let url = format!("file://{}", probe.display());
    let profile = tmp.path().join("chromium");
    let size = format!("--window-size={WIDTH},2400");
    let dom = chromium(&["--dump-dom", &size], &url, &profile);
    let at = dom.find("<pre id=\"probe\">").expect("the probe ran") + 16;
    let measured = &dom[at..at + dom[at..].find("</pre>").unwrap()];
    let field = |k: &str| -> i64 {
        let v = measured.split(' ').find_map(|f| f.strip_prefix(k)).unwrap();
        v.parse().unwrap_or_else(|_| panic!("{measured}"))
    };
    let (client, scroll) = (field("client="), field("scroll="));
    assert!(
        (380..=WIDTH as i64).contains(&client),
        "the viewport is a phone's: {measured}"
    );
    assert_eq!(scroll, client, "horizontal overflow: {measured}");
    assert!(measured.ends_with("over="), "{measured}");

    // The screenshot, kept.
    let artifacts = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page-phone.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[&format!("--screenshot={}", shot.display()), &size],
        &url,
        &profile,
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert_eq!(png_size(&png), (WIDTH, 2400), "{}", shot.display());
    assert!(png.len() > 20_000, "{} bytes", png.len());
}
