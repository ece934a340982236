//! `cargo xtask bench`: kernel figures, each printed beside a peer or a limit measured in the
//! same run. Needs the carets built (`cargo xtask carets`; xtask bench does it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use symphony_kernel::config::Config;
use symphony_kernel::wit::since_v0_1_0 as v1;
use symphony_kernel::{Kernel, KernelOptions, Principal};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const PAYLOAD: &str = "hello, symphony";

fn extensions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../extensions")
}

/// Median time per iteration over `rounds` rounds of `iters` iterations.
fn measure(rounds: usize, iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters.min(1000) {
        f();
    }
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed() / iters
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

fn report(name: &str, value: Duration, against: &str, other: Duration) {
    let ratio = other.as_secs_f64() / value.as_secs_f64();
    println!("{name:<48} {:>10}   {against:<34} {:>10}   ratio {ratio:>8.2}x", fmt(value), fmt(other));
}

/// Minimal store data for the raw-wasmtime baseline: WASI plus host imports that do nothing.
struct Raw {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Raw {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
impl v1::operator::symphony::caret::types::Host for Raw {}
impl v1::operator::symphony::caret::host::Host for Raw {
    fn log(&mut self, _: v1::LogLevel, _: String) {}
    fn progress(&mut self, _: u64, _: u64, _: String) {}
    fn emit(&mut self, _: String) {}
}
impl v1::operator::symphony::caret::proxy::Host for Raw {
    fn invoke(&mut self, _: String, _: String, _: String) -> Result<String, v1::Error> {
        Err(v1::Error { code: v1::ErrorCode::Unsupported, message: String::new(), capability: None })
    }
}
impl v1::operator::symphony::caret::process::Host for Raw {
    fn exec(&mut self, _: String, _: Vec<String>, _: Vec<u8>) -> Result<v1::operator::symphony::caret::process::ExecOutput, v1::Error> {
        Err(v1::Error { code: v1::ErrorCode::Unsupported, message: String::new(), capability: None })
    }
}

fn raw_linker(engine: &Engine) -> Linker<Raw> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    v1::operator::symphony::caret::types::add_to_linker::<Raw, HasSelf<Raw>>(&mut linker, |s| s).unwrap();
    v1::operator::symphony::caret::host::add_to_linker::<Raw, HasSelf<Raw>>(&mut linker, |s| s).unwrap();
    v1::operator::symphony::caret::proxy::add_to_linker::<Raw, HasSelf<Raw>>(&mut linker, |s| s).unwrap();
    v1::operator::symphony::caret::process::add_to_linker::<Raw, HasSelf<Raw>>(&mut linker, |s| s).unwrap();
    linker
}

fn raw_store(engine: &Engine) -> Store<Raw> {
    let mut store = Store::new(engine, Raw { wasi: WasiCtxBuilder::new().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

/// The out-of-process peer: this binary as a helper answering JSON lines on stdin/stdout.
fn pipe_helper() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let req: serde_json::Value = serde_json::from_str(&line).unwrap();
        let input = req["input"].as_str().unwrap_or_default();
        let answer = serde_json::json!({ "ok": input.to_uppercase() });
        writeln!(out, "{answer}").unwrap();
        out.flush().unwrap();
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn kernel(home: &Path, workspace: &Path, config: Config) -> Kernel {
    Kernel::open(KernelOptions { home: home.to_path_buf(), workspace: workspace.to_path_buf(), config }).unwrap()
}

fn main() {
    if std::env::var_os("SYMPHONY_BENCH_PIPE_HELPER").is_some() {
        return pipe_helper();
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let dir = tempfile::tempdir().unwrap();
    let (home, ws) = (dir.path().join("home"), dir.path().join("ws"));
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.md"), "TODO: benchmark\n").unwrap();
    let k = kernel(&home, &ws, Config::default());
    for caret in ["text-tools", "ngram-complete", "aurora"] {
        let installed = k.install_dir(&extensions().join(caret)).unwrap();
        k.grant(caret, &installed.manifest.capabilities, "bench").unwrap();
    }
    let wasm = std::fs::read(extensions().join("text-tools/build/text_tools.wasm")).unwrap();
    println!("symphony kernel benchmarks ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!();

    let rounds = 15;
    // Proxy call vs raw bindgen vs a native helper over a pipe.
    let proxy = measure(rounds, 20_000, || {
        let r = k.invoke(&Principal::User, "caret/text-tools", "upper", PAYLOAD).unwrap();
        assert_eq!(r.len(), PAYLOAD.len());
    });
    let engine = k.engine().clone();
    let component = Component::new(&engine, &wasm).unwrap();
    let linker = raw_linker(&engine);
    let pre = v1::operator::OperatorPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let mut store = raw_store(&engine);
    let op = pre.instantiate(&mut store).unwrap();
    let raw = measure(rounds, 20_000, || {
        let r = op.symphony_caret_operator_api().call_call(&mut store, "upper", PAYLOAD).unwrap().unwrap();
        assert_eq!(r.len(), PAYLOAD.len());
    });
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .env("SYMPHONY_BENCH_PIPE_HELPER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = helper.stdin.take().unwrap();
    let mut from = BufReader::new(helper.stdout.take().unwrap());
    let request = format!("{}\n", serde_json::json!({"op": "upper", "input": PAYLOAD}));
    let mut line = String::new();
    let pipe = measure(rounds, 2_000, || {
        to.write_all(request.as_bytes()).unwrap();
        to.flush().unwrap();
        line.clear();
        from.read_line(&mut line).unwrap();
        assert!(line.contains("HELLO"));
    });
    drop(to);
    let _ = helper.wait();
    if wanted("call") {
        println!("== a small-string call to text-tools `upper` ==");
        report("proxy call (Kernel::invoke)", proxy, "native helper over a pipe (JSON)", pipe);
        report("proxy call (Kernel::invoke)", proxy, "limit 2 µs", Duration::from_micros(2));
        report("raw wasmtime bindgen call", raw, "limit 500 ns", Duration::from_nanos(500));
        report("raw wasmtime bindgen call", raw, "proxy call", proxy);
        println!();
    }

    if wanted("instantiate") {
        println!("== instantiate text-tools from an InstancePre ==");
        let mut results = Vec::new();
        for pooling in [true, false] {
            let engine = symphony_kernel::engine::build_engine(pooling).unwrap();
            let component = Component::new(&engine, &wasm).unwrap();
            let linker = raw_linker(&engine);
            let pre = v1::operator::OperatorPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
            let t = measure(rounds, 300, || {
                let mut store = raw_store(&engine);
                let op = pre.instantiate(&mut store).unwrap();
                std::hint::black_box(&op);
            });
            results.push(t);
        }
        report("instantiate, pooling allocator", results[0], "on-demand allocator", results[1]);
        report("instantiate, pooling allocator", results[0], "limit 20 µs", Duration::from_micros(20));
        println!();
    }

    if wanted("load") {
        println!("== load an installed caret ==");
        // Warm the compiled cache.
        k.load("text-tools").unwrap();
        let cached = measure(5, 10, || {
            let k2 = kernel(&home, &ws, Config::default());
            assert_eq!(k2.load("text-tools").unwrap().cache, symphony_kernel::engine::CacheOutcome::Hit);
        });
        let mut no_cache = Config::default();
        no_cache.kernel.compiled_cache = false;
        let compiled = measure(3, 2, || {
            let k2 = kernel(&home, &ws, no_cache.clone());
            k2.load("text-tools").unwrap();
        });
        report("load from the compiled cache (incl. open)", cached, "compile from the .wasm", compiled);
        report("load from the compiled cache (incl. open)", cached, "limit 5 ms", Duration::from_millis(5));
        println!();
    }

    if wanted("rss") {
        println!("== memory ==");
        for caret in ["text-tools", "ngram-complete", "aurora"] {
            k.load(caret).unwrap();
        }
        k.invoke(&Principal::User, "caret/text-tools", "todos", "{}").unwrap();
        k.invoke(&Principal::User, "caret/ngram-complete", "complete", r#"{"prefix":"TODO"}"#).unwrap();
        k.invoke(&Principal::User, "caret/aurora", "@render", r#"{"panel":"todos"}"#).unwrap();
        let rss = rss_bytes();
        let limit = 100u64 << 20;
        println!(
            "{:<48} {:>7.1} MiB   {:<34} {:>6} MiB   ratio {:>8.2}x",
            "RSS with the shipped carets loaded",
            rss as f64 / (1 << 20) as f64,
            "limit",
            limit >> 20,
            limit as f64 / rss as f64
        );
        println!();
    }

    if wanted("audit") {
        audit_bench(dir.path(), &wasm);
    }
}

/// `symphony audit` of 100 installed carets with 100k audit-log lines, against the 1 s limit
/// and against only reading the log back (the floor: the audit must read it all).
fn audit_bench(root: &Path, wasm: &[u8]) {
    use symphony_kernel::capability_audit::AuditSubject;
    println!("== capability audit ==");
    let (home, ws) = (root.join("audit-home"), root.join("ws"));
    let k = kernel(&home, &ws, Config::default());
    let wasm_path = root.join("audit.wasm");
    std::fs::write(&wasm_path, wasm).unwrap();
    let ids: Vec<String> = (0..100).map(|i| format!("audited-{i:03}")).collect();
    for id in &ids {
        let manifest = root.join(format!("{id}.toml"));
        std::fs::write(
            &manifest,
            format!(
                "[caret]\nid = \"{id}\"\nname = \"{id}\"\nversion = \"1.0.0\"\nkind = \"operator\"\napi = \"0.1.0\"\ncomponent = \"audit.wasm\"\n\n[capabilities]\nrequest = [\"fs.read:workspace\", \"caret.call:text-tools\"]\n"
            ),
        )
        .unwrap();
        k.install_files(&wasm_path, &manifest).unwrap();
        k.grant(id, &["fs.read:workspace".parse().unwrap()], "bench").unwrap();
    }
    // 100k lines: allowed, denied and limited records spread over the carets.
    let mut log = String::new();
    for i in 0..100_000usize {
        let id = &ids[i % ids.len()];
        let (capability, decision, target) = match (i / ids.len()) % 10 {
            0 => ("net.connect:10.0.0.1:80", "denied", "10.0.0.1:80".to_owned()),
            1 => ("limits.time", "limited", format!("caret/{id}#grep")),
            _ => ("fs.read:workspace", "allowed", format!("workspace:src/file{}.rs", i % 97)),
        };
        let principal = if decision == "limited" { "user".to_owned() } else { format!("caret:{id}") };
        log.push_str(&serde_json::json!({
            "time": format!("2026-11-21T10:{:02}:{:02}.{:03}Z", (i / 60_000) % 60, (i / 1000) % 60, i % 1000),
            "principal": principal, "caret": id, "capability": capability, "target": target,
            "decision": decision, "count": 1 + (i % 3),
        }).to_string());
        log.push('\n');
    }
    std::fs::write(home.join("audit.jsonl"), log).unwrap();
    let audit = measure(5, 1, || {
        let report = k.audit_report(&AuditSubject::Installed, None).unwrap();
        assert_eq!(report.carets.len(), 100);
        assert!(report.carets.iter().all(|c| c.used.len() == 3));
    });
    let read = measure(5, 1, || {
        let (records, bad) = symphony_kernel::AuditLog::read(&home.join("audit.jsonl")).unwrap();
        assert_eq!((records.len(), bad.len()), (100_000, 0));
    });
    report("audit 100 carets, 100k log lines", audit, "limit 1 s", Duration::from_secs(1));
    report("audit 100 carets, 100k log lines", audit, "reading the log alone (floor)", read);
    println!();
}
