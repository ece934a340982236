//! What the pack journal's records mean, in memory: where each chunk is, every blob's recipe,
//! each name's versions, and which tier each blob's bytes are in. Kept current by the journal
//! as records become durable, rebuilt from the packs on open.

use crate::names::Version;
use crate::pack::{Catalog, Decoded, Kind, Loc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A blob's length and its chunks, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Recipe {
    pub len: u64,
    pub chunks: Vec<[u8; 32]>,
}

/// Where a blob's bytes are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tier", rename_all = "lowercase")]
pub enum Tier {
    /// In this store's packs.
    Hot,
    /// In a local warm pack (`<pack>` names it), compressed together with its neighbours.
    Warm { pack: String },
    /// In object storage (`<pack>` is the object's key).
    Cold { pack: String },
}

/// A version record's payload is JSON: plain (as puts write it; compaction gathers records
/// into compressed groups at rest), or zstd-compressed against `VERSION_DICTIONARY` (a
/// typical record: every record shares its keys and factor names, so one compresses to a
/// few hundred bytes instead of ~700), as earlier puts and the legacy import wrote it. The
/// dictionary is part of the format: never change it; a new one would need a new marker.
const VERSION_DICTIONARY: &[u8] = br#"{"name":"src/lib.rs","version":2,"blob":"0000000000000000000000000000000000000000000000000000000000000000","len":1024,"parent":1,"created_at":"2026-01-01T00:00:00.000Z","meta":{"kind":"code","tags":[],"mime":"text/plain","author":"user","produced_by":"run-/","derived_from":["@1"]},"quality":{"score":0.5,"class":"code","factors":[{"name":"balanced","value":1.0,"weight":3.0,"detail":"every bracket closes"},{"name":"size","value":1.0,"weight":1.0,"detail":"100 lines"},{"name":"todo_density","value":1.0,"weight":1.0,"detail":"0 TODO/FIXME/XXX in 100 lines"},{"name":"tests","value":0.0,"weight":2.0,"detail":"no tests"},{"name":"comments","value":1.0,"weight":1.0,"detail":"10 % comment lines"},{"name":"structure","value":0.6666666666666666,"weight":2.0,"detail":"headings, lists, 3 paragraphs"},{"name":"length","value":1.0,"weight":1.0,"detail":"500 words"},{"name":"sentences","value":1.0,"weight":1.0,"detail":"mean sentence 12.0 words"},{"name":"parses","value":1.0,"weight":3.0,"detail":"parses as JSON"}]}}"#;
/// Marks a compressed version payload (JSON starts with `{`).
const VERSION_ZSTD: u8 = 1;

thread_local! {
    /// A compression context is ~1 MB: one per thread, not one per put.
    static VERSION_COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    /// Loading the dictionary costs more than decompressing one record: once per thread.
    static VERSION_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// A version's record payload.
pub(crate) fn encode_version(v: &Version) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    let compressed = VERSION_COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::with_dictionary(3, VERSION_DICTIONARY).map_err(|e| e.to_string())?);
        }
        c.as_mut().map_or_else(|| Err("no compressor".to_owned()), |c| c.compress(&json).map_err(|e| e.to_string()))
    })?;
    let mut out = Vec::with_capacity(compressed.len() + 1);
    out.push(VERSION_ZSTD);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// A version from its record payload (compressed, or plain JSON from before).
pub(crate) fn decode_version(payload: &[u8]) -> Result<Version, String> {
    match payload.split_first() {
        Some((&VERSION_ZSTD, _)) => {
            let json = plain_version(payload).ok_or_else(|| "a compressed version record does not decompress".to_owned())?;
            serde_json::from_slice(&json).map_err(|e| e.to_string())
        }
        _ => serde_json::from_slice(payload).map_err(|e| e.to_string()),
    }
}

/// A compressed version record's payload as plain JSON (`None`: it is JSON already, or does
/// not decompress — then it stays as it is).
pub(crate) fn plain_version(payload: &[u8]) -> Option<Vec<u8>> {
    match payload.split_first() {
        Some((&VERSION_ZSTD, data)) => VERSION_DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = zstd::bulk::Decompressor::with_dictionary(VERSION_DICTIONARY).ok();
            }
            d.as_mut().and_then(|d| d.decompress(data, 1 << 20).ok())
        }),
        _ => None,
    }
}

/// The key of a version record.
pub(crate) fn version_key(name: &str, version: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(name.as_bytes());
    h.update(&[0]);
    h.update(&version.to_le_bytes());
    *h.finalize().as_bytes()
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub name: String,
    pub version: u64,
}

/// Hashes a map key that is itself a BLAKE3 hash (a chunk's, a blob's, a version's) by its
/// first eight bytes: the key is uniform already, and nobody who could aim for collisions
/// chooses it. SipHash over the 32 bytes was ~5 % of importing many small files.
#[derive(Clone, Copy, Default)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut eight = [0u8; 8];
        let n = bytes.len().min(8);
        eight[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(eight);
    }

    /// The length an array's `Hash` writes first says nothing: every key is 32 bytes.
    fn write_usize(&mut self, _: usize) {}
}

/// A map keyed by a BLAKE3 hash.
pub(crate) type ByKey<V> = HashMap<[u8; 32], V, std::hash::BuildHasherDefault<KeyHasher>>;

/// A name's versions, oldest first.
pub(crate) type History = Arc<Vec<Version>>;

#[derive(Default)]
pub(crate) struct StoreCatalog {
    pub chunks: ByKey<Loc>,
    pub recipes: ByKey<(Loc, Arc<Recipe>)>,
    pub names: HashMap<String, History>,
    /// The highest version number each name ever had, deleted ones included (a number is
    /// never handed out twice: a tombstone names its version's key for good).
    pub highest: HashMap<String, u64>,
    pub version_locs: ByKey<Loc>,
    pub deleted: std::collections::HashSet<[u8; 32], std::hash::BuildHasherDefault<KeyHasher>>,
    pub tiers: ByKey<(Loc, Tier)>,
    /// The position of the last version record applied (journal order).
    pub last_version_at: u64,
    /// Names whose versions became durable, in journal order, for the search indexer.
    pub feed: Option<std::sync::mpsc::Sender<(u64, String)>>,
}

impl StoreCatalog {
    fn note_number(&mut self, name: &str, version: u64) {
        match self.highest.get_mut(name) {
            Some(h) => *h = (*h).max(version),
            None => {
                self.highest.insert(name.to_owned(), version);
            }
        }
    }

    fn add_version(&mut self, v: Version) {
        self.note_number(&v.name, v.version);
        let history = Arc::make_mut(self.names.entry(v.name.clone()).or_default());
        match history.binary_search_by_key(&v.version, |h| h.version) {
            Ok(i) => history[i] = v,
            Err(i) => history.insert(i, v),
        }
    }

    fn remove_version(&mut self, name: &str, version: u64) {
        if let Some(history) = self.names.get_mut(name) {
            Arc::make_mut(history).retain(|v| v.version != version);
            if history.is_empty() {
                self.names.remove(name);
            }
        }
    }

    /// The tier a blob's bytes are in (hot unless a placement says otherwise).
    pub fn tier(&self, blob: &[u8; 32]) -> Tier {
        self.tiers.get(blob).map_or(Tier::Hot, |(_, t)| t.clone())
    }
}

impl Catalog for StoreCatalog {
    fn wants_payload(kind: Kind) -> bool {
        kind != Kind::Chunk
    }

    fn apply(&mut self, kind: Kind, key: [u8; 32], payload: Option<&[u8]>, loc: Loc, decoded: Option<Decoded>) {
        let payload = payload.unwrap_or_default();
        match kind {
            Kind::Chunk => {
                self.chunks.insert(key, loc);
            }
            Kind::Recipe => match postcard::from_bytes::<Recipe>(payload) {
                Ok(r) => {
                    self.recipes.insert(key, (loc, Arc::new(r)));
                }
                Err(e) => tracing::warn!(?loc, "a recipe does not decode: {e}"),
            },
            Kind::Version => match decoded.and_then(|d| d.downcast::<Version>().ok()).map_or_else(|| decode_version(payload), |v| Ok(*v)) {
                // A version deleted earlier and copied again by compaction stays deleted.
                Ok(_) if self.deleted.contains(&key) => {}
                Ok(v) => {
                    let name = v.name.clone();
                    self.version_locs.insert(key, loc);
                    self.add_version(v);
                    self.last_version_at = self.last_version_at.max(loc.position());
                    if let Some(feed) = &self.feed {
                        let _ = feed.send((loc.position(), name));
                    }
                }
                Err(e) => tracing::warn!(?loc, "a version record does not decode: {e}"),
            },
            Kind::Tombstone => match serde_json::from_slice::<Tombstone>(payload) {
                Ok(t) => {
                    self.note_number(&t.name, t.version);
                    self.deleted.insert(key);
                    self.version_locs.remove(&key);
                    self.remove_version(&t.name, t.version);
                    self.last_version_at = self.last_version_at.max(loc.position());
                    if let Some(feed) = &self.feed {
                        let _ = feed.send((loc.position(), t.name));
                    }
                }
                Err(e) => tracing::warn!(?loc, "a tombstone does not decode: {e}"),
            },
            Kind::Placement => match serde_json::from_slice::<Tier>(payload) {
                // A hot placement is kept too: it must outlive the older one it overrides.
                Ok(t) => {
                    self.tiers.insert(key, (loc, t));
                }
                Err(e) => tracing::warn!(?loc, "a placement does not decode: {e}"),
            },
            // The journal applies a group's members one by one.
            Kind::Group => tracing::warn!(?loc, "a group of records was applied whole"),
        }
    }

    fn forget(&mut self, kind: Kind, key: &[u8; 32], loc: Loc) {
        match kind {
            Kind::Chunk => {
                if self.chunks.get(key) == Some(&loc) {
                    self.chunks.remove(key);
                }
            }
            Kind::Recipe => {
                if self.recipes.get(key).is_some_and(|(l, _)| *l == loc) {
                    self.recipes.remove(key);
                }
            }
            // Versions and tombstones are only dropped once superseded; placements likewise.
            Kind::Version | Kind::Tombstone | Kind::Placement | Kind::Group => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_records_round_trip_compressed_and_plain_json_still_reads() {
        let v: Version = serde_json::from_slice(VERSION_DICTIONARY).unwrap_or_else(|e| panic!("the dictionary is a version record: {e}"));
        let encoded = encode_version(&v).unwrap_or_default();
        assert!(encoded.len() < 200, "{} bytes", encoded.len());
        assert_eq!(decode_version(&encoded).ok(), Some(v.clone()));
        assert_eq!(decode_version(&serde_json::to_vec(&v).unwrap_or_default()).ok(), Some(v));
        assert!(decode_version(&[VERSION_ZSTD, 1, 2, 3]).is_err());
    }
}
