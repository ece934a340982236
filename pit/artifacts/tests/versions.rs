//! Version numbering and bulk puts: `put_many` stores what `put` one by one would, numbers
//! are never handed out twice, and identical puts make one version however they race.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use symphony_artifacts::{ArtifactError, ArtifactStore, Meta, NewVersion, Version};

/// Some files: sources, duplicates under other names, an empty one, and names that come
/// back (an edit, and the same bytes again).
fn files() -> Vec<(String, Vec<u8>, Meta)> {
    let mut out = Vec::new();
    for i in 0..300 {
        let body = format!("//! Module {i}.\npub fn f{i}() -> u32 {{\n    {i}\n}}\n").repeat(1 + i % 40);
        out.push((format!("src/m{i}.rs"), body.into_bytes(), Meta { kind: "code".to_owned(), ..Meta::default() }));
    }
    for i in 0..20 {
        out.push((format!("licences/{i}/LICENSE"), b"Permission is hereby granted, free of charge...\n".repeat(30), Meta::default()));
    }
    out.push(("empty.txt".to_owned(), Vec::new(), Meta::default()));
    out.push(("src/m7.rs".to_owned(), b"pub fn edited() {}\n".to_vec(), Meta { kind: "code".to_owned(), ..Meta::default() }));
    out.push(("src/m7.rs".to_owned(), b"pub fn edited() {}\n".to_vec(), Meta { kind: "code".to_owned(), ..Meta::default() }));
    out.push(("src/m8.rs".to_owned(), b"pub fn edited() {}\n".to_vec(), Meta { kind: "code".to_owned(), tags: vec!["v2".to_owned()], ..Meta::default() }));
    out
}

/// A version without its timestamp (two stores cannot agree on that).
fn shape(v: &Version) -> (String, u64, String, u64, Option<u64>, Option<f64>, Meta) {
    (v.name.clone(), v.version, v.blob.0.clone(), v.len, v.parent, v.quality.as_ref().map(|q| q.score), v.meta.clone())
}

#[test]
fn put_many_stores_what_puts_one_by_one_would() {
    let files = files();
    let one = tempfile::tempdir().unwrap();
    let many = tempfile::tempdir().unwrap();
    let by_one = ArtifactStore::open(one.path(), 3).unwrap();
    let expected: Vec<_> = files.iter().map(|(n, b, m)| shape(&by_one.put(n, b, m.clone()).unwrap())).collect();

    let store = ArtifactStore::open(many.path(), 3).unwrap();
    let items: Vec<NewVersion<'_>> = files.iter().map(|(name, bytes, meta)| NewVersion { name, bytes, meta: meta.clone() }).collect();
    let stored = store.put_many(&items).unwrap();
    let got: Vec<_> = stored.iter().map(|s| shape(&s.version)).collect();
    assert_eq!(got, expected);
    // Each says whether it made its version: all but the same bytes put again.
    let made_none: Vec<(&str, u64)> = stored.iter().filter(|s| !s.new).map(|s| (s.version.name.as_str(), s.version.version)).collect();
    assert_eq!(made_none, [("src/m7.rs", 2)]);
    assert_eq!(store.log("src/m7.rs").unwrap().len(), 2, "the same bytes twice make one new version");
    drop(store);
    // Twenty identical licences in one batch: their chunk is written once.
    let licence = blake3::hash(&files[300].1);
    let pack = std::fs::read(many.path().join("packs/00000001.pack")).unwrap();
    let (mut at, mut copies) = (0, 0);
    while at + 57 <= pack.len() && pack[at] != 0 {
        copies += usize::from(pack[at + 4] == 1 && pack[at + 5..at + 37] == *licence.as_bytes());
        at += 57 + u32::from_le_bytes(pack[at + 37..at + 41].try_into().unwrap()) as usize;
    }
    assert_eq!(copies, 1);

    let store = ArtifactStore::open(many.path(), 3).unwrap();
    for (name, bytes, _) in &files[..files.len() - 3] {
        if name != "src/m7.rs" && name != "src/m8.rs" {
            assert_eq!(&store.get(name).unwrap(), bytes, "{name}");
        }
    }
    assert_eq!(store.get("src/m7.rs").unwrap(), b"pub fn edited() {}\n");
    // The versions come back from the journal (a bulk write keeps them in one group record)
    // as `put` made them.
    for (name, _, _) in &files {
        let history = |s: &ArtifactStore| s.log(name).unwrap().iter().map(shape).collect::<Vec<_>>();
        assert_eq!(history(&store), history(&by_one), "{name}");
    }
    assert!(store.blobs().verify().unwrap().is_empty());
}

/// Packs a bulk write made are rewritten by gc into their form at rest (records regrouped,
/// chunks recompressed harder): smaller, and everything reads the same after a reopen.
#[test]
fn gc_keeps_a_bulk_write_smaller_and_the_same() {
    let files = files();
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 1).unwrap();
    let items: Vec<NewVersion<'_>> = files.iter().map(|(name, bytes, meta)| NewVersion { name, bytes, meta: meta.clone() }).collect();
    store.put_many(&items).unwrap();
    let logs = |s: &ArtifactStore| s.names().unwrap().iter().map(|n| (n.clone(), s.log(n).unwrap().iter().map(shape).collect::<Vec<_>>(), s.get(n).unwrap())).collect::<Vec<_>>();
    let before = logs(&store);
    let packs = |d: &std::path::Path| std::fs::read_dir(d.join("packs")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum::<u64>();
    let as_put = packs(dir.path());
    store.gc().unwrap();
    drop(store);
    let at_rest = packs(dir.path());
    assert!(at_rest < as_put, "{at_rest} bytes after gc, {as_put} as put");
    let store = ArtifactStore::open(dir.path(), 1).unwrap();
    assert_eq!(logs(&store), before);
    assert!(store.blobs().verify().unwrap().is_empty());
}

#[test]
fn put_many_with_a_bad_name_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let items = [NewVersion { name: "good.txt", bytes: b"fine", meta: Meta::default() }, NewVersion { name: "../escape", bytes: b"no", meta: Meta::default() }];
    assert!(matches!(store.put_many(&items), Err(ArtifactError::BadName(n)) if n == "../escape"));
    assert!(store.names().unwrap().is_empty());
}

#[test]
fn deleting_the_latest_version_does_not_reuse_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    store.put("notes.md", b"one", Meta::default()).unwrap();
    store.put("notes.md", b"two", Meta::default()).unwrap();
    store.delete("notes.md", 2).unwrap();
    drop(store);
    // After a restart only the tombstone remembers version 2: the next put is version 3, and
    // it is there (a reused number would be taken for the deleted version and vanish).
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let three = store.put("notes.md", b"three", Meta::default()).unwrap();
    assert_eq!((three.version, three.parent), (3, Some(2)));
    assert_eq!(store.get("notes.md").unwrap(), b"three");
    drop(store);
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let versions: Vec<u64> = store.log("notes.md").unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 3]);
}

#[test]
fn identical_puts_racing_make_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(ArtifactStore::open(dir.path(), 3).unwrap());
    store.put("config.toml", b"a = 0\n", Meta::default()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || store.put_with("config.toml", b"a = 1\n", Meta::default(), &mut |_, _| {}).unwrap())
        })
        .collect();
    let stored: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(stored.iter().all(|s| s.version.version == 2), "{stored:?}");
    // Exactly one of them made it; the others say they found it.
    assert_eq!(stored.iter().filter(|s| s.new).count(), 1, "{stored:?}");
    assert_eq!(store.log("config.toml").unwrap().len(), 2);
}

#[test]
fn names_are_relative_ascii_paths_without_dot_parts() {
    let long = "a".repeat(200);
    for ok in ["a", "src/lib.rs", "a-b_c.d/e.tar.gz", ".hidden", "a/..b/c.", long.as_str()] {
        assert!(symphony_artifacts::valid_name(ok), "{ok}");
    }
    let too_long = "a".repeat(201);
    for bad in ["", "/etc/passwd", "a//b", "a/./b", "../x", "a/..", "x/", ".", "é.txt", "a b", "a\\b", too_long.as_str()] {
        assert!(!symphony_artifacts::valid_name(bad), "{bad}");
    }
}

#[test]
fn a_large_put_reports_its_progress_up_to_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    // 40 MB that does not repeat: many chunks, several groups of them.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..40 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let mut heard = Vec::new();
    let stored = store.put_with("data/weights.bin", &bytes, Meta::default(), &mut |done, total| heard.push((done, total))).unwrap();
    assert_eq!((stored.version.version, stored.version.len, stored.new), (1, bytes.len() as u64, true));
    assert!(heard.len() > 2, "more than a start and an end: {heard:?}");
    assert!(heard.iter().all(|&(_, total)| total == bytes.len() as u64), "{heard:?}");
    assert!(heard.windows(2).all(|w| w[0].0 < w[1].0), "it only grows: {heard:?}");
    assert_eq!(heard.last().map(|&(done, _)| done), Some(bytes.len() as u64));
    assert_eq!(store.get("data/weights.bin").unwrap(), bytes);
    // A bad name is refused before any work.
    let mut called = false;
    assert!(matches!(store.put_with("../x", &bytes, Meta::default(), &mut |_, _| called = true), Err(ArtifactError::BadName(_))));
    assert!(!called);
}
