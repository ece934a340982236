//! `cargo xtask bench artifacts`: the first layers of the artifact store against the issue's
//! limits, measured in the same run: a durable 4 KiB put (p50, one writer), puts/s from 16
//! writers, cached get, and ingest throughput of a real source tree (this checkout's `kernel/`
//! and `extensions/` sources, repeated) — with one fsync timed alone as the floor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use symphony_artifacts::{ArtifactStore, Meta};

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn report(name: &str, value: String, against: &str, other: String, ratio: f64) {
    println!("{name:<48} {value:>12}   {against:<34} {other:>12}   ratio {ratio:>7.2}x");
}

fn sources(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") && !path.ends_with("build") {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml" || e == "wit" || e == "md") {
            out.push(std::fs::read(&path).unwrap());
        }
    }
}

/// Up to `n` real text files (≤ 64 KiB) from the cargo registry's unpacked crate sources.
fn registry_texts(n: usize) -> Vec<(String, String)> {
    let home = std::env::var_os("CARGO_HOME").map_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"), std::path::PathBuf::from);
    let mut out = Vec::new();
    let mut stack = vec![home.join("registry").join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if out.len() >= n {
                return out;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.metadata().is_ok_and(|m| m.len() <= 64 << 10)
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.push((path.to_string_lossy().into_owned(), text));
            }
        }
    }
    out
}

/// Search at 100k artifacts: the tantivy index alone, filled with real files, then queried
/// with words taken from them; and how long a put takes to become searchable.
fn search_bench() {
    use symphony_artifacts::SearchIndex;
    println!("== artifact search (tantivy) ==");
    // The registry has fewer small text files than 100k here: they are indexed again under
    // other names until there are 100k artifacts.
    let files = registry_texts(100_000);
    let docs: Vec<(String, &String)> = (0..100_000).map(|i| (format!("copy{}/{}", i / files.len(), files[i % files.len()].0), &files[i % files.len()].1)).collect();
    let bytes: usize = docs.iter().map(|(_, t)| t.len()).sum();
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = SearchIndex::open(&dir.path().join("index")).unwrap();
    let t0 = Instant::now();
    for (i, (name, text)) in docs.iter().enumerate() {
        let kind = if name.ends_with(".rs") { "code" } else { "text" };
        index.put(name, 1, kind, &[], Some(0.5), Some(text)).unwrap();
        if i % 20_000 == 19_999 {
            index.commit().unwrap();
        }
    }
    index.commit().unwrap();
    let took = t0.elapsed();
    println!("indexed {} artifacts ({} distinct real files, {:.0} MB) in {:.1} s: {:.1} MB/s", docs.len(), files.len(), bytes as f64 / 1e6, took.as_secs_f64(), bytes as f64 / 1e6 / took.as_secs_f64());
    // Queries: single words and two-word conjunctions drawn from the corpus.
    let words: Vec<String> = docs
        .iter()
        .step_by(97)
        .flat_map(|(_, t)| t.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| w.len() >= 5).take(2).map(str::to_lowercase).collect::<Vec<_>>())
        .collect();
    let mut times = Vec::new();
    for i in 0..1000 {
        let q = if i % 2 == 0 { words[i % words.len()].clone() } else { format!("{} AND {}", words[i % words.len()], words[(i * 7 + 3) % words.len()]) };
        let t = Instant::now();
        let _ = index.search(&q, 10).unwrap();
        times.push(t.elapsed());
    }
    let (p50, p99) = (percentile(&mut times.clone(), 0.5), percentile(&mut times, 0.99));
    report(&format!("search at {}k artifacts, top 10 + snippets, p50", docs.len() / 1000), us(p50), "limit (for p99) 10 ms", us(Duration::from_millis(10)), 10e-3 / p50.as_secs_f64());
    report(&format!("search at {}k artifacts, p99", docs.len() / 1000), us(p99), "limit 10 ms", us(Duration::from_millis(10)), 10e-3 / p99.as_secs_f64());
    // Near-real-time: put, then poll until it is found (no explicit commit).
    let mut visible = Vec::new();
    for i in 0..20 {
        let word = format!("nrtprobe{i}x");
        let t = Instant::now();
        index.put(&format!("probe/{i}"), 1, "text", &[], None, Some(&word)).unwrap();
        while index.search(&word, 1).unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        visible.push(t.elapsed());
    }
    let nrt = percentile(&mut visible, 0.99);
    report("put → searchable (no explicit commit), p99 of 20", us(nrt), "limit 200 ms", us(Duration::from_millis(200)), 0.2 / nrt.as_secs_f64());
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if filter.is_empty() || filter.iter().any(|f| "artifacts search".contains(f.as_str())) {
        search_bench();
    }
    if !filter.is_empty() && !filter.iter().any(|f| "artifacts store blob".contains(f.as_str())) {
        return;
    }
    println!("== artifact store (blobs + named versions) ==");
    let dir = tempfile::tempdir().unwrap();
    // The floor: one 4 KiB write + fsync on this disk.
    let mut fsyncs = Vec::new();
    for i in 0..200 {
        let t0 = Instant::now();
        let mut f = std::fs::File::create(dir.path().join(format!("probe-{i}"))).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        f.sync_all().unwrap();
        fsyncs.push(t0.elapsed());
    }
    let fsync = percentile(&mut fsyncs, 0.5);

    let store = Arc::new(ArtifactStore::open(dir.path().join("store"), 3).unwrap());
    let mut puts = Vec::new();
    for i in 0..500u32 {
        let mut bytes = vec![0u8; 4096];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        let t0 = Instant::now();
        store.put(&format!("small/{i}"), &bytes, Meta::default()).unwrap();
        puts.push(t0.elapsed());
    }
    let put = percentile(&mut puts, 0.5);
    report("durable 4 KiB put, one writer, p50", us(put), "limit 250 µs", us(Duration::from_micros(250)), 250e-6 / put.as_secs_f64());
    report("the same", us(put), "one 4 KiB write + fsync alone", us(fsync), fsync.as_secs_f64() / put.as_secs_f64());

    let t0 = Instant::now();
    let writers: Vec<_> = (0..16u32)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..100u32 {
                    let mut bytes = vec![1u8; 4096];
                    bytes[..8].copy_from_slice(&[w.to_le_bytes(), i.to_le_bytes()].concat());
                    store.put(&format!("w{w}/{i}"), &bytes, Meta::default()).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let rate = 1600.0 / t0.elapsed().as_secs_f64();
    report("4 KiB puts/s, 16 writers", format!("{rate:.0}/s"), "limit 20,000/s", "20000/s".to_owned(), rate / 20_000.0);

    let mut gets = Vec::new();
    for i in 0..500u32 {
        let t0 = Instant::now();
        std::hint::black_box(store.get(&format!("small/{i}")).unwrap());
        gets.push(t0.elapsed());
    }
    let get = percentile(&mut gets, 0.5);
    report("get 4 KiB by name (OS cache warm), p50", us(get), "limit 20 µs", us(Duration::from_micros(20)), 20e-6 / get.as_secs_f64());

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for d in ["kernel", "extensions", "host-ui/src", "pit", "sdk", "conductor"] {
        sources(&root.join(d), &mut files);
    }
    let tree: Vec<u8> = files.concat();
    let rounds = (200 << 20) / tree.len().max(1) + 1;
    let t0 = Instant::now();
    let mut ingested = 0usize;
    for r in 0..rounds {
        // Each round a different blob (a header line), so nothing is skipped as already stored.
        let mut blob = format!("round {r}\n").into_bytes();
        blob.extend_from_slice(&tree);
        ingested += blob.len();
        store.put(&format!("tree/{r}"), &blob, Meta::default()).unwrap();
    }
    let mbps = ingested as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64();
    report(
        &format!("ingest {} MiB of this checkout's sources", ingested >> 20),
        format!("{mbps:.0} MB/s"),
        "limit 300 MB/s",
        "300 MB/s".to_owned(),
        mbps / 300.0,
    );
    println!();
}
