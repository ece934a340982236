//! Imports a store written by the first layout (a file per chunk under `chunks/`, a recipe per
//! blob under `blobs/`, a JSON-lines history per name under `names/`) into the pack journal on
//! open, keeping every version's number, metadata and bytes. The old directories are moved to
//! `legacy-imported/` once everything is durable in packs, never deleted.

use crate::blobs::{BlobStore, StoreError};
use crate::catalog::version_key;
use crate::names::Version;
use crate::pack::{Kind, Record};
use std::path::Path;

#[derive(serde::Deserialize)]
struct OldRecipe {
    #[allow(dead_code)]
    len: u64,
    chunks: Vec<[u8; 32]>,
}

fn old_blob(root: &Path, id: &str) -> Result<Vec<u8>, String> {
    let framed = std::fs::read(root.join("blobs").join(format!("{id}.recipe"))).map_err(|e| e.to_string())?;
    if framed.len() < 32 || blake3::hash(&framed[32..]).as_bytes() != &framed[..32] {
        return Err("its recipe fails its checksum".to_owned());
    }
    let recipe: OldRecipe = postcard::from_bytes(&framed[32..]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for hash in recipe.chunks {
        let hex = blake3::Hash::from_bytes(hash).to_hex();
        let compressed = std::fs::read(root.join("chunks").join(&hex[..2]).join(format!("{hex}.zst"))).map_err(|e| format!("chunk {hex}: {e}"))?;
        out.extend(zstd::stream::decode_all(compressed.as_slice()).map_err(|e| format!("chunk {hex}: {e}"))?);
    }
    if blake3::hash(&out).to_hex().as_str() != id {
        return Err("its chunks do not add up to it".to_owned());
    }
    Ok(out)
}

/// Imports `root`'s old layout, if it has one (the caller holds the store's lock).
pub(crate) fn import(root: &Path, level: i32) -> Result<(), StoreError> {
    let names = root.join("names");
    if !names.is_dir() {
        return Ok(());
    }
    let io = |path: &Path, source| StoreError::Io { path: path.to_path_buf(), source };
    let store = BlobStore::open(root, level)?;
    let mut imported = 0;
    for entry in std::fs::read_dir(&names).map_err(|e| io(&names, e))?.flatten() {
        let text = std::fs::read_to_string(entry.path()).map_err(|e| io(&entry.path(), e))?;
        for v in text.lines().filter_map(|l| serde_json::from_str::<Version>(l).ok()) {
            let mut records = Vec::new();
            match old_blob(root, &v.blob.0) {
                Ok(bytes) => records = store.prepare(&bytes)?.records,
                Err(e) => tracing::warn!(name = v.name, version = v.version, "imported without its bytes: blob {}: {e}", v.blob),
            }
            let payload = crate::catalog::encode_version(&v).map_err(|e| io(&entry.path(), std::io::Error::other(e)))?;
            records.push(Record { kind: Kind::Version, key: version_key(&v.name, v.version), payload, decoded: None });
            store.journal.append(records, None)?;
            imported += 1;
        }
    }
    drop(store);
    let aside = root.join("legacy-imported");
    std::fs::create_dir_all(&aside).map_err(|e| io(&aside, e))?;
    for dir in ["names", "blobs", "chunks"] {
        let from = root.join(dir);
        if from.exists() {
            std::fs::rename(&from, aside.join(dir)).map_err(|e| io(&from, e))?;
        }
    }
    tracing::info!(versions = imported, "imported the old store layout into packs; the old files are in {}", aside.display());
    Ok(())
}
