//! `cargo xtask bench stale`: planning a sweep of 1M version records against the issue's 1 s
//! limit, and a real sweep (hot → warm, packs written and synced, store collected) of 10k
//! versions, both measured in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;
use symphony_artifacts::{ArtifactStore, Meta};
use symphony_stale::policy::{plan, Item, Level, Policy};
use symphony_stale::{Config, StaleManager};

fn report(name: &str, value: String, against: &str, other: String, ratio: f64) {
    println!("{name:<48} {value:>12}   {against:<34} {other:>12}   ratio {ratio:>7.2}x");
}

const POLICY: &str = r#"
[[rule]]
match = "runs/*/logs/*"
keep_latest = 2
warm_after = "7d"
cold_after = "30d"
delete_after = "90d"
[[rule]]
match = "*"
keep_latest = 1
warm_after = "14d"
cold_after = "60d"
"#;

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "stale sweep artifacts".contains(f.as_str())) {
        return;
    }
    println!("== stale manager ==");
    let policy = Policy::from_toml(POLICY, "bench").unwrap();
    let now = 400 * 86_400;
    // 1M versions: 100k names × 10 versions, ages spread over a year, a few pinned, some used.
    let items: Vec<Item> = (0..1_000_000u64)
        .map(|i| {
            let name = if i % 3 == 0 { format!("runs/{}/logs/{}", i % 977, i / 10) } else { format!("docs/{}", i / 10) };
            Item {
                name,
                version: i % 10 + 1,
                blob: format!("{:064x}", i * 2_654_435_761 % 900_007),
                len: 4096 + i % 50_000,
                created: (i * 7919) % now,
                last_access: (i % 5 == 0).then(|| (i * 104_729) % now),
                level: Level::Hot,
                quality: (i % 4 != 0).then(|| (i % 100) as f64 / 100.0),
                uses: (i % 17 == 0) as u32 * 3,
                pinned: i % 1000 == 0,
                rank: 9 - i % 10,
            }
        })
        .collect();
    let t = Instant::now();
    let planned = plan(&items, &policy, now);
    let took = t.elapsed();
    println!("planned: {} moves, {} deletes, {} kept by the policy", planned.moves.len(), planned.deletes.len(), planned.protected);
    report("plan a sweep of 1M version records", format!("{:.0} ms", took.as_secs_f64() * 1e3), "limit 1 s", "1000 ms".to_owned(), 1.0 / took.as_secs_f64());

    // A real sweep: 10k versions of 1,000 names (4 KiB each) moved hot → warm.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in (w..10_000).step_by(8) {
                    let text = format!("log line {i}\n").repeat(300);
                    store.put(&format!("runs/{}/logs/{}", i % 10, i % 1000), text.as_bytes(), Meta::default()).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Let the search index catch up with the puts first: the figure is the sweep, not the
    // sweep sharing 2 cores with indexing 10k versions that were put a moment ago.
    store.commit_index().unwrap();
    let config = Config::parse(POLICY, &dir.path().join("store"), "bench").unwrap();
    let stale = StaleManager::with_config(Arc::clone(&store), config).unwrap();
    let future = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 8 * 86_400;
    let t = Instant::now();
    let dry = stale.sweep(true, Some(future), &mut |_, _, _| {}).unwrap();
    let dry_took = t.elapsed();
    let t = Instant::now();
    let done = stale.sweep(false, Some(future), &mut |_, _, _| {}).unwrap();
    let took = t.elapsed();
    println!("dry run: {} moves planned over {} versions in {:.0} ms", dry.plan.moves.len(), dry.plan.versions, dry_took.as_secs_f64() * 1e3);
    report(
        &format!("sweep {} versions: {} blobs → warm, collected", done.plan.versions, done.moved_warm),
        format!("{:.0} ms", took.as_secs_f64() * 1e3),
        "limit 1 s",
        "1000 ms".to_owned(),
        1.0 / took.as_secs_f64(),
    );
    let t = Instant::now();
    let bytes = store.get("runs/0/logs/0@1").unwrap();
    report("first read of a warm version (restored to hot)", format!("{:.0} µs", t.elapsed().as_secs_f64() * 1e6), "a hot get", "20 µs".to_owned(), 20e-6 / t.elapsed().as_secs_f64());
    assert!(!bytes.is_empty());
    println!();
}
