//! `cargo xtask bench conductor`: the Conductor's costs. Python → proxy → a Pit op and → a
//! caret op, each beside the same call made from Rust in the same run (so the ratio is what
//! the Python path adds) and beside the 3 µs limit; and Maestro's per-node decision
//! overhead on a 1,000-node melody, beside the same melody in Manual mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use symphony_conductor::maestro::{Maestro, MaestroOptions};
use symphony_conductor::{python, run_melody, Melody, RunSettings, RunStore};
use symphony_dag::Cancel;
use symphony_kernel::{CallError, Config, Kernel, KernelOptions, Principal, Service};

/// The cheapest Pit op there is: answers at once.
struct Echo;

impl Service for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn call(&self, _: &Principal, _op: &str, payload: &str) -> Result<String, CallError> {
        Ok(payload.to_owned())
    }
}

fn wanted(words: &[String], figure: &str) -> bool {
    words.is_empty() || words.iter().any(|w| figure.contains(w.as_str()))
}

fn main() {
    let words: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !wanted(&words, "conductor python maestro") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let kernel = Kernel::open(KernelOptions { home: home.clone(), workspace: root.path().to_path_buf(), config: Config::default() }).unwrap();
    kernel.register_service(Arc::new(Echo));
    let extensions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../extensions");
    kernel.install_dir(&extensions.join("text-tools")).unwrap();
    kernel.grant_conductor(&["pit.echo".parse().unwrap(), "caret.call:text-tools/upper".parse().unwrap()], "bench").unwrap();

    println!("Conductor (release, one process; Python {})", python_version(&kernel));
    for (name, target, op, payload, n) in [("a Pit op (pit/echo)", "pit/echo", "x", "hi", 200_000), ("a caret op (text-tools upper)", "caret/text-tools", "upper", "hi", 50_000)] {
        // Rust: the same call through the same proxy, as the same principal (warmed up as the
        // Python loop is: the first call instantiates the caret).
        for _ in 0..1000 {
            kernel.invoke(&Principal::Conductor, target, op, payload).unwrap();
        }
        let started = Instant::now();
        for _ in 0..n {
            kernel.invoke(&Principal::Conductor, target, op, payload).unwrap();
        }
        let rust = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        let program = format!(
            "import symphony, time\ninvoke = symphony.invoke\nfor _ in range(1000):\n    invoke({target:?}, {op:?}, {payload:?})\nt = time.perf_counter()\nfor _ in range({n}):\n    invoke({target:?}, {op:?}, {payload:?})\nresult = (time.perf_counter() - t) * 1e6 / {n}\n"
        );
        let py = python::run(&kernel, &program, "bench.py").unwrap().as_f64().unwrap();
        println!("  Python → proxy → {name}: {py:.2} µs per call; the same call from Rust {rust:.2} µs ({:.2}× of Rust); limit 3 µs ({:.2}× of the limit)", py / rust, py / 3.0);
    }

    // Maestro's per-node overhead: 1,000 independent nodes calling pit/echo.
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("[[node]]\nid = \"n{i}\"\ntarget = \"pit/echo\"\nop = \"x\"\ninput = \"{i}\"\n\n[[node.alternatives]]\ntarget = \"pit/echo\"\nop = \"y\"\n\n"));
    }
    let file = root.path().join("wide.toml");
    std::fs::write(&file, &text).unwrap();
    let melody = Melody::load(&file, None).unwrap();
    let store = RunStore::in_home(&home);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let time_run = |settings: RunSettings| {
        let started = Instant::now();
        let run = rt.block_on(run_melody(&kernel, &melody, &store, settings, None, Cancel::default())).unwrap();
        assert!(run.report.ok());
        assert!(run.fallbacks.is_empty(), "{:?}", run.fallbacks.first());
        started.elapsed()
    };
    let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
    let manual = best(&|| time_run(RunSettings::default()));
    let maestro = Maestro::start(MaestroOptions { limit: Duration::from_secs(5), ..MaestroOptions::new(&home) }).unwrap();
    let with_maestro = best(&|| time_run(RunSettings { maestro: Some(Arc::clone(&maestro)), ..RunSettings::default() }));
    let per_node = (with_maestro.saturating_sub(manual)).as_secs_f64() * 1e6 / 1000.0;
    println!(
        "  1,000-node melody: Manual {:.1} ms, Maestro {:.1} ms ({:.2}× of Manual); Maestro's decision + learning ≈ {per_node:.0} µs per node",
        manual.as_secs_f64() * 1e3,
        with_maestro.as_secs_f64() * 1e3,
        with_maestro.as_secs_f64() / manual.as_secs_f64()
    );
}

fn python_version(kernel: &Kernel) -> String {
    python::run(kernel, "import sys\nresult = sys.version.split()[0]", "v.py").map(|v| v.as_str().unwrap_or("?").to_owned()).unwrap_or_default()
}
