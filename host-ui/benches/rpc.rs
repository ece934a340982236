//! `cargo xtask bench rpc`: JSON-RPC round trips to `symphony serve` over loopback WebSocket,
//! measured by an independent client (tokio-tungstenite): the protocol alone (`unsubscribe`,
//! answered without the kernel) and a call through the proxy into a caret, against the 50 µs
//! target (jsonrpsee publishes 57.5 µs for its HTTP round trip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/tally_crate.rs"]
#[allow(dead_code)]
mod tally_crate;

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn report(name: &str, value: Duration, against: &str, other: Duration) {
    let ratio = other.as_secs_f64() / value.as_secs_f64();
    println!("{name:<52} {:>10}   {against:<36} {:>10}   ratio {ratio:>6.2}x", us(value), us(other));
}

async fn round_trips(ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, frame: &str, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        ws.send(Message::Text(frame.into())).await.unwrap();
        loop {
            if let Some(Ok(Message::Text(_))) = ws.next().await {
                break;
            }
        }
        samples.push(t0.elapsed());
    }
    samples
}

/// The floor: a bare tokio-tungstenite echo server (no JSON, no kernel) in another process's
/// stead — a thread with its own runtime, answering each text frame with itself.
fn echo_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("ws://{}/", listener.local_addr().unwrap())).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() && ws.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "rpc serve json".contains(f.as_str())) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (home, ws_dir) = (tmp.path().join("home"), tmp.path().join("ws"));
    std::fs::create_dir_all(&ws_dir).unwrap();
    let exe = env!("CARGO_BIN_EXE_symphony");
    let status = Command::new(exe)
        .arg("--home")
        .arg(&home)
        .args(["caret", "install"])
        .arg(tally_crate::extensions().join("tally"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = Command::new(exe)
        .arg("--home")
        .arg(&home)
        .arg("--workspace")
        .arg(&ws_dir)
        .args(["serve", "--port", "0", "--rate", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.find_map(|l| l.ok().filter(|l| l.contains("ws://"))).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("ws://")).unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    println!("== JSON-RPC 2.0 over loopback WebSocket (symphony serve, release) ==");
    let protocol = r#"{"jsonrpc":"2.0","id":1,"method":"unsubscribe","params":{"subscription":0}}"#;
    let proxied = r#"{"jsonrpc":"2.0","id":1,"method":"invoke","params":{"target":"caret/tally","op":"counts"}}"#;
    round_trips(&mut ws, protocol, 2000).await;
    round_trips(&mut ws, proxied, 2000).await;
    let mut bare = round_trips(&mut ws, protocol, 20_000).await;
    let mut call = round_trips(&mut ws, proxied, 20_000).await;
    let (mut echo, _) = tokio_tungstenite::connect_async(echo_server()).await.unwrap();
    round_trips(&mut echo, protocol, 2000).await;
    let mut floor = round_trips(&mut echo, protocol, 20_000).await;
    let floor = percentile(&mut floor, 0.5);
    let target = Duration::from_micros(50);
    report("round trip, protocol only, p50", percentile(&mut bare, 0.5), "target 50 µs", target);
    report("round trip, protocol only, p50", percentile(&mut bare, 0.5), "bare WebSocket echo, same client", floor);
    report("round trip, protocol only, p99", percentile(&mut bare, 0.99), "target 50 µs", target);
    report("round trip, invoke caret/tally counts, p50", percentile(&mut call, 0.5), "target 50 µs", target);
    report("round trip, invoke caret/tally counts, p50", percentile(&mut call, 0.5), "bare WebSocket echo, same client", floor);
    report("round trip, invoke caret/tally counts, p99", percentile(&mut call, 0.99), "jsonrpsee over HTTP (published)", Duration::from_nanos(57_500));
    println!();

    // Terminal throughput: `cat` of a 32 MiB text file in a PTY shell, until the last byte
    // reaches this client as JSON-RPC notifications; the peer is the same `cat` through a bare
    // PTY (util-linux `script`), with no JSON and no WebSocket.
    println!("== terminal (pit/terminal, real PTY) ==");
    let big = ws_dir.join("big.txt");
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-symphony-terminal-bench\n";
    let size = 32usize << 20;
    std::fs::write(&big, line.repeat(size / line.len())).unwrap();
    let bytes = std::fs::metadata(&big).unwrap().len();
    let open = r#"{"jsonrpc":"2.0","id":1,"method":"invoke","params":{"target":"pit/terminal","op":"open","payload":{"cols":200,"rows":50}}}"#;
    ws.send(Message::Text(open.into())).await.unwrap();
    let terminal = loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if let Some(id) = v["result"]["terminal"].as_u64() {
                break id;
            }
        }
    };
    let sub = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"subscribe","params":{{"topic":"terminal","terminal":{terminal}}}}}"#);
    ws.send(Message::Text(sub.into())).await.unwrap();
    let write = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"invoke","params":{{"target":"pit/terminal","op":"write","payload":{{"terminal":{terminal},"data":"cat big.txt; echo DONE-$((6*7))\n"}}}}}}"#
    );
    let t0 = Instant::now();
    ws.send(Message::Text(write.into())).await.unwrap();
    let mut received = 0usize;
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else { continue };
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        if let Some(data) = v["params"]["event"]["data"].as_str() {
            received += data.len();
            if data.contains("DONE-42") {
                break;
            }
        }
    }
    let through = t0.elapsed();
    let t1 = Instant::now();
    let status = Command::new("script")
        .args(["-qc", &format!("cat {}", big.display()), "/dev/null"])
        .stdout(Stdio::null())
        .status()
        .expect("util-linux `script` (the bare-PTY peer)");
    assert!(status.success());
    let local = t1.elapsed();
    let mbps = |d: Duration| bytes as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!(
        "{:<52} {:>7.1} MB/s   {:<36} {:>7.0} MB/s   ratio {:>6.3}x   ({} MiB received in {:.2} s)",
        "cat of a 32 MiB file reaching the client",
        mbps(through),
        "the same cat through a bare PTY",
        mbps(local),
        mbps(through) / mbps(local),
        received >> 20,
        through.as_secs_f64()
    );
    println!();
    let _ = child.kill();
    let _ = child.wait();
}
