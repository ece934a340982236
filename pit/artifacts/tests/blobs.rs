//! The blob layer against a real directory: round trips (empty, small, large), dedup across
//! near-identical versions, and corruption found on read and by `verify`, never returned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use symphony_artifacts::{BlobId, BlobStore, StoreError};

/// Deterministic incompressible-ish bytes (xorshift), so chunking sees real variety.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn round_trips_empty_small_and_large_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), 3).unwrap();
    let large = noise(100 << 20, 7);
    for bytes in [Vec::new(), b"hello, symphony".to_vec(), large] {
        let put = store.put(&bytes).unwrap();
        assert_eq!(put.id.0, blake3::hash(&bytes).to_hex().as_str());
        assert!(store.contains(&put.id));
        assert_eq!(store.get(&put.id).unwrap(), bytes, "{} bytes", bytes.len());
    }
    // A store reopened reads the same.
    let again = BlobStore::open(dir.path(), 3).unwrap();
    assert_eq!(again.get(&BlobId(blake3::hash(b"hello, symphony").to_hex().to_string())).unwrap(), b"hello, symphony");
    assert!(matches!(again.get(&BlobId("0".repeat(64))), Err(StoreError::NotFound(_))));
    assert!(matches!(again.get(&BlobId("not hex".to_owned())), Err(StoreError::BadId(_))));
}

#[test]
fn near_identical_versions_share_most_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), 3).unwrap();
    let v1 = noise(8 << 20, 42);
    let first = store.put(&v1).unwrap();
    assert_eq!(first.reused, 0);
    // v2: twelve bytes inserted in the middle — content-defined chunks realign after it.
    let mut v2 = v1.clone();
    v2.splice(4 << 20..4 << 20, *b"inserted....");
    let second = store.put(&v2).unwrap();
    assert!(second.reused * 10 >= second.chunks * 9, "only {} of {} chunks reused", second.reused, second.chunks);
    assert!(second.written * 10 < first.written, "wrote {} bytes for a 12-byte edit (first version: {})", second.written, first.written);
    assert_eq!(store.get(&second.id).unwrap(), v2);
    assert_eq!(store.get(&first.id).unwrap(), v1);
    // The same content again writes nothing.
    assert_eq!(store.put(&v1).unwrap().written, 0);
}

/// The records of a pack: (offset, kind, key, payload length). The layout is the documented
/// one: magic, kind, key, length, check, payload; while the store is open, the pack being
/// appended to may go on in zeros.
fn records(pack: &[u8]) -> Vec<(usize, u8, [u8; 32], usize)> {
    const HEADER: usize = 57;
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= pack.len() && pack[at] != 0 {
        assert_eq!(&pack[at..at + 4], b"SyR1", "a record at {at}");
        let len = u32::from_le_bytes(pack[at + 37..at + 41].try_into().unwrap()) as usize;
        out.push((at, pack[at + 4], pack[at + 5..at + 37].try_into().unwrap(), len));
        at += HEADER + len;
    }
    out
}

#[test]
fn a_flipped_byte_is_reported_with_its_chunk_and_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), 3).unwrap();
    let bytes = noise(1 << 20, 9);
    let put = store.put(&bytes).unwrap();
    let other = store.put(b"an unrelated blob").unwrap();
    assert!(store.verify().unwrap().is_empty());

    // Flip one byte in the middle of the blob's first chunk.
    let pack = dir.path().join("packs/00000001.pack");
    let mut data = std::fs::read(&pack).unwrap();
    let (offset, kind, key, len) = records(&data)[0];
    assert_eq!(kind, 1, "the first record is a chunk");
    data[offset + 57 + len / 2] ^= 0x40;
    std::fs::write(&pack, &data).unwrap();
    let name = blake3::Hash::from_bytes(key).to_hex().to_string();
    match store.get(&put.id) {
        Err(StoreError::Corrupt { what: "chunk", hash, path, reason }) => {
            assert_eq!(hash, name);
            assert_eq!(path, pack);
            assert!(reason.contains(&format!("byte {offset}")), "{reason}");
        }
        other => panic!("a corrupt chunk was not reported: {other:?}"),
    }
    let problems = store.verify().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].to_string().contains(&name));
    // Nothing else is harmed.
    assert_eq!(store.get(&other.id).unwrap(), b"an unrelated blob");

    // A damaged recipe (not the last record, so not taken for a torn write) is reported as
    // such after a restart, and the rest of the store still opens and reads.
    drop(store);
    let (offset, _, _, len) = records(&data).into_iter().find(|r| r.1 == 2 && blake3::Hash::from_bytes(r.2).to_hex().as_str() == put.id.0).unwrap();
    data[offset + 57 + len - 1] ^= 0x01;
    std::fs::write(&pack, &data).unwrap();
    let store = BlobStore::open(dir.path(), 3).unwrap();
    assert!(matches!(store.get(&put.id), Err(StoreError::Corrupt { what: "recipe of blob", .. })), "{:?}", store.get(&put.id).map(|b| b.len()));
    assert_eq!(store.get(&other.id).unwrap(), b"an unrelated blob");
    assert!(store.verify().unwrap().iter().any(|p| matches!(p, StoreError::Corrupt { what: "recipe of blob", .. })));
}

#[test]
fn concurrent_writers_share_syncs_and_number_versions_in_order() {
    use std::sync::Arc;
    use symphony_artifacts::{ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ArtifactStore::open(dir.path(), 3).unwrap());
    let threads: Vec<_> = (0..16u32)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..40u32 {
                    store.put("shared", format!("{t}/{i}").as_bytes(), Meta::default()).unwrap();
                    store.put(&format!("own/{t}"), &noise(5000, u64::from(t * 100 + i + 1)), Meta::default()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let check = |store: &ArtifactStore| {
        let log = store.log("shared").unwrap();
        assert_eq!(log.len(), 640);
        for (i, v) in log.iter().enumerate() {
            assert_eq!((v.version, v.parent), (i as u64 + 1, (i > 0).then_some(i as u64)), "versions are 1..=640, each the parent of the next");
        }
        let contents: std::collections::HashSet<Vec<u8>> = (1..=640).map(|n| store.get(&format!("shared@{n}")).unwrap()).collect();
        assert_eq!(contents.len(), 640, "every put kept its own bytes");
        for t in 0..16u32 {
            assert_eq!(store.get(&format!("own/{t}")).unwrap(), noise(5000, u64::from(t * 100 + 40)));
        }
    };
    check(&store);
    drop(store);
    let again = ArtifactStore::open(dir.path(), 3).unwrap();
    check(&again);
    assert!(again.blobs().verify().unwrap().is_empty());
}

#[test]
fn named_versions_chain_to_their_parents_and_one_writer_holds_the_store() {
    use symphony_artifacts::{ArtifactError, ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let meta = |author: &str| Meta { kind: "text".to_owned(), author: author.to_owned(), ..Meta::default() };
    let v1 = store.put("reports/todo.md", b"# TODO\n- one\n", meta("text-tools")).unwrap();
    let v2 = store
        .put("reports/todo.md", b"# TODO\n- one\n- two\n", Meta { derived_from: vec!["reports/todo.md@1".to_owned()], ..meta("conductor") })
        .unwrap();
    assert_eq!((v1.version, v1.parent, v2.version, v2.parent), (1, None, 2, Some(1)));
    // The same bytes and metadata again: the latest version is the answer, not a third one.
    let same = store.put("reports/todo.md", b"# TODO\n- one\n- two\n", v2.meta.clone()).unwrap();
    assert_eq!(same, v2);
    let other_meta = store.put("reports/todo.md", b"# TODO\n- one\n- two\n", meta("text-tools")).unwrap();
    assert_eq!((other_meta.version, other_meta.blob), (3, v2.blob.clone()), "new metadata is a new version of the same blob");
    assert_eq!(store.get("reports/todo.md").unwrap(), b"# TODO\n- one\n- two\n");
    assert_eq!(store.get("reports/todo.md@1").unwrap(), b"# TODO\n- one\n");
    assert_eq!(store.get(&v1.blob.0).unwrap(), b"# TODO\n- one\n", "by hash");
    assert!(matches!(store.get("reports/todo.md@9"), Err(ArtifactError::NoVersion { latest: 3, .. })));
    assert!(matches!(store.get("nothing"), Err(ArtifactError::NotFound(_))));
    for bad in ["../escape", "/abs", "a//b", "sp ace"] {
        assert!(matches!(store.put(bad, b"x", Meta::default()), Err(ArtifactError::BadName(_))), "{bad}");
    }
    let log = store.log("reports/todo.md").unwrap();
    assert_eq!((log.len(), log[1].meta.derived_from.as_slice()), (3, ["reports/todo.md@1".to_owned()].as_slice()));

    // A crash mid-append leaves a torn tail: after the restart it is kept aside and cut off,
    // the history still reads, and the next version follows the last whole one.
    drop(store);
    let pack = dir.path().join("packs/00000001.pack");
    let whole = std::fs::read(&pack).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(b"SyR1\x03half a record");
    std::fs::write(&pack, &torn).unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(store.log("reports/todo.md").unwrap().len(), 3);
    assert_eq!(std::fs::read(&pack).unwrap(), whole, "the torn tail was cut off");
    assert_eq!(std::fs::read(dir.path().join(format!("packs/00000001.torn-{}", whole.len()))).unwrap(), b"SyR1\x03half a record", "and kept aside");
    let v3 = store.put("reports/todo.md", b"three", Meta::default()).unwrap();
    assert_eq!((v3.version, v3.parent), (4, Some(3)), "the version after a torn tail");
    assert_eq!(store.get("reports/todo.md@4").unwrap(), b"three");
    drop(store);
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(store.get("reports/todo.md@4").unwrap(), b"three", "written after the cut, found after a restart");

    // A second writer (another process, or here another handle) is refused while this one lives.
    match ArtifactStore::open(dir.path(), 3) {
        Err(ArtifactError::Locked { .. }) => {}
        other => panic!("a second writer was let in: {other:?}"),
    }
    drop(store);
    assert!(ArtifactStore::open(dir.path(), 3).is_ok(), "the lock outlived its store");
}

/// The pack being appended to goes on in zeros written ahead of its records (so a sync does
/// not also write the inode). After a crash those zeros are not damage, and a record torn
/// inside them (its length written, its payload not) is a torn tail, not a damaged record.
#[test]
fn a_write_torn_inside_the_zeros_written_ahead_is_a_torn_tail() {
    use symphony_artifacts::{ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    store.put("notes/a.md", b"# one\n", Meta::default()).unwrap();
    store.put("notes/a.md", b"# two\n", Meta::default()).unwrap();
    let pack = dir.path().join("packs/00000001.pack");
    let open_len = std::fs::metadata(&pack).unwrap().len();
    drop(store);
    let whole = std::fs::read(&pack).unwrap();
    assert!(open_len > whole.len() as u64, "zeros are written ahead while the store is open");
    assert_ne!(whole.last(), Some(&0), "a closed store keeps no zeros");

    // A crash with nothing torn: the zeros are simply where the next record goes.
    let mut padded = whole.clone();
    padded.resize(whole.len() + (1 << 20), 0);
    std::fs::write(&pack, &padded).unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert!(store.blobs().verify().unwrap().is_empty());
    assert_eq!(store.put("notes/a.md", b"# three\n", Meta::default()).unwrap().version, 3);
    drop(store);
    let three = std::fs::read(&pack).unwrap();
    assert_eq!(&three[..whole.len()], whole.as_slice(), "appended after the last record");

    // The last record (version 3) torn: its second half never reached the disk.
    let (last, _, _, len) = *records(&three).last().unwrap();
    let mut torn = three[..last + 57 + len / 2].to_vec();
    torn.resize(three.len() + (1 << 20), 0);
    std::fs::write(&pack, &torn).unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(store.log("notes/a.md").unwrap().len(), 2, "the torn version is gone");
    assert!(store.blobs().verify().unwrap().is_empty(), "and is not reported as damage");
    assert!(dir.path().join(format!("packs/00000001.torn-{last}")).exists(), "it was kept aside");
    assert_eq!(store.put("notes/a.md", b"# three again\n", Meta::default()).unwrap().version, 3);
    assert_eq!(store.get("notes/a.md").unwrap(), b"# three again\n");
}

#[test]
fn a_store_in_the_first_layout_is_imported_on_open_with_every_version() {
    use symphony_artifacts::{ArtifactStore, Meta};
    // The first layout, written by hand: a zstd file per chunk, a checksummed postcard recipe
    // per blob, a JSON-lines history per name.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let versions = [b"first text\n".to_vec(), noise(300_000, 5)];
    let mut lines = String::new();
    for (i, bytes) in versions.iter().enumerate() {
        let mut chunks = Vec::new();
        for part in bytes.chunks(100_000) {
            let hash = blake3::hash(part);
            let hex = hash.to_hex();
            std::fs::create_dir_all(root.join("chunks").join(&hex[..2])).unwrap();
            std::fs::write(root.join("chunks").join(&hex[..2]).join(format!("{hex}.zst")), zstd::bulk::compress(part, 3).unwrap()).unwrap();
            chunks.push(*hash.as_bytes());
        }
        #[derive(serde::Serialize)]
        struct Recipe {
            len: u64,
            chunks: Vec<[u8; 32]>,
        }
        let encoded = postcard::to_allocvec(&Recipe { len: bytes.len() as u64, chunks }).unwrap();
        let mut framed = blake3::hash(&encoded).as_bytes().to_vec();
        framed.extend_from_slice(&encoded);
        let id = blake3::hash(bytes).to_hex().to_string();
        std::fs::create_dir_all(root.join("blobs")).unwrap();
        std::fs::write(root.join("blobs").join(format!("{id}.recipe")), framed).unwrap();
        let parent = if i == 0 { "null".to_owned() } else { i.to_string() };
        lines.push_str(&format!(
            "{{\"name\":\"notes/old\",\"version\":{},\"blob\":\"{id}\",\"len\":{},\"parent\":{parent},\"created_at\":\"2026-11-20T10:00:00.000Z\",\"meta\":{{\"kind\":\"text\",\"author\":\"user\"}}}}\n",
            i + 1,
            bytes.len()
        ));
    }
    std::fs::create_dir_all(root.join("names")).unwrap();
    std::fs::write(root.join("names/notes%2Fold.jsonl"), lines).unwrap();

    let store = ArtifactStore::open(root, 3).unwrap();
    assert_eq!(store.get("notes/old@1").unwrap(), versions[0]);
    assert_eq!(store.get("notes/old@2").unwrap(), versions[1]);
    let log = store.log("notes/old").unwrap();
    assert_eq!((log.len(), log[1].parent, log[0].meta.author.as_str()), (2, Some(1), "user"));
    assert!(root.join("legacy-imported/names").is_dir() && !root.join("names").exists(), "the old files are moved aside, not deleted");
    let v3 = store.put("notes/old", b"new", Meta::default()).unwrap();
    assert_eq!(v3.version, 3);
    drop(store);
    let store = ArtifactStore::open(root, 3).unwrap();
    assert_eq!(store.log("notes/old").unwrap().len(), 3, "imported once, not again");
    assert!(store.blobs().verify().unwrap().is_empty());
}

#[test]
fn an_edited_small_file_is_stored_as_a_delta_and_keeps_its_base_through_gc() {
    use symphony_artifacts::{ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    // 40 KB of varied text (one chunk), then an edit: a line inserted in the middle.
    let v1: Vec<u8> = (0..800).flat_map(|i| format!("line {i}: {}\n", noise(16, i + 1).iter().map(|b| format!("{b:02x}")).collect::<String>()).into_bytes()).collect();
    let mut v2 = v1.clone();
    v2.splice(20_000..20_000, b"// an edit a person made\n".iter().copied());
    store.put("src/file.txt", &v1, Meta::default()).unwrap();
    let before = store.stats().unwrap().stored_bytes;
    store.put("src/file.txt", &v2, Meta::default()).unwrap();
    let grew = store.stats().unwrap().stored_bytes - before;
    assert!(grew < 2_000, "an edit of a 40 KB file took {grew} bytes (a delta against the parent should be a few hundred)");
    assert_eq!(store.get("src/file.txt@2").unwrap(), v2);

    // The parent goes (a policy deleted it) and the store is collected: the delta's base stays.
    store.delete("src/file.txt", 1).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert_eq!(store.get("src/file.txt@2").unwrap(), v2);
    assert!(store.blobs().verify().unwrap().is_empty());
    drop(store);
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(store.get("src/file.txt").unwrap(), v2);
    assert!(matches!(store.get("src/file.txt@1"), Err(symphony_artifacts::ArtifactError::NoVersion { .. })));
}

#[test]
fn a_damaged_record_in_a_sealed_pack_is_still_found_and_named_on_open() {
    use symphony_artifacts::{ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    // x spans several chunks: without its recipe it cannot be read (a one-chunk blob can).
    let x = store.put("x", &noise(300_000, 1), Meta::default()).unwrap();
    store.put("y", &noise(50_000, 2), Meta::default()).unwrap();
    // Nothing is dead, so each collection only seals the current pack: packs 1, 2 and 3, and
    // pack 1 is opened by its headers, not read whole.
    store.gc().unwrap();
    store.put("z", b"in pack two", Meta::default()).unwrap();
    store.gc().unwrap();
    store.put("w", b"in pack three", Meta::default()).unwrap();
    drop(store);
    for p in ["packs/00000001.pack", "packs/00000002.pack", "packs/00000003.pack"] {
        assert!(dir.path().join(p).exists(), "{p}");
    }
    // Reopened untouched: every version reads.
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(store.get("y").unwrap(), noise(50_000, 2));
    drop(store);

    // x's recipe (not the last record of pack 1) damaged: the open notices and names it.
    let pack = dir.path().join("packs/00000001.pack");
    let mut data = std::fs::read(&pack).unwrap();
    let (offset, _, _, len) = records(&data).into_iter().find(|r| r.1 == 2 && blake3::Hash::from_bytes(r.2).to_hex().as_str() == x.blob.0).unwrap();
    data[offset + 57 + len - 1] ^= 0x01;
    std::fs::write(&pack, &data).unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert!(matches!(store.get("x"), Err(symphony_artifacts::ArtifactError::Store(StoreError::Corrupt { what: "recipe of blob", .. }))), "{:?}", store.get("x").map(|b| b.len()));
    assert_eq!(store.get("y").unwrap(), noise(50_000, 2));
    assert_eq!(store.get("w").unwrap(), b"in pack three");
}

/// Every record kind byte in a pack, in order.
fn kinds(pack: &std::path::Path) -> Vec<u8> {
    records(&std::fs::read(pack).unwrap()).into_iter().map(|(_, kind, _, _)| kind).collect()
}

fn only_pack(dir: &std::path::Path) -> std::path::PathBuf {
    let packs: Vec<_> = std::fs::read_dir(dir.join("packs")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pack")).collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    packs[0].clone()
}

/// A module of some code, different per `i` and `v`.
fn module(i: usize, v: usize) -> Vec<u8> {
    let mut s = format!("//! Module {i}, version {v}.\n\n");
    for f in 0..40 + i % 7 {
        s.push_str(&format!("pub fn step_{f}(x: u64) -> u64 {{\n    // TODO: check {i}\n    x.wrapping_mul({}) + {v}\n}}\n\n", f * 31 + i));
    }
    s.into_bytes()
}

/// `gc` gathers version records and recipes into zstd groups and recompresses chunks at rest:
/// the store shrinks, and every history, byte and search reads the same — before and after a
/// restart, and after a version in a group is deleted and collected.
#[test]
fn gc_groups_records_and_everything_reads_the_same() {
    use symphony_artifacts::{ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let names: Vec<String> = (0..120).map(|i| format!("src/mod_{i}.rs")).collect();
    for v in 0..3 {
        for (i, name) in names.iter().enumerate() {
            store.put(name, &module(i, v), Meta { kind: "code".to_owned(), tags: vec![format!("batch-{v}")], ..Meta::default() }).unwrap();
        }
    }
    let logs = |store: &ArtifactStore| -> Vec<Vec<symphony_artifacts::Version>> { names.iter().map(|n| store.log(n).unwrap()).collect() };
    let before = logs(&store);
    let size_before = store.stats().unwrap().stored_bytes;
    assert!(kinds(&only_pack(dir.path())).iter().filter(|&&k| k == 3).count() == 360, "one version record per put");

    store.gc().unwrap();
    let pack = only_pack(dir.path());
    let kinds_after = kinds(&pack);
    assert!(kinds_after.iter().all(|&k| k == 1 || k == 6), "only chunks and groups are left: {kinds_after:?}");
    assert!(kinds_after.contains(&6));
    let size_after = store.stats().unwrap().stored_bytes;
    assert!(size_after * 4 < size_before * 3, "{size_before} bytes before gc, {size_after} after");
    assert_eq!(logs(&store), before);
    assert!(store.blobs().verify().unwrap().is_empty());
    drop(store);

    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    assert_eq!(logs(&store), before, "the same after a restart");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(store.get(&format!("{name}@2")).unwrap(), module(i, 1));
    }
    store.commit_index().unwrap();
    assert_eq!(store.search("step_30", 500).unwrap().len(), names.len(), "still searchable");

    // A version inside a group deleted: the next gc rewrites the group without it.
    store.delete("src/mod_7.rs", 1).unwrap();
    store.gc().unwrap();
    drop(store);
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let versions: Vec<u64> = store.log("src/mod_7.rs").unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 3]);
    assert_eq!(store.get("src/mod_8.rs@1").unwrap(), module(8, 0));
    assert!(store.blobs().verify().unwrap().is_empty());
}

/// A damaged group is named by `verify` (what, pack, offset); the store still opens and
/// serves what the group did not hold.
#[test]
fn a_damaged_group_is_reported_and_the_store_keeps_serving() {
    use symphony_artifacts::{ArtifactStore, Meta};
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    for i in 0..100 {
        store.put(&format!("src/mod_{i}.rs"), &module(i, 0), Meta::default()).unwrap();
    }
    store.gc().unwrap();
    let blob = store.resolve("src/mod_3.rs").unwrap().blob;
    drop(store);
    let pack = only_pack(dir.path());
    let mut bytes = std::fs::read(&pack).unwrap();
    let (offset, _, _, len) = records(&bytes).into_iter().find(|r| r.1 == 6).unwrap();
    bytes[offset + 57 + len / 2] ^= 0x10;
    std::fs::write(&pack, &bytes).unwrap();

    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let problems = store.blobs().verify().unwrap();
    assert!(
        problems.iter().any(|p| matches!(p, StoreError::Corrupt { what: "group of records", path, reason, .. } if *path == pack && reason.contains(&format!("byte {offset}")))),
        "{problems:?}"
    );
    assert_eq!(store.get(&blob.0).unwrap(), module(3, 0), "blobs read by hash still");
    let v = store.put("src/new.rs", b"fn main() {}\n", Meta::default()).unwrap();
    assert_eq!(store.get("src/new.rs").unwrap(), b"fn main() {}\n");
    assert_eq!(v.version, 1);
}
