//! Hot swap under load: several threads call the shipped stateful `tally` caret while twenty
//! installs swap its version — good builds, a build whose `restore-state` refuses, and files
//! that are not components at all. No call fails or is lost, each answer comes from exactly
//! one build, builds only move forward (except on rollback), the count survives every good
//! swap, and no broken build ever answers.

use super::support::{caret_dir, extensions, Fixture};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use symphony_kernel::swap::{KernelEvent, SwapOutcome};
use symphony_kernel::Principal;

/// The tally component built with `TALLY_BUILD=<build>` (and a `restore-state` that refuses
/// everything when `broken`). Builds share the extensions' target directory, so only the
/// tally crate recompiles.
/// Built components by (build, broken), so each variant compiles once per test run.
type Builds = std::sync::Mutex<BTreeMap<(String, bool), Vec<u8>>>;

fn tally_build(build: &str, broken: bool) -> Vec<u8> {
    static BUILDS: OnceLock<Builds> = OnceLock::new();
    let cache = BUILDS.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    if let Some(bytes) = cache.get(&(build.to_owned(), broken)) {
        return bytes.clone();
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("extensions"),
        None => extensions().join("target"),
    };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(extensions())
        .env("CARGO_TARGET_DIR", &target)
        .env("TALLY_BUILD", build)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "-p", "tally"]);
    if broken {
        cmd.env("TALLY_BROKEN_RESTORE", "1");
    } else {
        cmd.env_remove("TALLY_BROKEN_RESTORE");
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "building tally ({build})");
    let bytes = std::fs::read(target.join("wasm32-wasip2/release/tally.wasm")).unwrap();
    cache.insert((build.to_owned(), broken), bytes.clone());
    bytes
}

/// A caret directory holding tally's manifest and `component`.
fn caret_with(dir: &Path, component: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir.join("build")).unwrap();
    std::fs::copy(caret_dir("tally").join("Symphony.toml"), dir.join("Symphony.toml")).unwrap();
    std::fs::write(dir.join("build/tally.wasm"), component).unwrap();
    dir.to_path_buf()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Good(&'static str),
    RefusesState,
    NotAComponent,
}

#[test]
fn twenty_swaps_under_load_lose_no_call_and_keep_the_count() {
    let f = Fixture::new();
    let (a, b) = (tally_build("a", false), tally_build("b", false));
    let refuses = tally_build("x", true);
    let dir = f.root.path().join("tally");
    // Warm-up, so the swaps below measure swapping, not Cranelift: every build compiled once
    // into the cache, the count at 1.
    for component in [&a, &b, &refuses, &a] {
        f.kernel.install_dir(&caret_with(&dir, component)).unwrap();
        f.kernel.load("tally").unwrap();
    }
    f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    let events = f.kernel.subscribe();
    let swaps_on_record = |f: &Fixture| {
        let (records, _) = symphony_kernel::AuditLog::read(&f.home().join("audit.jsonl")).unwrap();
        records.iter().filter(|r| r.capability.as_deref() == Some("caret.swapped")).count()
    };
    let warm_up_swaps = swaps_on_record(&f);

    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (kernel, stop) = (f.kernel.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut answers, mut errors) = (Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match kernel.invoke(&Principal::User, "caret/tally", "tick", "") {
                        Ok(a) => {
                            let v: serde_json::Value = serde_json::from_str(&a).unwrap();
                            answers.push((v["n"].as_u64().unwrap(), v["build"].as_str().unwrap().to_owned()));
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (answers, errors)
            })
        })
        .collect();

    use Step::*;
    let plan = [
        Good("b"), Good("a"), RefusesState, Good("b"), NotAComponent, Good("a"), Good("b"), RefusesState,
        Good("a"), Good("b"), NotAComponent, Good("a"), Good("b"), Good("a"), RefusesState, Good("b"),
        Good("a"), NotAComponent, Good("b"), Good("a"),
    ];
    assert_eq!(plan.len(), 20);
    let mut served = vec!["a".to_owned()];
    for step in plan {
        std::thread::sleep(Duration::from_millis(40));
        let component = match step {
            Good("a") => a.clone(),
            Good(_) => b.clone(),
            RefusesState => refuses.clone(),
            NotAComponent => b"\0asm\x0d\0\x01\0 truncated".to_vec(),
        };
        let installed = f.kernel.install_dir(&caret_with(&dir, &component));
        match step {
            Good(build) => {
                installed.unwrap();
                served.push(build.to_owned());
            }
            RefusesState => {
                installed.unwrap();
            }
            NotAComponent => assert!(installed.is_err(), "a file that is no component was installed"),
        }
    }
    std::thread::sleep(Duration::from_millis(40));
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for c in callers {
        let (mut got, errors) = c.join().unwrap();
        assert!(errors.is_empty(), "calls failed during swaps: {errors:?}");
        answers.append(&mut got);
    }

    // One instance, state carried over: the answers' counts are exactly 2..=N+1 (the warm-up
    // made 1) — none lost, none repeated, none reset by a swap.
    answers.sort();
    for (i, (n, _)) in answers.iter().enumerate() {
        assert_eq!(*n, i as u64 + 2, "count {} missing or repeated", i + 2);
    }
    // In count order the answering build changes exactly at the good swaps, in their order:
    // calls were answered between every two swaps. (How fast, during swaps and without, is a
    // figure of `cargo xtask bench swap`.)
    let mut seen: Vec<String> = Vec::new();
    for (_, build) in &answers {
        if seen.last() != Some(build) {
            seen.push(build.clone());
        }
    }
    assert!(!seen.contains(&"x".to_owned()), "a build that refused its state answered");
    assert_eq!(seen, served, "the builds did not follow the swaps");

    let events: Vec<KernelEvent> = events.try_iter().collect();
    let swapped = events.iter().filter(|e| matches!(e, KernelEvent::Swapped(_))).count();
    let failed = events.iter().filter(|e| matches!(e, KernelEvent::SwapFailed { .. })).count();
    assert_eq!((swapped, failed), (served.len() - 1, 3), "{events:?}");
    let state_carried = events.iter().all(|e| match e {
        KernelEvent::Swapped(r) => r.state_bytes.is_some_and(|b| b > 0),
        _ => true,
    });
    assert!(state_carried, "{events:?}");

    // Both hashes of every swap are on record.
    assert_eq!(swaps_on_record(&f) - warm_up_swaps, swapped);
    let (records, _) = symphony_kernel::AuditLog::read(&f.home().join("audit.jsonl")).unwrap();
    assert!(records.iter().any(|r| r.capability.as_deref() == Some("caret.swap-failed") && r.target.contains(" -> ")));

    // Rollback is the one way back, and it keeps the count too.
    let total = answers.len() as u64 + 1;
    f.kernel.install_dir(&caret_with(&dir, &b)).unwrap();
    f.kernel.rollback("tally").unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap()).unwrap();
    assert_eq!((v["n"].as_u64(), v["build"].as_str()), (Some(total + 1), Some("a")), "{v}");
}

/// A caller that passed the gate just as a swap closed it could pop the idle instance between
/// the swap counting instances and taking one; the swap then found none and handed over the
/// state its version had started from, so counts repeated. Reloads back to back with many
/// callers give that window many chances.
#[test]
fn a_caller_racing_the_closing_gate_never_makes_a_swap_hand_over_old_state() {
    let f = Fixture::new();
    f.kernel.install_dir(&caret_dir("tally")).unwrap();
    f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (kernel, stop) = (f.kernel.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut counts = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
                    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                    counts.push(v["n"].as_u64().unwrap());
                }
                counts
            })
        })
        .collect();
    for _ in 0..300 {
        assert!(matches!(f.kernel.reload("tally").unwrap(), SwapOutcome::Swapped(_)));
    }
    stop.store(true, Ordering::Relaxed);
    let mut counts: Vec<u64> = callers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    counts.sort_unstable();
    let expected: Vec<u64> = (2..counts.len() as u64 + 2).collect();
    if counts != expected {
        let repeated: Vec<_> = counts.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).take(5).collect();
        panic!("{} answers over 300 reloads; counts repeated: {repeated:?}", counts.len());
    }
}

#[test]
fn a_swap_is_held_until_new_capabilities_are_granted_and_refuses_a_kind_change() {
    let f = Fixture::new();
    let dir = f.root.path().join("tally");
    let a = tally_build("a", false);
    f.kernel.install_dir(&caret_with(&dir, &a)).unwrap();
    f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    let serving = f.kernel.serving("tally").unwrap();

    // The next build asks for more: installed, but the running version keeps serving.
    let manifest = std::fs::read_to_string(dir.join("Symphony.toml")).unwrap().replace("request = []", r#"request = ["env:TALLY_NAME"]"#);
    std::fs::write(dir.join("Symphony.toml"), &manifest).unwrap();
    std::fs::write(dir.join("build/tally.wasm"), tally_build("b", false)).unwrap();
    f.kernel.install_dir(&dir).unwrap();
    assert_eq!(f.kernel.serving("tally").unwrap(), serving);
    let err = f.kernel.swap("tally").expect_err("held");
    assert!(err.to_string().contains("symphony caret grant tally env:TALLY_NAME"), "{err}");
    let v = f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    assert!(v.contains(r#""build":"a""#) && v.contains(r#""n":2"#), "{v}");

    // Granted: the swap goes through, count intact.
    f.kernel.grant("tally", &[symphony_kernel::Capability::Env { name: "TALLY_NAME".to_owned() }], "test").unwrap();
    assert!(matches!(f.kernel.swap("tally").unwrap(), SwapOutcome::Swapped(_)));
    let v = f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    assert!(v.contains(r#""build":"b""#) && v.contains(r#""n":3"#), "{v}");

    // A reload makes fresh instances of the same build, count intact.
    assert!(matches!(f.kernel.reload("tally").unwrap(), SwapOutcome::Swapped(_)));
    assert!(f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap().contains(r#""n":4"#));

    // A motif under the same id is no swap: refused, the operator keeps serving.
    let motif = f.root.path().join("motif");
    std::fs::create_dir_all(motif.join("build")).unwrap();
    let aurora = std::fs::read_to_string(caret_dir("aurora").join("Symphony.toml")).unwrap();
    std::fs::write(motif.join("Symphony.toml"), aurora.replace(r#"id = "aurora""#, r#"id = "tally""#)).unwrap();
    std::fs::copy(caret_dir("aurora").join("build/aurora.wasm"), motif.join("build/aurora.wasm")).unwrap();
    f.kernel.registry().install_dir(&motif).unwrap();
    let err = f.kernel.swap("tally").expect_err("kind change");
    assert!(matches!(err, symphony_kernel::swap::SwapError::KindChanged { .. }), "{err}");
    assert!(f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap().contains(r#""n":5"#));
}

#[test]
fn another_process_installing_is_swapped_in_by_the_watcher() {
    let f = Fixture::new();
    let dir = f.root.path().join("tally");
    f.kernel.install_dir(&caret_with(&dir, &tally_build("a", false))).unwrap();
    f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    let _watch = f.kernel.watch_installs(Duration::from_millis(20));

    // A second kernel on the same home stands for `symphony dev` in another process.
    let other = symphony_kernel::Kernel::open(symphony_kernel::KernelOptions {
        home: f.home(),
        workspace: f.workspace(),
        config: symphony_kernel::Config::default(),
    })
    .unwrap();
    // Subscribed before the install: a swap's event is published just after the new version
    // opens, so a caller can see the new build before the event is sent.
    let events = f.kernel.subscribe();
    std::fs::write(dir.join("build/tally.wasm"), tally_build("b", false)).unwrap();
    other.install_dir(&dir).unwrap();
    let swapped = match events.recv_timeout(Duration::from_secs(10)) {
        Ok(KernelEvent::Swapped(r)) => r,
        other => panic!("never swapped: {other:?}"),
    };
    assert_ne!(swapped.from_hash, swapped.to_hash, "an install swaps the build");
    let v = f.kernel.invoke(&Principal::User, "caret/tally", "tick", "").unwrap();
    assert!(v.contains(r#""build":"b""#) && v.contains(r#""n":2,"#), "the new build must answer, count intact: {v}");

    // `symphony caret reload` from elsewhere: swapped in again, count intact.
    other.registry().request_reload("tally").unwrap();
    match events.recv_timeout(Duration::from_secs(10)) {
        Ok(KernelEvent::Swapped(r)) => assert_eq!(r.from_hash, r.to_hash, "a reload keeps the build"),
        other => panic!("no reload: {other:?}"),
    }
    let v = f.kernel.invoke(&Principal::User, "caret/tally", "counts", "").unwrap();
    assert!(v.contains(r#""build":"b""#) && !v.contains(r#""total":0"#), "{v}");
}

