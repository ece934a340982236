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
