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

#[test]
fn a_flipped_byte_is_reported_with_its_chunk_and_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), 3).unwrap();
    let bytes = noise(1 << 20, 9);
    let put = store.put(&bytes).unwrap();
    let other = store.put(b"an unrelated blob").unwrap();
    assert!(store.verify().unwrap().is_empty());

    // Flip one byte in one stored chunk file.
    let chunk = walk(&dir.path().join("chunks")).into_iter().find(|p| p.metadata().unwrap().len() > 1000).unwrap();
    let mut data = std::fs::read(&chunk).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    std::fs::write(&chunk, data).unwrap();
    let name = chunk.file_stem().unwrap().to_str().unwrap().to_owned();
    match store.get(&put.id) {
        Err(StoreError::Corrupt { what: "chunk", hash, path, .. }) => {
            assert_eq!(hash, name);
            assert_eq!(path, chunk);
        }
        other => panic!("a corrupt chunk was not reported: {other:?}"),
    }
    let problems = store.verify().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].to_string().contains(&name));
    // Nothing else is harmed.
    assert_eq!(store.get(&other.id).unwrap(), b"an unrelated blob");

    // A truncated recipe is reported as such.
    let recipe = dir.path().join("blobs").join(format!("{}.recipe", other.id));
    std::fs::write(&recipe, b"short").unwrap();
    assert!(matches!(store.get(&other.id), Err(StoreError::Corrupt { what: "recipe of blob", .. })));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
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
    assert_eq!(store.get("reports/todo.md").unwrap(), b"# TODO\n- one\n- two\n");
    assert_eq!(store.get("reports/todo.md@1").unwrap(), b"# TODO\n- one\n");
    assert_eq!(store.get(&v1.blob.0).unwrap(), b"# TODO\n- one\n", "by hash");
    assert!(matches!(store.get("reports/todo.md@9"), Err(ArtifactError::NoVersion { latest: 2, .. })));
    assert!(matches!(store.get("nothing"), Err(ArtifactError::NotFound(_))));
    for bad in ["../escape", "/abs", "a//b", "sp ace"] {
        assert!(matches!(store.put(bad, b"x", Meta::default()), Err(ArtifactError::BadName(_))), "{bad}");
    }
    let (log, torn) = store.log("reports/todo.md").unwrap();
    assert_eq!((log.len(), torn, log[1].meta.derived_from.as_slice()), (2, 0, ["reports/todo.md@1".to_owned()].as_slice()));

    // A crash mid-append leaves a torn line: after the restart it is skipped and counted, and
    // the history still reads.
    drop(store);
    let history = dir.path().join("names/reports%2Ftodo.md.jsonl");
    let mut text = std::fs::read_to_string(&history).unwrap();
    text.push_str("{\"name\":\"reports/todo.md\",\"vers");
    std::fs::write(&history, text).unwrap();
    let store = ArtifactStore::open(dir.path(), 3).unwrap();
    let (log, torn) = store.log("reports/todo.md").unwrap();
    assert_eq!((log.len(), torn), (2, 1));
    let v3 = store.put("reports/todo.md", b"three", Meta::default()).unwrap();
    assert_eq!((v3.version, v3.parent), (3, Some(2)), "the version after a torn line");
    assert_eq!(store.get("reports/todo.md@3").unwrap(), b"three");

    // A second writer (another process, or here another handle) is refused while this one lives.
    match ArtifactStore::open(dir.path(), 3) {
        Err(ArtifactError::Locked { .. }) => {}
        other => panic!("a second writer was let in: {other:?}"),
    }
    drop(store);
    assert!(ArtifactStore::open(dir.path(), 3).is_ok(), "the lock outlived its store");
}
