//! The stale manager against a real store: policies move blobs hot → warm → cold and delete
//! what they let go, a dry run changes nothing, reading a moved blob brings it back, nothing
//! a policy keeps is ever deleted — with cold storage in a local directory and in a real
//! S3-protocol server (`s3s-fs`, started here on loopback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use symphony_artifacts::{ArtifactStore, BlobId, Meta, StoreError, Tier};
use symphony_stale::{Config, StaleError, StaleManager};

const DAY: u64 = 86_400;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

const POLICY: &str = r#"
[[rule]]
match = "logs/*"
keep_latest = 1
warm_after = "1d"
cold_after = "30d"
delete_after = "60d"
keep_training_value = 0.5

[[rule]]
match = "*"
keep_latest = 1
warm_after = "1d"
"#;

fn text(i: usize) -> Vec<u8> {
    format!("# Log {i}\n\n{}\n", "a line of a log that repeats with small changes\n".repeat(200 + i)).into_bytes()
}

fn tier(store: &ArtifactStore, spec: &str) -> Tier {
    store.blobs().tier(&store.resolve(spec).unwrap().blob).unwrap()
}

#[test]
fn sweeps_move_by_policy_restore_on_access_and_never_delete_what_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    for i in 0..3 {
        store.put("logs/app", &text(i), Meta::default()).unwrap();
    }
    store.put("notes/pinned", b"keep me", Meta { tags: vec!["pinned".to_owned()], ..Meta::default() }).unwrap();
    store.put("notes/pinned", b"keep me too", Meta { tags: vec!["pinned".to_owned()], ..Meta::default() }).unwrap();
    // logs/used@1 is in the lineage of three later artifacts: worth keeping for training.
    store.put("logs/used", b"a much-used log", Meta::default()).unwrap();
    store.put("logs/used", b"its successor", Meta::default()).unwrap();
    for i in 0..3 {
        store.put(&format!("derived/{i}"), b"derived", Meta { derived_from: vec!["logs/used@1".to_owned()], ..Meta::default() }).unwrap();
    }
    let config = Config::parse(POLICY, &dir.path().join("store"), "stale.toml").unwrap();
    let stale = StaleManager::with_config(Arc::clone(&store), config).unwrap();
    let disk_before = store.stats().unwrap().stored_bytes;

    // A dry run says what would move and changes nothing.
    let dry = stale.sweep(true, Some(now() + 2 * DAY), &mut |_, _, _| {}).unwrap();
    let moving: Vec<&str> = dry.plan.moves.iter().flat_map(|m| m.versions.iter().map(String::as_str)).collect();
    for spec in ["logs/app@1", "logs/app@2", "logs/used@1"] {
        assert!(moving.contains(&spec), "{spec} is idle and not among the latest: {moving:?}");
    }
    for spec in ["logs/app@3", "notes/pinned@1", "notes/pinned@2", "derived/0@1"] {
        assert!(!moving.contains(&spec), "{spec} is protected: {moving:?}");
    }
    assert!(dry.plan.moves.iter().all(|m| m.to == symphony_stale::policy::Level::Warm && m.reason.to_string().contains("warm_after")), "{:?}", dry.plan.moves);
    assert_eq!(tier(&store, "logs/app@1"), Tier::Hot, "a dry run moved something");
    assert_eq!(dry.moved_warm, 0);

    // Two days on: the idle old versions go warm; the hot copies are collected.
    let warm = stale.sweep(false, Some(now() + 2 * DAY), &mut |_, _, _| {}).unwrap();
    assert_eq!(warm.moved_warm, dry.plan.moves.len(), "{warm:?}");
    assert!(matches!(tier(&store, "logs/app@2"), Tier::Warm { .. }));
    assert_eq!(tier(&store, "logs/app@3"), Tier::Hot);
    assert!(store.stats().unwrap().stored_bytes < disk_before, "the hot copies were not collected");
    let pack = match tier(&store, "logs/app@2") {
        Tier::Warm { pack } => pack,
        other => panic!("{other:?}"),
    };
    assert!(dir.path().join("store/warm").join(&pack).exists());

    // Reading a warm version brings it back hot, bytes intact.
    assert_eq!(store.get("logs/app@1").unwrap(), text(0));
    assert_eq!(tier(&store, "logs/app@1"), Tier::Hot);

    // Forty days on: what is still idle goes cold (object storage: a local directory here).
    let cold = stale.sweep(false, Some(now() + 40 * DAY), &mut |_, _, _| {}).unwrap();
    assert!(cold.moved_cold >= 2, "{cold:?}");
    assert!(matches!(tier(&store, "logs/app@2"), Tier::Cold { .. }));
    let objects = std::fs::read_dir(dir.path().join("store/cold/packs")).unwrap().count();
    assert!(objects >= 1);
    assert!(!dir.path().join("store/warm").join(&pack).exists(), "a warm pack nothing points at was kept");
    assert_eq!(store.get("logs/app@2").unwrap(), text(1), "restored from cold");

    // A hundred days on: idle versions past delete_after go — except those kept.
    let late = stale.sweep(false, Some(now() + 100 * DAY), &mut |_, _, _| {}).unwrap();
    let deleted: Vec<String> = late.plan.deletes.iter().map(|d| format!("{}@{}", d.name, d.version)).collect();
    assert!(deleted.contains(&"logs/app@1".to_owned()) || deleted.contains(&"logs/app@2".to_owned()), "{deleted:?}");
    for kept in ["logs/app@3", "logs/used@1", "logs/used@2", "notes/pinned@1", "notes/pinned@2", "derived/2@1"] {
        assert!(!deleted.contains(&kept.to_owned()), "{kept} was deleted: {deleted:?}");
        assert!(store.get(kept).is_ok(), "{kept} is not readable after the sweeps");
    }
    assert!(late.plan.protected >= 5, "{:?}", late.plan);
    assert_eq!(store.get("logs/app@3").unwrap(), text(2));
    assert!(store.blobs().verify().unwrap().is_empty());

    // A restart keeps every placement; cold blobs still come back.
    drop(stale);
    let Ok(store) = Arc::try_unwrap(store) else { panic!("the store is still shared") };
    drop(store);
    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    let config = Config::parse(POLICY, &dir.path().join("store"), "stale.toml").unwrap();
    let _stale = StaleManager::with_config(Arc::clone(&store), config).unwrap();
    assert_eq!(store.get("logs/used@1").unwrap(), b"a much-used log");
}

#[test]
fn a_moved_blob_without_a_stale_manager_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let v = store.put("a", b"bytes", Meta::default()).unwrap();
    store.blobs().set_tiers(&[(v.blob.clone(), Tier::Warm { pack: "gone.wpk".to_owned() })]).unwrap();
    match store.blobs().get(&v.blob) {
        Err(StoreError::Restore { tier: "warm", id, .. }) => assert_eq!(id, v.blob),
        other => panic!("{other:?}"),
    }
    // With one attached but the pack missing: still typed, naming the pack.
    let store = Arc::new(store);
    let _stale = StaleManager::with_config(Arc::clone(&store), Config::parse("", dir.path(), "stale.toml").unwrap()).unwrap();
    let err = store.get("a").unwrap_err().to_string();
    assert!(err.contains("gone.wpk") && err.contains("warm"), "{err}");
    let _ = BlobId(String::new());
}

#[test]
fn bad_policies_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        ("[[rule]]\nwarm_after = \"soon\"", "warm_after"),
        ("[[rule]]\nwarm_after = \"30d\"\ncold_after = \"1d\"", "warm_after (30days) comes after cold_after (1day)"),
        ("[[rule]]\nkeep_training_value = 2.0", "keep_training_value"),
        ("[[rule]]\nwarm_afterr = \"1d\"", "warm_afterr"),
        ("[sweep]\nevery = \"often\"", "every"),
        ("[cold]\nurll = \"x\"", "urll"),
        ("[hot]\nlevel = 0", "[hot] level: 0 is not a zstd level (1–22)"),
        ("[sweep]\nlevel = 23", "[sweep] level: 23"),
    ] {
        match Config::parse(text, dir.path(), "stale.toml") {
            Err(StaleError::Policy(e)) => {
                assert!(e.to_string().contains(says) && e.to_string().starts_with("stale.toml"), "{text}: {e}");
            }
            other => panic!("{text} was accepted: {other:?}"),
        }
    }
}

#[test]
fn zstd_levels_default_to_1_hot_and_19_warm() {
    let dir = tempfile::tempdir().unwrap();
    let default = Config::parse("", dir.path(), "stale.toml").unwrap();
    assert_eq!((default.hot_level, default.level), (1, 19));
    let set = Config::parse("[hot]\nlevel = 3\n[sweep]\nlevel = 22", dir.path(), "stale.toml").unwrap();
    assert_eq!((set.hot_level, set.level), (3, 22));
}

/// `s3s-fs` (built by `cargo xtask test`): an S3-protocol server over a directory.
fn s3s_fs() -> std::path::PathBuf {
    let path = std::env::var_os("SYMPHONY_S3S_FS").map_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/symphony/tools/bin/s3s-fs"), std::path::PathBuf::from);
    assert!(path.exists(), "{} is missing: `cargo xtask test` installs it (cargo install s3s-fs --features binary)", path.display());
    path
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_s3(root: &std::path::Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "symphony", "--secret-key", "symphony-secret"])
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "s3s-fs did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (server, port)
}

#[test]
fn the_cold_tier_in_a_real_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let s3_root = dir.path().join("s3");
    std::fs::create_dir_all(s3_root.join("artifacts")).unwrap();
    let (server, port) = start_s3(&s3_root);
    let config_text = format!(
        "[cold]\nurl = \"s3://artifacts/symphony\"\noptions = {{ aws_endpoint = \"http://127.0.0.1:{port}\", aws_allow_http = \"true\", aws_access_key_id = \"symphony\", aws_secret_access_key = \"symphony-secret\", aws_region = \"us-east-1\" }}\n\n[[rule]]\nmatch = \"*\"\nkeep_latest = 1\ncold_after = \"1d\"\n"
    );
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(dir.path().join("store/stale.toml"), &config_text).unwrap();
    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    for i in 0..4 {
        store.put("reports/weekly", &text(i), Meta::default()).unwrap();
    }
    let stale = StaleManager::open(Arc::clone(&store)).unwrap();
    let report = stale.sweep(false, Some(now() + 2 * DAY), &mut |_, _, _| {}).unwrap();
    assert_eq!(report.moved_cold, 3, "{report:?}");
    // The pack is an object in the server's bucket.
    let objects: Vec<_> = std::fs::read_dir(s3_root.join("artifacts/symphony/packs")).unwrap().flatten().collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(matches!(tier(&store, "reports/weekly@1"), Tier::Cold { .. }));

    // After a restart, a cold version comes back from S3.
    drop(stale);
    let Ok(store) = Arc::try_unwrap(store) else { panic!("the store is still shared") };
    drop(store);
    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    let _stale = StaleManager::open(Arc::clone(&store)).unwrap();
    assert_eq!(store.get("reports/weekly@2").unwrap(), text(1));
    assert_eq!(tier(&store, "reports/weekly@2"), Tier::Hot);

    // With the server gone, a cold read is a typed error naming the tier; the store serves on.
    drop(server);
    match store.get("reports/weekly@1") {
        Err(symphony_artifacts::ArtifactError::Store(StoreError::Restore { tier: "cold", reason, .. })) => assert!(reason.contains("s3://artifacts/symphony"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("reports/weekly@4").unwrap(), text(3));
}

/// `symphony serve` dropped its kernel, and with it the cold tier and its runtime, from inside
/// tokio's async context, and tokio panics when a runtime is dropped there: the server panicked
/// on every shutdown after the artifact store had been opened.
#[test]
fn a_stale_manager_with_its_cold_tier_drops_inside_an_async_context() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    let stale = StaleManager::open(Arc::clone(&store)).unwrap();
    let cold = symphony_stale::tiers::Cold::open(dir.path().join("cold").to_str().unwrap(), &[]).unwrap();
    let server = tokio::runtime::Builder::new_current_thread().build().unwrap();
    server.block_on(async move {
        drop(cold);
        drop(stale);
    });
    // The store still works after its manager is gone.
    store.put("reports/x", b"x", Meta::default()).unwrap();
}
