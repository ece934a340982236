//! `cargo xtask bench loop`: wall time of a caret author's loop — new → build → test → pack →
//! publish → install → first call — with a cold and a warm cargo target directory, and of the
//! edit → rebuild → reinstall → first call cycle, each beside a plain `cargo build` of the same
//! crate (the floor: what compiling alone costs). Needs the `symphony` binary built in release
//! next to `carets` (xtask bench builds it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET: &str = "wasm32-wasip2";

struct Env {
    root: PathBuf,
    home: PathBuf,
    registry: PathBuf,
}

fn symphony_exe() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_carets")).with_file_name(format!("symphony{}", std::env::consts::EXE_SUFFIX));
    assert!(exe.is_file(), "{} is missing: `cargo build --release -p symphony` (cargo xtask bench does it)", exe.display());
    exe
}

/// Runs a command to success and returns how long it took.
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn carets(dir: &Path, target: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carets"));
    cmd.args(args).current_dir(dir).env("CARGO_TARGET_DIR", target);
    cmd
}

fn symphony(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(symphony_exe());
    cmd.arg("--home").arg(&env.home).args(args).current_dir(&env.root);
    cmd
}

fn cargo_build(dir: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(["build", "--release", "--quiet", "--target", TARGET]).current_dir(dir).env("CARGO_TARGET_DIR", target);
    cmd
}

/// The whole loop for a new operator `name`; returns each step's time.
fn whole_loop(env: &Env, name: &str, target: &Path) -> Vec<(&'static str, Duration)> {
    let dir = env.root.join(name);
    let registry = env.registry.to_str().unwrap();
    let package = format!("{name}-0.1.0.caret");
    let mut steps = vec![("new", timed(&mut carets(&env.root, target, &["new", name, "--kind", "operator"])))];
    steps.push(("build", timed(&mut carets(&dir, target, &["build"]))));
    steps.push(("test", timed(&mut carets(&dir, target, &["test"]))));
    steps.push(("pack", timed(&mut carets(&dir, target, &["pack", ".", "--key", "../bench.key"]))));
    steps.push(("publish", timed(&mut carets(&dir, target, &["publish", &package, "--registry", registry]))));
    steps.push(("install", timed(&mut symphony(env, &["caret", "install", name, "--registry", registry]))));
    steps.push(("first call", timed(&mut symphony(env, &["call", name, "upper", "hi"]))));
    steps
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{:.0} ms", d.as_secs_f64() * 1e3) } else { format!("{:.2} s", d.as_secs_f64()) }
}

fn report(name: &str, value: Duration, against: &str, other: Duration) {
    let ratio = other.as_secs_f64() / value.as_secs_f64();
    println!("{name:<52} {:>9}   {against:<36} {:>9}   ratio {ratio:>6.2}x", secs(value), secs(other));
}

fn breakdown(steps: &[(&str, Duration)]) -> String {
    steps.iter().map(|(s, d)| format!("{s} {}", secs(*d))).collect::<Vec<_>>().join(", ")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "loop edit carets".contains(f.as_str())) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let env = Env { root: tmp.path().to_path_buf(), home: tmp.path().join("home"), registry: tmp.path().join("registry") };
    let out = carets(&env.root, &env.root, &["keygen", "--name", "bench", "--out", "bench.key"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().find_map(|l| l.strip_prefix("public key: ")).expect("keygen prints the key").trim().to_owned();
    timed(&mut symphony(&env, &["trust", "add", &key, "--name", "bench"]));

    println!("caret developer loop (wall time; floor = plain `cargo build --release --target {TARGET}` of the same crate)");
    // Cold: an empty target directory, so every dependency of the SDK compiles.
    let cold_target = env.root.join("target-cold");
    let cold = whole_loop(&env, "loop-cold", &cold_target);
    let floor_target = env.root.join("target-floor");
    let cold_floor = timed(&mut cargo_build(&env.root.join("loop-cold"), &floor_target));
    let total: Duration = cold.iter().map(|s| s.1).sum();
    report("new→…→first call, cold target dir", total, "cargo build, cold target dir", cold_floor);
    println!("    {}", breakdown(&cold));

    // Warm: the same target directory again, for a new crate.
    let warm = whole_loop(&env, "loop-warm", &cold_target);
    let dir = env.root.join("loop-warm");
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let mut floor = Vec::new();
    let mut cycles = Vec::new();
    let mut parts = Vec::new();
    for round in 0..5 {
        // An edit that changes behaviour, so the first call proves the new version answers.
        let edited = source.replace("input.to_uppercase()", &format!("format!(\"{{}}{round}\", input.to_uppercase())"));
        std::fs::write(&lib, &edited).unwrap();
        floor.push(timed(&mut cargo_build(&dir, &cold_target)));
        std::fs::write(&lib, edited.replace("to_uppercase()", "to_uppercase().to_string()")).unwrap();
        let build = timed(&mut carets(&dir, &cold_target, &["build"]));
        let install = timed(&mut symphony(&env, &["caret", "install", dir.to_str().unwrap()]));
        let start = Instant::now();
        let out = symphony(&env, &["call", "loop-warm", "upper", "hi"]).output().unwrap();
        let call = start.elapsed();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("HI{round}"), "the edit did not reach the first call");
        cycles.push(build + install + call);
        parts.push((build, install, call));
    }
    let warm_floor = median(floor);
    let total: Duration = warm.iter().map(|s| s.1).sum();
    report("new→…→first call, warm target dir", total, "cargo build of the edited crate, warm", warm_floor);
    println!("    {}", breakdown(&warm));
    let cycle = median(cycles.clone());
    report("edit → rebuild → reinstall → first call (median of 5)", cycle, "cargo build of the edited crate, warm", warm_floor);
    let (b, i, c) = parts[cycles.iter().position(|d| *d == cycle).unwrap_or(0)];
    println!("    build {}, install {}, first call {}", secs(b), secs(i), secs(c));
}
