//! `cargo xtask bench swap`: hot-swap latency as an author sees it — from the file write to the
//! first call answered by the new version in a running kernel (another process, as the IDE
//! is): `symphony dev --prebuilt` with a `.wasm` replaced (warm compiled cache), and `symphony
//! dev` with a source edit (rebuild included). Each beside its target or floor. First, what
//! swaps cost the callers of the caret being swapped (`-- calls` runs only that part).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/tally_crate.rs"]
mod tally_crate;

use std::path::{Path, PathBuf};
use tally_crate::{extensions, shared_target, tally_crate};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use symphony_kernel::{Config, Kernel, KernelOptions, Principal};

/// tally built with `TALLY_BUILD=<build>`.
fn tally_build(build: &str) -> Vec<u8> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(extensions())
        .env("CARGO_TARGET_DIR", shared_target())
        .env("TALLY_BUILD", build)
        .env_remove("TALLY_BROKEN_RESTORE")
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "-p", "tally"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(shared_target().join("wasm32-wasip2/release/tally.wasm")).unwrap()
}

fn dev(home: &Path, dir: &Path, prebuilt: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_symphony"));
    cmd.arg("--home").arg(home).arg("dev").arg(dir).env("CARGO_TARGET_DIR", shared_target());
    if prebuilt {
        cmd.arg("--prebuilt");
    }
    let log = std::fs::File::create(home.with_file_name(if prebuilt { "dev-prebuilt.log" } else { "dev-source.log" })).unwrap();
    cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

/// Ticks in the running kernel until `build` answers; the time since `since`.
fn until_answered_by(kernel: &Kernel, build: &str, since: Instant) -> Duration {
    let marker = format!("\"build\":\"{build}\"");
    let give_up = since + Duration::from_secs(120);
    loop {
        let answer = kernel.invoke(&Principal::User, "caret/tally", "counts", "").unwrap();
        if answer.contains(&marker) {
            return since.elapsed();
        }
        assert!(Instant::now() < give_up, "{build} never answered: {answer}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn report(name: &str, value: Duration, against: &str, other: Duration) {
    let ratio = other.as_secs_f64() / value.as_secs_f64();
    println!("{name:<52} {:>9}   {against:<36} {:>9}   ratio {ratio:>6.2}x", ms(value), ms(other));
}

/// A kernel on a fresh home under `tmp`, and a caret directory for tally (manifest only: the
/// caller puts a build in it). Returns the kernel, its home and the directory.
fn kernel_and_tally_dir(tmp: &Path) -> (Kernel, PathBuf, PathBuf) {
    let (home, ws) = (tmp.join("home"), tmp.join("ws"));
    std::fs::create_dir_all(&ws).unwrap();
    let dir = tmp.join("tally");
    std::fs::create_dir_all(dir.join("build")).unwrap();
    std::fs::copy(extensions().join("tally/Symphony.toml"), dir.join("Symphony.toml")).unwrap();
    let kernel = Kernel::open(KernelOptions { home: home.clone(), workspace: ws, config: Config::default() }).unwrap();
    (kernel, home, dir)
}

/// Four threads call `tally` for `run`, while `swap` (if any) runs on this thread; the calls'
/// latencies and how many were answered per second.
fn calls_for(kernel: &Kernel, run: Duration, swap: Option<&dyn Fn()>) -> (Vec<Duration>, f64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (kernel, stop) = (kernel.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut took = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t0 = Instant::now();
                    kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
                    took.push(t0.elapsed());
                }
                took
            })
        })
        .collect();
    match swap {
        Some(swap) => swap(),
        None => std::thread::sleep(run),
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let elapsed = started.elapsed();
    let took: Vec<Duration> = callers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let rate = took.len() as f64 / elapsed.as_secs_f64();
    (took, rate)
}

/// Calls while twenty swaps go through, beside the same callers with no swap in the same run:
/// what a swap costs the callers of the caret being swapped.
fn calls_during_swaps(a: &[u8], b: &[u8]) {
    println!("== calls during swaps: 4 threads calling tally (one instance) in this process ==");
    let tmp = tempfile::tempdir().unwrap();
    let (kernel, _, dir) = kernel_and_tally_dir(tmp.path());
    let install = |bytes: &[u8]| {
        std::fs::write(dir.join("build/tally.wasm"), bytes).unwrap();
        kernel.install_dir(&dir).unwrap();
    };
    // Both builds compiled once, so the swaps below measure swapping, not Cranelift.
    for bytes in [a, b, a] {
        install(bytes);
        kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    }
    let swaps = || {
        for round in 0..20 {
            std::thread::sleep(Duration::from_millis(40));
            install(if round % 2 == 0 { b } else { a });
        }
        std::thread::sleep(Duration::from_millis(40));
    };
    let (mut swapping, swapping_rate) = calls_for(&kernel, Duration::ZERO, Some(&swaps));
    let (mut quiet, quiet_rate) = calls_for(&kernel, Duration::from_secs(1), None);
    println!(
        "{:<52} {:>7.0}/s   {:<36} {:>7.0}/s   ratio {:>6.2}x",
        "calls answered during 20 swaps",
        swapping_rate,
        "the same callers, no swap",
        quiet_rate,
        swapping_rate / quiet_rate
    );
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        let (with, without) = (percentile(&mut swapping, p), percentile(&mut quiet, p));
        println!(
            "{:<52} {:>9}   {:<36} {:>9}   ratio {:>6.2}x",
            format!("a call's latency during swaps, {name}"),
            us(with),
            "no swap",
            us(without),
            without.as_secs_f64() / with.as_secs_f64()
        );
    }
    println!();
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "swap hot dev calls".contains(f.as_str())) {
        return;
    }
    let (a, b) = (tally_build("a"), tally_build("b"));
    calls_during_swaps(&a, &b);
    if filter.iter().all(|f| "calls".contains(f.as_str())) && !filter.is_empty() {
        return;
    }
    println!("== hot swap: file write → first call answered by the new version (running kernel in another process) ==");
    let tmp = tempfile::tempdir().unwrap();
    // The running kernel (the IDE's role), following installs from other processes.
    let (kernel, home, dir) = kernel_and_tally_dir(tmp.path());
    std::fs::write(dir.join("build/tally.wasm"), &a).unwrap();
    kernel.install_dir(&dir).unwrap();
    kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    let _follow = kernel.watch_installs(symphony_kernel::swap::WATCH_INTERVAL);

    // Prebuilt: replace the .wasm (alternating two builds, both compiled once: a warm cache).
    let mut child = dev(&home, &dir, true);
    std::thread::sleep(Duration::from_millis(800));
    let mut prebuilt = Vec::new();
    for round in 0..22 {
        let (bytes, build) = if round % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let tmpfile = dir.join("build/.tally.wasm.new");
        std::fs::write(&tmpfile, bytes).unwrap();
        let t0 = Instant::now();
        std::fs::rename(&tmpfile, dir.join("build/tally.wasm")).unwrap();
        let took = until_answered_by(&kernel, build, t0);
        if std::env::var_os("SWAP_BENCH_VERBOSE").is_some() {
            eprintln!("round {round}: {took:?}");
        }
        if round >= 2 {
            prebuilt.push(took); // the first two rounds fill the compiled cache
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let _ = child.kill();
    let _ = child.wait();
    if std::env::var_os("SWAP_BENCH_VERBOSE").is_some() {
        eprintln!("{}", std::fs::read_to_string(tmp.path().join("dev-prebuilt.log")).unwrap_or_default());
    }
    let p50 = percentile(&mut prebuilt, 0.5);
    let p90 = percentile(&mut prebuilt, 0.9);
    report("prebuilt .wasm replaced, p50 of 20", p50, "target 150 ms", Duration::from_millis(150));
    report("prebuilt .wasm replaced, p90 of 20", p90, "target 150 ms", Duration::from_millis(150));

    // Source edit: rebuild (cargo, release, LTO) included; floor = that cargo build alone.
    let src = tmp.path().join("tally-src");
    tally_crate(&src);
    let mut child = dev(&home, &src, false);
    let lib = src.join("src/lib.rs");
    let original = std::fs::read_to_string(&lib).unwrap();
    until_answered_by(&kernel, "0.1.0", Instant::now());
    let (mut rebuild, mut floor) = (Vec::new(), Vec::new());
    for round in 0..6 {
        let build = format!("edit-{round}");
        let edited = original.replace(r#"None => env!("CARGO_PKG_VERSION"),"#, &format!("None => {build:?},"));
        let t0 = Instant::now();
        std::fs::write(&lib, &edited).unwrap();
        rebuild.push(until_answered_by(&kernel, &build, t0));
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = child.kill();
    let _ = child.wait();
    for round in 0..3 {
        std::fs::write(&lib, original.replace(r#"None => env!("CARGO_PKG_VERSION"),"#, &format!("None => \"floor-{round}\","))).unwrap();
        let t0 = Instant::now();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", shared_target())
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .status()
            .unwrap();
        assert!(status.success());
        floor.push(t0.elapsed());
    }
    let p50 = percentile(&mut rebuild, 0.5);
    report("source edited (rebuild), p50 of 6", p50, "cargo build of the edit alone (floor)", percentile(&mut floor, 0.5));
    println!();
}
