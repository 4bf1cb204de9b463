//! End to end: no client can take a listener of the real `cellwatch-exporter` down. Slowloris
//! connections (headers sent a byte at a time, never finished) are cut off after
//! `--web.read-header-timeout` and never hold more than `--web.max-connections` file handles,
//! while /metrics keeps answering; metered uploads that stall are cut off after
//! `--collector.inference.body-read-timeout` without the proxy holding their bodies; CONNECT
//! gets 405 and no error in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cellwatch_e2e::{Exporter, start_engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Open file handles of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A `/proc/PID/status` field in kB (VmRSS, VmHWM).
fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

const ATTACKERS: usize = 200;
const MAX_CONNECTIONS: usize = 32;

/// The flags under test: a short header timeout and a small connection limit.
fn limits() -> Vec<String> {
    vec![
        "--web.read-header-timeout".into(),
        "1s".into(),
        "--web.max-connections".into(),
        MAX_CONNECTIONS.to_string(),
    ]
}

/// Slowloris against a server (`e`, started with [`limits`]): its open files stay within the
/// connection limit and `path` keeps answering with `expect` in it.
async fn slowloris(e: &Exporter, path: &str, expect: &str) {
    let pid = e.pid();
    let target = addr(&e.base);
    // Settled: one request done.
    e.get(path).await;
    let baseline = fds(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let cut_off = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let (stop, cut_off, target) = (stop.clone(), cut_off.clone(), target.clone());
        attackers.push(tokio::spawn(async move {
            // Headers a byte at a time, never finished; again when the server hangs up.
            let head =
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = TcpStream::connect(&target).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                for b in head.iter().cycle() {
                    if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // The server hung up (a read returns 0 bytes or fails).
                    let mut buf = [0u8; 256];
                    match tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            cut_off.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }));
    }
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(fds(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Let the attack fill every slot, then ask through it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let answer = cellwatch_e2e::http()
        .get(format!("{}{path}", e.base))
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    let took = started.elapsed();
    let during = fds(pid);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    let _ = sampler.await;
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "{path}: baseline {baseline} fds, peak {peak} during {ATTACKERS} slowloris clients (limit {MAX_CONNECTIONS}); \
         the request took {took:?}; {} connections cut off",
        cut_off.load(Ordering::Relaxed)
    );
    let answer = answer.unwrap_or_else(|err| panic!("{path} under attack: {err}\n{}", e.log()));
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains(expect));
    // Each connection is one handle; a few more for the request and the runtime.
    assert!(
        peak <= baseline + MAX_CONNECTIONS + 16,
        "{peak} open files (baseline {baseline}, limit {MAX_CONNECTIONS}, {during} at the request)"
    );
    assert!(
        cut_off.load(Ordering::Relaxed) >= MAX_CONNECTIONS,
        "slow clients were not cut off by the header timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_bounded_and_metrics_keep_answering() {
    let mut args = vec!["--collector.disable-defaults".to_string()];
    args.extend(limits());
    let e = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    slowloris(&e, "/metrics", "cellwatch_exporter_build_info").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_bounded_on_the_engine_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        "cells:\n  - name: c\n    nodes:\n      - { name: n1, url: \"http://127.0.0.1:9/metrics\" }\n\
         source:\n  scrape: { interval: 1s }\n\
         slos:\n  - { name: a, objective: 0.99, period: 30d, sli: { availability: {} } }\n",
    )
    .unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let args = limits();
    let e = start_engine(
        &db,
        &cfg,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    slowloris(&e, "/metrics", "cellwatch_slo").await;
}

const UPLOADERS: usize = 40;
const SENT: usize = 6 << 20;

/// An upstream that takes request bodies and never answers.
async fn sink() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while matches!(c.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    format!("http://{a}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_cut_off_without_their_bodies_held() {
    let upstream = sink().await;
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.upstream",
        &upstream,
        "--collector.inference.listen-address",
        "127.0.0.1:0",
        "--collector.inference.body-read-timeout",
        "1s",
    ]);
    let proxy = addr(&e.proxy_base().await);
    let pid = e.pid();
    let rss_before = status_kb(pid, "VmRSS");
    let mut clients = Vec::new();
    for _ in 0..UPLOADERS {
        let proxy = proxy.clone();
        clients.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(&proxy).await.unwrap();
            c.write_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 31457280\r\n\r\n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"",
            )
            .await
            .unwrap();
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..SENT / chunk.len() {
                c.write_all(&chunk).await.unwrap();
            }
            // Then nothing more: the server must hang up.
            let stalled = Instant::now();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut answer)).await;
            (read.is_ok(), stalled.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        }));
    }
    let mut slowest = Duration::ZERO;
    for c in clients {
        let (closed, after, answer) = c.await.unwrap();
        assert!(closed, "a stalled upload was not cut off within 60 s");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
        slowest = slowest.max(after);
    }
    let peak = status_kb(pid, "VmHWM");
    eprintln!(
        "{UPLOADERS} uploads of {} MiB stalled: RSS {} MiB before, peak {} MiB; all cut off within {slowest:?}",
        SENT >> 20,
        rss_before >> 10,
        peak >> 10
    );
    // The bodies sent add up to 240 MiB: holding them would show.
    assert!(
        peak < rss_before + (64 << 10),
        "peak RSS {peak} kB (before: {rss_before} kB)"
    );
    let m = e
        .wait_for(
            "the stalled uploads counted",
            Duration::from_secs(20),
            |m| {
                m.value(r#"cellwatch_inference_requests_total{model="m",outcome="cancelled"}"#)
                    == Some(UPLOADERS as f64)
            },
        )
        .await;
    assert_eq!(
        m.value(r#"cellwatch_inference_requests_in_flight{model="m"}"#),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_gets_405_and_no_error_is_logged() {
    let upstream = sink().await;
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.upstream",
        &upstream,
        "--collector.inference.listen-address",
        "127.0.0.1:0",
    ]);
    let proxy = addr(&e.proxy_base().await);
    for _ in 0..3 {
        let mut c = TcpStream::connect(&proxy).await.unwrap();
        c.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf))
            .await
            .expect("an answer to CONNECT")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("allow:"), "{answer}");
    }
    // The proxy still serves, and logged nothing at ERROR (or WARN) for CONNECT.
    e.get("/metrics").await;
    let log = e.log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || (l.contains("WARN") && !l.contains("open-files limit")))
        .collect();
    assert!(bad.is_empty(), "{log}");
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_handles_the_exporter_backs_off_and_recovers() {
    use std::io::BufRead;
    // 48 file handles and a connection limit above them: idle connections exhaust the handles,
    // accepts fail (EMFILE), and the header timeout must free them again.
    let bin = cellwatch_e2e::binary("cellwatch-exporter");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec '{}' --collector.disable-defaults --web.listen-address 127.0.0.1:0 \
             --web.read-header-timeout 1s --web.max-connections 1000",
            bin.display()
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let child = Kill(child);
    let pid = child.0.id();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(a) = line.split(" address=").nth(1) {
                    let _ = tx.send(a.split_whitespace().next().unwrap_or("").to_string());
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let target = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter listens");
    let mut idle = Vec::new();
    for _ in 0..120 {
        idle.push(TcpStream::connect(&target).await.unwrap());
    }
    // Out of handles now: the accept loop must wait, not spin.
    let start = Instant::now();
    while !log.lock().unwrap().contains("accept failed") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "accepts never failed:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (wall, cpu) = (t0.elapsed(), cpu_ticks(pid) - c0);
    // A spinning loop burns one core: 100 ticks a second.
    let ticks_per_s = cpu as f64 / wall.as_secs_f64();
    eprintln!("out of file handles: {ticks_per_s:.1} CPU ticks/s");
    assert!(
        ticks_per_s < 50.0,
        "{ticks_per_s} ticks/s:\n{}",
        log.lock().unwrap()
    );
    // The idle connections are cut off after the header timeout and /metrics answers again.
    let started = Instant::now();
    let r = cellwatch_e2e::http()
        .get(format!("http://{target}/metrics"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/metrics after EMFILE: {e}\n{}", log.lock().unwrap()));
    eprintln!("/metrics answered {:?} later", started.elapsed());
    assert_eq!(r.status(), 200);
    assert!(log.lock().unwrap().contains("open-files limit"));
    drop(idle);
    drop(child);
}

/// A client that sends many pipelined requests in one go and never reads an answer.
async fn never_reads(target: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive buffer, so the server's writes block soon.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(target.parse().unwrap()).await.unwrap();
    let requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
    // Answers (~0.5 KiB each) beyond what the socket buffers hold (a few MiB); the server stops
    // reading once its writes block: send what the buffers take.
    let _ = tokio::time::timeout(Duration::from_secs(5), c.write_all(&requests)).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_cut_off_after_the_read_timeout() {
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--web.max-connections",
        "2",
        "--web.read-timeout",
        "2s",
        // Long, so that only the write timeout can free the slots within the test's 30 s.
        "--web.read-header-timeout",
        "120s",
    ]);
    // (No scrape first: a kept-alive client connection would hold a slot.)
    let target = addr(&e.base);
    // Both slots taken by clients that never read.
    let _stuck = [never_reads(&target).await, never_reads(&target).await];
    // Once their writes have stalled for 2 s they are cut off, and a fresh scrape is served.
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        cellwatch_e2e::http()
            .get(format!("{}/metrics", e.base))
            .send(),
    )
    .await
    .expect("a scrape within 30 s while two clients that stopped reading held the slots")
    .unwrap();
    assert!(r.status().is_success());
    eprintln!("served after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_limit_below_the_proxy_threads_strands_no_connection() {
    // One slot, one listening socket per core: a thread must not hold the slot while waiting
    // for a connection the kernel gives to another thread's socket.
    let upstream = sink().await;
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.upstream",
        &upstream,
        "--collector.inference.listen-address",
        "127.0.0.1:0",
        "--collector.inference.max-connections",
        "1",
    ]);
    let proxy = addr(&e.proxy_base().await);
    for i in 0..16 {
        // A fresh connection (a fresh source port) each time: the kernel spreads them.
        let mut c = TcpStream::connect(&proxy).await.unwrap();
        c.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("connection {i} got no answer within 20 s"))
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 405"), "{i}");
    }
}

/// An upstream that streams an endless SSE response to every request; `closed` is set when the
/// proxy hangs up on one.
async fn endless_stream(closed: Arc<AtomicBool>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                if c.write_all(head).await.is_err() {
                    return;
                }
                let event = format!("data: {}\n\n", "x".repeat(4000));
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                while c.write_all(chunk.as_bytes()).await.is_ok() {}
                closed.store(true, Ordering::Relaxed);
            });
        }
    });
    format!("http://{a}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_client_that_stops_reading_a_stream_is_cut_off_after_the_idle_timeout() {
    let closed = Arc::new(AtomicBool::new(false));
    let upstream = endless_stream(closed.clone()).await;
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.upstream",
        &upstream,
        "--collector.inference.listen-address",
        "127.0.0.1:0",
        "--collector.inference.max-connections",
        "1",
        "--collector.inference.idle-timeout",
        "2s",
    ]);
    let proxy = addr(&e.proxy_base().await);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(proxy.parse().unwrap()).await.unwrap();
    stuck
        .write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), stuck.read(&mut buf))
        .await
        .expect("the stream starts")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Then it reads no more: once nothing could be written to it for 2 s, its slot and the
    // upstream connection are freed.
    let mut c = TcpStream::connect(&proxy).await.unwrap();
    c.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf))
        .await
        .expect("a fresh connection served within 30 s while a client that stopped reading held the only slot")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 405"));
    let start = Instant::now();
    while !closed.load(Ordering::Relaxed) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the upstream connection was kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stuck);
}
