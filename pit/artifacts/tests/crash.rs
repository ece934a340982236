//! Garbage collection, and `kill -9` in the middle of puts and of collections: every version
//! a put had confirmed is still there, whole and verified, and nothing corrupt is left behind.
//! The writer is this test binary run again as a child (`CHILD_STORE` set), so it is a real
//! process killed for real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use symphony_artifacts::{ArtifactStore, BlobId, Meta};

/// Distinct, partly shared content: versions share chunks, so collection has real choices.
fn content(name: usize, version: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(300_000);
    let mut x = (name as u64 + 1) * 0x9E37_79B9;
    for i in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // The last 4 KiB differ per version; the rest per name.
        bytes.push(if i > 296_000 { (version as u8).wrapping_mul(31) ^ (x as u8) } else { x as u8 });
    }
    bytes
}

/// The child: puts (and with `CHILD_GC`, collects) until killed, printing each confirmed version.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("CHILD_STORE") else { return };
    let store = ArtifactStore::open(&dir, 1).unwrap();
    let gc = std::env::var_os("CHILD_GC").is_some();
    for round in 0.. {
        for name in 0..4 {
            let v = store.put(&format!("item/{name}"), &content(name, round), Meta::default()).unwrap();
            println!("stored item/{name}@{} {}", v.version, v.blob);
            // Garbage for the collector: a blob no version points at.
            store.blobs().put(&content(name + 100, round)).unwrap();
        }
        // A text version each round: the index must catch up on it after a kill.
        let v = store.put("note", format!("the note of round{round}x").as_bytes(), Meta::default()).unwrap();
        println!("stored note@{} {}", v.version, v.blob);
        if gc {
            let report = store.gc().unwrap();
            println!("collected {}", report.blobs_removed);
        }
    }
}

fn run_and_kill(dir: &std::path::Path, gc: bool, confirmed: usize) -> Vec<(String, String)> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_writer", "--nocapture", "--test-threads=1"]).env("CHILD_STORE", dir).stdout(Stdio::piped()).stderr(Stdio::null());
    if gc {
        cmd.env("CHILD_GC", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut seen = Vec::new();
    let mut collections = 0;
    let started = Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("stored ") {
            let (spec, blob) = rest.split_once(' ').unwrap();
            seen.push((spec.to_owned(), blob.to_owned()));
        }
        if line.starts_with("collected") {
            collections += 1;
        }
        // Kill at a moment that varies with timing: mid-put, or mid-collection.
        if seen.len() >= confirmed && (!gc || collections >= 2) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the child is too slow");
    }
    // SIGKILL: no destructor, no flush, no commit runs.
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

fn check_nothing_lost(dir: &std::path::Path, confirmed: &[(String, String)]) {
    let store = ArtifactStore::open(dir, 1).unwrap();
    for (spec, blob) in confirmed {
        let v = store.resolve(spec).unwrap_or_else(|e| panic!("{spec} was confirmed, now: {e}"));
        assert_eq!(&v.blob.0, blob, "{spec}");
        store.get(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
    let problems = store.blobs().verify().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // The index is derived: it catches up on what the journal holds past its last commit
    // (the kill came well within the commit interval of the last puts), and finds the latest.
    store.commit_index().unwrap();
    assert_eq!(store.indexed(), store.names().unwrap().len() as u64);
    if store.names().unwrap().contains(&"note".to_owned()) {
        let latest = store.resolve("note").unwrap();
        let text = String::from_utf8(store.get("note").unwrap()).unwrap();
        let word = text.rsplit(' ').next().unwrap();
        let hits = store.search(word, 5).unwrap();
        assert_eq!(hits.iter().map(|h| (h.name.as_str(), h.version)).collect::<Vec<_>>(), [("note", latest.version)], "{word}");
    }
}

#[test]
fn kill_9_during_puts_loses_no_confirmed_version() {
    let dir = tempfile::tempdir().unwrap();
    for round in 1..=3 {
        let confirmed = run_and_kill(dir.path(), false, 5 * round);
        check_nothing_lost(dir.path(), &confirmed);
    }
}

#[test]
fn kill_9_during_collection_loses_nothing_and_a_later_collection_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let confirmed = run_and_kill(dir.path(), true, 9);
    check_nothing_lost(dir.path(), &confirmed);
    let store = ArtifactStore::open(dir.path(), 1).unwrap();
    let report = store.gc().unwrap();
    let again = store.gc().unwrap();
    assert_eq!((again.blobs_removed, again.chunks_removed, again.temp_files_removed), (0, 0, 0), "after {report:?}");
    drop(store);
    check_nothing_lost(dir.path(), &confirmed);
}

#[test]
fn gc_removes_only_what_no_version_points_at() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 1).unwrap();
    let a1 = store.put("a", &content(0, 1), Meta::default()).unwrap();
    let a2 = store.put("a", &content(0, 2), Meta::default()).unwrap();
    let orphan = store.blobs().put(&content(7, 7)).unwrap();
    std::fs::write(dir.path().join("packs").join(".tmp-0-0"), b"half a warm pack").unwrap();
    let report = store.gc().unwrap();
    assert_eq!((report.blobs_removed, report.temp_files_removed, report.blobs_kept), (1, 1, 2), "{report:?}");
    assert!(report.chunks_removed >= 1 && report.bytes_freed > 0, "{report:?}");
    assert!(!store.blobs().contains(&orphan.id));
    // Both versions share most chunks and keep all of theirs.
    assert_eq!(store.get("a@1").unwrap(), content(0, 1));
    assert_eq!(store.get("a@2").unwrap(), content(0, 2));
    assert!(store.blobs().verify().unwrap().is_empty());
    let ids: HashSet<BlobId> = store.blobs().ids().unwrap().into_iter().collect();
    assert_eq!(ids, [a1.blob, a2.blob].into_iter().collect());
    assert_eq!(store.gc().unwrap().chunks_removed, 0);
}
