//! Content-addressed, chunk-deduplicated, compressed blob storage over the pack journal (see
//! the crate docs). A blob is cut into content-defined chunks (FastCDC); each chunk is stored
//! once, zstd-compressed (or raw when that is not smaller), keyed by the BLAKE3 of its bytes
//! and checked against it on every read. Every blob has a recipe (its length and chunks) keyed
//! by the BLAKE3 of the whole, written after its chunks, so a blob is visible only when whole.

use crate::catalog::{Recipe, StoreCatalog, Tier};
use crate::pack::{Journal, Kind, Loc, Record};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Chunk sizes: small enough that an edit rewrites little, large enough that per-chunk
/// overhead stays small (FastCDC normalises around the average).
const MIN_CHUNK: u32 = 16 << 10;
const AVG_CHUNK: u32 = 64 << 10;
const MAX_CHUNK: u32 = 256 << 10;
/// A large blob's chunks are appended in batches of about this much, so memory stays bounded;
/// its recipe (and version) comes last.
const BATCH_BYTES: usize = 32 << 20;
/// Chunk payloads start with how they are stored: a marker byte, or a zstd frame as it is
/// (its magic number, `28 b5 2f fd`, starts with none of the markers). Marking a frame took a
/// copy of every compressed chunk; frames written with the marker (`ZSTD`) still read.
const RAW: u8 = 0;
const ZSTD: u8 = 1;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// zstd with another chunk (the same place in the parent version) as its dictionary:
/// `DELTA | depth | base hash | zstd`. An edit to a small file then costs about the edit.
const DELTA: u8 = 2;
/// A delta's base may itself be a delta this deep at most (reads decode the chain).
const MAX_DEPTH: u8 = 8;
/// The zstd level chunks are recompressed at when compaction rewrites them (at least the
/// store's own): ~9 % smaller than level 3 on source code, still ~100 MB/s.
const REST_LEVEL: i32 = 9;

/// The BLAKE3 of a blob's content, hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub String);

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the store could not do what was asked; every variant names what and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no blob {0} in the store")]
    NotFound(BlobId),
    /// Stored bytes that do not match their name: never returned as data.
    #[error("{what} {hash} is corrupt ({path}): {reason}")]
    Corrupt { what: &'static str, hash: String, path: PathBuf, reason: String },
    #[error("`{0}` is not a blob id (64 hex digits)")]
    BadId(String),
    /// The blob is in a warm or cold tier and could not be brought back.
    #[error("blob {id} is in the {tier} tier and could not be restored: {reason}")]
    Restore { id: BlobId, tier: &'static str, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// What a `put` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReport {
    pub id: BlobId,
    pub len: u64,
    pub chunks: usize,
    /// Chunks that were already stored (by this blob or another): their bytes were not written.
    pub reused: usize,
    /// Compressed bytes written for new chunks.
    pub written: u64,
}

/// What a garbage collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub chunks_removed: usize,
    /// Leftovers of writes a crash interrupted.
    pub temp_files_removed: usize,
    pub bytes_freed: u64,
    pub blobs_kept: usize,
    pub chunks_kept: usize,
    /// Pack files rewritten without their dead records.
    pub packs_rewritten: usize,
}

/// What the blob layer holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub blobs: usize,
    pub chunks: usize,
    /// Bytes on disk: the pack files.
    pub stored_bytes: u64,
}

/// Brings a warm or cold blob's bytes back (the stale manager installs one).
pub type Restorer = dyn Fn(&BlobId, &Tier) -> Result<Vec<u8>, String> + Send + Sync;

/// A blob store rooted at a directory.
pub struct BlobStore {
    root: PathBuf,
    level: i32,
    pub(crate) journal: Journal<StoreCatalog>,
    restorer: RwLock<Option<Arc<Restorer>>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("root", &self.root).field("level", &self.level).finish_non_exhaustive()
    }
}

pub(crate) fn parse_id(id: &BlobId) -> Result<[u8; 32], StoreError> {
    blake3::Hash::from_hex(&id.0).map(|h| *h.as_bytes()).map_err(|_| StoreError::BadId(id.0.clone()))
}

fn hex(key: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*key).to_hex().to_string()
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `data` as one zstd frame at `level`, by this thread's compressor: a new one per call
/// allocates (and faults in) its tables each time.
pub(crate) fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = zstd::bulk::Compressor::new(level).ok().map(|z| (level, z));
        }
        c.as_mut().and_then(|(_, z)| z.compress(data).ok())
    })
}

/// The stored form of a chunk: zstd when that is smaller, else raw.
fn encode_chunk(data: &[u8], level: i32) -> Vec<u8> {
    match compress(data, level) {
        Some(z) if z.len() < data.len() && z.starts_with(&ZSTD_MAGIC) => z,
        _ => {
            let mut out = Vec::with_capacity(data.len() + 1);
            out.push(RAW);
            out.extend_from_slice(data);
            out
        }
    }
}

/// A chunk's payload compressed again at `level`, if that is smaller: a zstd chunk alone, a
/// delta against the same base (which `base` reads). Raw chunks did not shrink before.
fn recompress(payload: &[u8], level: i32, base: &BaseReader<'_>) -> Option<Vec<u8>> {
    if let Some((hash, depth)) = delta_base(payload) {
        let dict = base(&hash).ok()?;
        let data = undelta(payload, &dict).ok()?;
        let z = zstd::bulk::Compressor::with_dictionary(level, &dict).and_then(|mut c| c.compress(&data)).ok()?;
        return Some(delta_payload(depth, &hash, &z)).filter(|again| again.len() < payload.len());
    }
    if payload.first() != Some(&ZSTD) && !payload.starts_with(&ZSTD_MAGIC) {
        return None;
    }
    let data = decode_chunk(payload, &|_| Err("a zstd chunk has no base".to_owned())).ok()?;
    Some(encode_chunk(&data, level)).filter(|again| again.len() < payload.len())
}

/// Where content-defined chunking cuts `bytes`: (offset, length) of each chunk. FastCDC never
/// cuts a blob of up to `MIN_CHUNK` bytes, and setting it up (gear tables allocated per
/// chunker) was ~8 % of the busiest thread's time in an import of small files.
fn cuts_of(bytes: &[u8]) -> Vec<(usize, usize)> {
    match bytes.len() {
        0 => Vec::new(),
        len if len <= MIN_CHUNK as usize => vec![(0, len)],
        _ => fastcdc::v2020::FastCDC::new(bytes, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).map(|c| (c.offset, c.length)).collect(),
    }
}

/// `encode_chunk`, or a delta against `base` (its hash, bytes and depth) when that is smaller.
fn encode_chunk_against(data: &[u8], level: i32, base: Option<&([u8; 32], Vec<u8>, u8)>) -> Vec<u8> {
    let plain = encode_chunk(data, level);
    let Some((hash, bytes, depth)) = base.filter(|(_, _, d)| *d < MAX_DEPTH) else { return plain };
    let delta = zstd::bulk::Compressor::with_dictionary(level, bytes).and_then(|mut c| c.compress(data));
    match delta {
        Ok(z) if z.len() + 34 < plain.len() => delta_payload(depth + 1, hash, &z),
        _ => plain,
    }
}

/// A delta chunk's stored form: `DELTA | depth | base hash | zstd`.
fn delta_payload(depth: u8, base: &[u8; 32], z: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(z.len() + 34);
    out.push(DELTA);
    out.push(depth);
    out.extend_from_slice(base);
    out.extend_from_slice(z);
    out
}

/// A delta chunk's bytes, given its base's bytes.
fn undelta(payload: &[u8], base: &[u8]) -> Result<Vec<u8>, String> {
    let mut d = zstd::bulk::Decompressor::with_dictionary(base).map_err(|e| e.to_string())?;
    d.decompress(&payload[34..], MAX_CHUNK as usize).map_err(|e| format!("does not decompress: {e}"))
}

/// The base a delta chunk needs, and its depth.
fn delta_base(payload: &[u8]) -> Option<([u8; 32], u8)> {
    (payload.first() == Some(&DELTA) && payload.len() >= 34).then(|| (payload[2..34].try_into().unwrap_or([0; 32]), payload[1]))
}

/// Reads a chunk by hash (a delta's base).
type BaseReader<'a> = dyn Fn(&[u8; 32]) -> Result<Vec<u8>, String> + 'a;

/// A chunk's bytes from its payload; `base` reads a delta's base chunk.
fn decode_chunk(payload: &[u8], base: &BaseReader<'_>) -> Result<Vec<u8>, String> {
    if let Some((hash, _)) = delta_base(payload) {
        let dict = base(&hash).map_err(|e| format!("its delta base {}: {e}", hex(&hash)))?;
        return undelta(payload, &dict);
    }
    let frame = match payload.split_first() {
        Some((&RAW, data)) => return Ok(data.to_vec()),
        Some((&ZSTD, data)) => data,
        _ if payload.starts_with(&ZSTD_MAGIC) => payload,
        _ => return Err("unknown chunk encoding".to_owned()),
    };
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
        }
        d.as_mut().map_or_else(|| Err("no decompressor".to_owned()), |d| d.decompress(frame, MAX_CHUNK as usize).map_err(|e| format!("does not decompress: {e}")))
    })
}

/// A chunk's hash, and its stored form if it is new.
type Encoded = ([u8; 32], Option<Vec<u8>>);

/// The blob's records still to append (the rest went out in earlier batches) and its report.
pub(crate) struct Prepared {
    pub records: Vec<Record>,
    pub report: PutReport,
}

impl BlobStore {
    /// Opens (creating) a store; `level` is the zstd level (1–22; 3 is zstd's default).
    pub fn open(root: impl Into<PathBuf>, level: i32) -> Result<Self, StoreError> {
        let root = root.into();
        let journal = Journal::open(&root.join("packs"), StoreCatalog::default())?;
        for d in &journal.damage {
            tracing::warn!(pack = %d.path.display(), offset = d.offset, len = d.len, "{}", d.reason);
        }
        Ok(Self { root, level: level.clamp(1, 22), journal, restorer: RwLock::new(None) })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Installs what brings warm and cold blobs back on access.
    pub fn set_restorer(&self, restorer: Arc<Restorer>) {
        *self.restorer.write().unwrap_or_else(|p| p.into_inner()) = Some(restorer);
    }

    /// Cuts `bytes` into chunks and makes the records of those not stored yet; large blobs
    /// have their chunks appended (durably) in batches, and only the rest is returned.
    pub(crate) fn prepare(&self, bytes: &[u8]) -> Result<Prepared, StoreError> {
        self.prepare_after(bytes, None, &mut |_| {})
    }

    /// `prepare`, with new chunks of a small blob delta-encoded against the chunks of
    /// `parent` (the previous version of the same name) where that is smaller. `progress`
    /// hears how many bytes are chunked, hashed and compressed so far.
    pub(crate) fn prepare_after(&self, bytes: &[u8], parent: Option<&BlobId>, progress: &mut dyn FnMut(u64)) -> Result<Prepared, StoreError> {
        let cuts = cuts_of(bytes);
        let workers = if bytes.len() >= 4 << 20 { crate::cores::available() } else { 1 };
        // Deltas are for small blobs (one worker), against a parent that is hot.
        let parent = parent
            .filter(|_| workers == 1)
            .and_then(|p| parse_id(p).ok())
            .filter(|k| self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).tier(k) == Tier::Hot)
            .and_then(|k| self.recipe(&k));
        let mut recipe = Recipe { len: bytes.len() as u64, chunks: Vec::with_capacity(cuts.len()) };
        let (mut reused, mut written) = (0, 0u64);
        let mut records = Vec::new();
        let mut pending_bytes = 0usize;
        let mut seen = HashSet::new();
        let mut id = None;
        std::thread::scope(|s| -> Result<(), StoreError> {
            // The whole blob's hash alongside the chunks' (it is one more pass over the bytes).
            let whole = (workers > 1).then(|| s.spawn(|| blake3::hash(bytes)));
            for group in cuts.chunks(256) {
                // Hash and encode a group of chunks across the workers.
                let first = recipe.chunks.len();
                let indexed: Vec<(usize, (usize, usize))> = group.iter().copied().enumerate().collect();
                let encoded = crate::cores::map(&indexed, workers, |&(i, (o, l))| self.encode_if_new_after(&bytes[o..o + l], parent.as_deref(), first + i));
                for (hash, payload) in encoded {
                    recipe.chunks.push(hash);
                    match payload {
                        Some(payload) if seen.insert(hash) => {
                            written += payload.len() as u64;
                            pending_bytes += payload.len();
                            records.push(Record { kind: Kind::Chunk, key: hash, payload, decoded: None });
                        }
                        _ => reused += 1,
                    }
                }
                if pending_bytes >= BATCH_BYTES {
                    self.journal.append(std::mem::take(&mut records), None)?;
                    pending_bytes = 0;
                }
                progress(group.last().map_or(0, |&(o, l)| (o + l) as u64));
            }
            id = whole.map(|h| h.join().unwrap_or_else(|_| blake3::hash(bytes)));
            Ok(())
        })?;
        // A blob of one chunk is that chunk: its hash is already known.
        let id = match (id, recipe.chunks.as_slice()) {
            (Some(id), _) => id,
            (None, [only]) => blake3::Hash::from_bytes(*only),
            (None, _) => blake3::hash(bytes),
        };
        let chunks = recipe.chunks.len();
        if !self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).recipes.contains_key(id.as_bytes()) {
            let payload = postcard::to_allocvec(&recipe).map_err(|e| StoreError::Io { path: self.root.clone(), source: std::io::Error::other(e) })?;
            records.push(Record { kind: Kind::Recipe, key: *id.as_bytes(), payload, decoded: None });
        }
        Ok(Prepared { records, report: PutReport { id: BlobId(id.to_hex().to_string()), len: bytes.len() as u64, chunks, reused, written } })
    }

    /// A chunk's hash, and its stored form unless the store has it already: delta-encoded
    /// against the parent's chunk at the same index (or its last) when that is smaller.
    fn encode_if_new_after(&self, data: &[u8], parent: Option<&Recipe>, index: usize) -> Encoded {
        let hash = *blake3::hash(data).as_bytes();
        let known = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).chunks.contains_key(&hash);
        if known {
            return (hash, None);
        }
        let base = parent.and_then(|r| r.chunks.get(index).or(r.chunks.last())).and_then(|b| self.chunk_and_depth(b).ok().map(|(bytes, depth)| (*b, bytes, depth)));
        (hash, Some(encode_chunk_against(data, self.level, base.as_ref())))
    }

    /// Stores `bytes` (durably, once this returns); chunks already stored are not written again.
    pub fn put(&self, bytes: &[u8]) -> Result<PutReport, StoreError> {
        let prepared = self.prepare(bytes)?;
        self.journal.append(prepared.records, None)?;
        Ok(prepared.report)
    }

    fn recipe(&self, key: &[u8; 32]) -> Option<Arc<Recipe>> {
        self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).recipes.get(key).map(|(_, r)| Arc::clone(r))
    }

    /// Reads one chunk, checking it against its name.
    fn chunk(&self, hash: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
        self.chunk_and_depth(hash).map(|(data, _)| data)
    }

    /// A chunk's stored payload, and the pack it was read from.
    fn chunk_payload(&self, hash: &[u8; 32]) -> Result<(Loc, PathBuf, Vec<u8>), StoreError> {
        let corrupt = |path: PathBuf, reason: String| StoreError::Corrupt { what: "chunk", hash: hex(hash), path, reason };
        let Some((loc, file)) = self.journal.locate(|c| c.chunks.get(hash).copied()) else {
            return Err(corrupt(self.root.join("packs"), "is missing from the store".to_owned()));
        };
        let path = self.journal.pack_path(loc.pack);
        let payload = self.journal.read(&file, loc, Kind::Chunk, hash, false).map_err(|r| corrupt(path.clone(), r))?;
        Ok((loc, path, payload))
    }

    /// A chunk's bytes (checked) and its delta depth (0: stored whole).
    fn chunk_and_depth(&self, hash: &[u8; 32]) -> Result<(Vec<u8>, u8), StoreError> {
        let corrupt = |path: PathBuf, reason: String| StoreError::Corrupt { what: "chunk", hash: hex(hash), path, reason };
        let (loc, path, payload) = self.chunk_payload(hash)?;
        let depth = delta_base(&payload).map_or(0, |(_, d)| d);
        let data = decode_chunk(&payload, &|b| self.chunk(b).map_err(|e| e.to_string())).map_err(|r| corrupt(path.clone(), format!("{r} (at byte {} of the pack)", loc.offset)))?;
        if blake3::hash(&data).as_bytes() != hash {
            return Err(corrupt(path, format!("its bytes do not match its BLAKE3 (at byte {} of the pack)", loc.offset)));
        }
        Ok((data, depth))
    }

    /// The chunk a delta chunk is encoded against, if it is one.
    fn chunk_base(&self, hash: &[u8; 32]) -> Option<[u8; 32]> {
        let (_, _, payload) = self.chunk_payload(hash).ok()?;
        delta_base(&payload).map(|(b, _)| b)
    }

    /// The blob's bytes, every chunk and the whole checked. A warm or cold blob is restored to
    /// this store first.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, StoreError> {
        let key = parse_id(id)?;
        let tier = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).tier(&key);
        if tier != Tier::Hot {
            return self.restore(id, &tier);
        }
        let Some(recipe) = self.recipe(&key) else {
            // A blob of one chunk is that chunk (same bytes, so the same hash): it reads
            // without its recipe (lost, say, with a damaged group).
            if self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).chunks.contains_key(&key) {
                return self.chunk(&key);
            }
            return Err(self.missing(id, &key));
        };
        let mut out = Vec::with_capacity(usize::try_from(recipe.len).unwrap_or(0));
        for hash in &recipe.chunks {
            let data = self.chunk(hash)?;
            if recipe.chunks.len() == 1 {
                // One chunk: its hash was the blob's, and it was just checked.
                return Ok(data);
            }
            out.extend_from_slice(&data);
        }
        if blake3::hash(&out).as_bytes() != &key {
            return Err(StoreError::Corrupt { what: "blob", hash: id.0.clone(), path: self.root.join("packs"), reason: "its chunks do not add up to it".to_owned() });
        }
        Ok(out)
    }

    /// Why a blob has no recipe: never stored, or its recipe record was found damaged.
    fn missing(&self, id: &BlobId, key: &[u8; 32]) -> StoreError {
        match self.journal.damaged.get(key) {
            Some((Kind::Recipe, loc)) => StoreError::Corrupt {
                what: "recipe of blob",
                hash: id.0.clone(),
                path: self.journal.pack_path(loc.pack),
                reason: format!("the record fails its checksum (at byte {} of the pack)", loc.offset),
            },
            _ => StoreError::NotFound(id.clone()),
        }
    }

    /// The first `limit` bytes (or a little more) of a hot blob, each chunk checked; for
    /// indexing, which reads only that much.
    pub fn read_prefix(&self, id: &BlobId, limit: usize) -> Result<Vec<u8>, StoreError> {
        let recipe = self.recipe(&parse_id(id)?).ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let mut out = Vec::new();
        for hash in &recipe.chunks {
            if out.len() >= limit {
                break;
            }
            out.extend_from_slice(&self.chunk(hash)?);
        }
        Ok(out)
    }

    fn restore(&self, id: &BlobId, tier: &Tier) -> Result<Vec<u8>, StoreError> {
        let tier_name = match tier {
            Tier::Hot => "hot",
            Tier::Warm { .. } => "warm",
            Tier::Cold { .. } => "cold",
        };
        let failed = |reason: String| StoreError::Restore { id: id.clone(), tier: tier_name, reason };
        let restorer = self.restorer.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| failed("no stale manager is attached to this store".to_owned()))?;
        let bytes = restorer(id, tier).map_err(failed)?;
        if blake3::hash(&bytes).to_hex().as_str() != id.0 {
            return Err(failed("the bytes brought back do not match the blob's BLAKE3".to_owned()));
        }
        let prepared = self.prepare(&bytes)?;
        let mut records = prepared.records;
        records.push(placement(&parse_id(id)?, &Tier::Hot)?);
        self.journal.append(records, None)?;
        Ok(bytes)
    }

    /// Records (in one durable append) that blobs' bytes are now in other tiers (the stale
    /// manager moved them there first). Hot copies are left to the next collection.
    pub fn set_tiers(&self, moved: &[(BlobId, Tier)]) -> Result<(), StoreError> {
        let records = moved.iter().map(|(id, tier)| placement(&parse_id(id)?, tier)).collect::<Result<Vec<_>, _>>()?;
        self.journal.append(records, None)?;
        Ok(())
    }

    /// Every blob not in the hot tier, and where it is.
    pub fn placements(&self) -> Vec<(BlobId, Tier)> {
        let c = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
        c.tiers.iter().filter(|(_, (_, t))| *t != Tier::Hot).map(|(k, (_, t))| (BlobId(hex(k)), t.clone())).collect()
    }

    /// The tier a blob is in.
    pub fn tier(&self, id: &BlobId) -> Result<Tier, StoreError> {
        Ok(self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).tier(&parse_id(id)?))
    }

    /// Whether a blob is stored (in any tier).
    pub fn contains(&self, id: &BlobId) -> bool {
        parse_id(id).is_ok_and(|k| {
            let c = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
            c.recipes.contains_key(&k) || c.tier(&k) != Tier::Hot
        })
    }

    /// How many blobs and chunks there are, and the bytes their packs take on disk.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let (blobs, chunks) = {
            let c = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
            (c.recipes.len(), c.chunks.len())
        };
        Ok(Usage { blobs, chunks, stored_bytes: self.journal.disk_bytes() })
    }

    /// Every blob whose bytes are here (hot).
    pub fn ids(&self) -> Result<Vec<BlobId>, StoreError> {
        Ok(self.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).recipes.keys().map(|k| BlobId(hex(k))).collect())
    }

    /// Drops every blob not in `keep` (or kept but moved to another tier), every chunk no kept
    /// blob uses, and leftover temporary files: packs holding such records are rewritten
    /// with only the live ones (appended durably first, then the old pack deleted), so a
    /// crash part-way leaves both copies or one — never none. The caller keeps writers out.
    pub fn gc(&self, keep: &HashSet<BlobId>) -> Result<GcReport, StoreError> {
        self.gc_with(keep, &mut |_, _| {})
    }

    /// `gc`, telling `progress(bytes of packs looked at, bytes in packs)` as it goes.
    pub fn gc_with(&self, keep: &HashSet<BlobId>, progress: &mut dyn FnMut(u64, u64)) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        let keep: HashSet<[u8; 32]> = keep.iter().filter_map(|id| parse_id(id).ok()).collect();
        let live_chunks: HashSet<[u8; 32]> = {
            let c = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
            let mut live = HashSet::new();
            for (key, (_, recipe)) in &c.recipes {
                if keep.contains(key) && c.tier(key) == Tier::Hot {
                    live.extend(recipe.chunks.iter().copied());
                    report.blobs_kept += 1;
                }
            }
            live
        };
        // A live delta chunk keeps its base (and the base's base).
        let mut live_chunks = live_chunks;
        let mut todo: Vec<[u8; 32]> = live_chunks.iter().copied().collect();
        while let Some(hash) = todo.pop() {
            if let Some(base) = self.chunk_base(&hash)
                && live_chunks.insert(base)
            {
                todo.push(base);
            }
        }
        report.chunks_kept = live_chunks.len();
        let live = |c: &StoreCatalog, kind: Kind, key: &[u8; 32], loc: Loc| match kind {
            Kind::Chunk => live_chunks.contains(key) && c.chunks.get(key) == Some(&loc),
            Kind::Recipe => keep.contains(key) && c.tier(key) == Tier::Hot && c.recipes.get(key).is_some_and(|(l, _)| *l == loc),
            Kind::Version => c.version_locs.get(key) == Some(&loc),
            Kind::Tombstone => true,
            Kind::Placement => c.tiers.get(key).is_some_and(|(l, _)| *l == loc),
            // Compaction asks about a group's members, never the group.
            Kind::Group => false,
        };
        // At rest, chunks are compressed harder and version records grouped as plain JSON
        // (a group compresses them together far better than each alone).
        let level = self.level.max(REST_LEVEL);
        let at_rest = |kind: Kind, payload: &[u8]| match kind {
            Kind::Chunk => recompress(payload, level, &|hash| self.chunk(hash).map_err(|e| e.to_string())),
            Kind::Version => crate::catalog::plain_version(payload),
            _ => None,
        };
        let before = self.journal.packs();
        self.journal.compact(&live, &at_rest, progress, |kind, bytes| {
            match kind {
                Kind::Chunk => report.chunks_removed += 1,
                Kind::Recipe => report.blobs_removed += 1,
                _ => {}
            }
            report.bytes_freed += bytes;
        })?;
        report.packs_rewritten = before.iter().filter(|p| !self.journal.packs().contains(p)).count();
        // Temporary files of interrupted writes (warm packs, index files written aside).
        let dir = self.root.join("packs");
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                report.bytes_freed += entry.metadata().map_or(0, |m| m.len());
                std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                report.temp_files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Reads every record of every pack, checking each against its checksum and every chunk
    /// against its BLAKE3; returns what is damaged (empty: all good).
    pub fn verify(&self) -> Result<Vec<StoreError>, StoreError> {
        self.verify_with(&mut |_, _| {})
    }

    /// `verify`, telling `progress(bytes read, bytes in packs)` as it goes.
    pub fn verify_with(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<Vec<StoreError>, StoreError> {
        let mut problems = Vec::new();
        let total = self.journal.disk_bytes();
        let mut done = 0;
        for pack in self.journal.packs() {
            progress(done, total);
            let before = done;
            done += std::fs::metadata(self.journal.pack_path(pack)).map_or(0, |m| m.len());
            let path = self.journal.pack_path(pack);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let mut damage = Vec::new();
            crate::pack::walk(
                pack,
                &bytes,
                &path,
                false,
                |f| {
                    progress(before + f.loc.offset, total);
                    if f.kind == Kind::Chunk && f.whole {
                        match decode_chunk(f.payload, &|b| self.chunk(b).map_err(|e| e.to_string())) {
                            Ok(data) if blake3::hash(&data).as_bytes() == &f.key => {}
                            Ok(_) => problems.push(StoreError::Corrupt { what: "chunk", hash: hex(&f.key), path: path.clone(), reason: format!("its bytes do not match its BLAKE3 (at byte {} of the pack)", f.loc.offset) }),
                            Err(r) => problems.push(StoreError::Corrupt { what: "chunk", hash: hex(&f.key), path: path.clone(), reason: format!("{r} (at byte {} of the pack)", f.loc.offset) }),
                        }
                    } else if f.kind == Kind::Group && f.whole {
                        if let Err(r) = crate::pack::members(&f.key, f.payload) {
                            problems.push(StoreError::Corrupt { what: "group of records", hash: hex(&f.key), path: path.clone(), reason: format!("{r} (at byte {} of the pack)", f.loc.offset) });
                        }
                    } else if !f.whole {
                        let what = match f.kind {
                            Kind::Chunk => "chunk",
                            Kind::Recipe => "recipe of blob",
                            Kind::Version => "version record",
                            Kind::Tombstone => "tombstone",
                            Kind::Placement => "placement of blob",
                            Kind::Group => "group of records",
                        };
                        problems.push(StoreError::Corrupt { what, hash: hex(&f.key), path: path.clone(), reason: format!("the record fails its checksum (at byte {} of the pack)", f.loc.offset) });
                    }
                },
                &mut damage,
            );
            for d in damage.into_iter().filter(|d| !d.reason.starts_with("record fails")) {
                problems.push(StoreError::Corrupt { what: "pack region", hash: format!("{}+{}", d.offset, d.len), path: d.path, reason: d.reason });
            }
        }
        progress(total, total);
        // Every live recipe's chunks must be there.
        let c = self.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
        for (key, (_, recipe)) in &c.recipes {
            if let Some(missing) = recipe.chunks.iter().find(|h| !c.chunks.contains_key(*h)) {
                problems.push(StoreError::Corrupt { what: "blob", hash: hex(key), path: self.root.join("packs"), reason: format!("its chunk {} is missing", hex(missing)) });
            }
        }
        Ok(problems)
    }
}

pub(crate) fn placement(key: &[u8; 32], tier: &Tier) -> Result<Record, StoreError> {
    let payload = serde_json::to_vec(tier).map_err(|e| StoreError::Io { path: PathBuf::from("placement"), source: std::io::Error::other(e) })?;
    Ok(Record { kind: Kind::Placement, key: *key, payload, decoded: None })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Small blobs skip the chunker: the cuts are the ones FastCDC makes, on both sides of
    /// `MIN_CHUNK`.
    #[test]
    fn cuts_are_fastcdc_cuts() {
        let bytes: Vec<u8> = (0..600_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let min = MIN_CHUNK as usize;
        for len in [0, 1, 100, min - 1, min, min + 1, 2 * min, 300_000, 600_000] {
            let fastcdc: Vec<(usize, usize)> = fastcdc::v2020::FastCDC::new(&bytes[..len], MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).map(|c| (c.offset, c.length)).collect();
            assert_eq!(cuts_of(&bytes[..len]), fastcdc, "{len} bytes");
        }
    }

    #[test]
    fn chunk_encodings_read_back_including_frames_marked_the_old_way() {
        let no_base = |_: &[u8; 32]| Err("no base".to_owned());
        let text = b"fn main() { println!(\"hello\"); }\n".repeat(200);
        let mut noise = vec![0u8; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        for (data, kind) in [(&text[..], "zstd"), (&noise[..], "raw"), (&[][..], "raw")] {
            let payload = encode_chunk(data, 3);
            assert_eq!(if payload.starts_with(&ZSTD_MAGIC) { "zstd" } else { "raw" }, kind);
            assert_eq!(decode_chunk(&payload, &no_base).unwrap(), data);
        }
        let mut marked = vec![ZSTD];
        marked.extend(zstd::bulk::compress(&text, 3).unwrap());
        assert_eq!(decode_chunk(&marked, &no_base).unwrap(), text);
        assert!(recompress(&marked, 9, &no_base).is_some_and(|again| again.starts_with(&ZSTD_MAGIC) && decode_chunk(&again, &no_base).unwrap() == text));
        assert!(decode_chunk(&[7, 1, 2], &no_base).is_err_and(|e| e.contains("unknown chunk encoding")));
    }

    /// A delta put at a fast level is compressed again at rest against the same base: smaller,
    /// the same bytes, the same base and depth (so `gc` keeps the base it already keeps).
    #[test]
    fn a_delta_compressed_again_at_rest_keeps_its_base() {
        let base: Vec<u8> = (0..600).flat_map(|i| format!("pub fn item_{i}(x: u32) -> u32 {{ x + {i} }}\n").into_bytes()).collect();
        let mut edited = base.clone();
        let added: Vec<u8> = (0..150).flat_map(|i| format!("// a new comment about the {i}th change, with words repeated words\n").into_bytes()).collect();
        edited.splice(base.len() / 2..base.len() / 2, added);
        let hash = *blake3::hash(&base).as_bytes();
        let reader = |h: &[u8; 32]| if *h == hash { Ok(base.clone()) } else { Err("unknown base".to_owned()) };
        let put = encode_chunk_against(&edited, 1, Some(&(hash, base.clone(), 2)));
        assert_eq!(delta_base(&put), Some((hash, 3)), "stored as a delta");
        let Some(at_rest) = recompress(&put, 19, &reader) else { panic!("a harder level makes the delta smaller") };
        assert!(at_rest.len() < put.len());
        assert_eq!(delta_base(&at_rest), Some((hash, 3)));
        assert_eq!(decode_chunk(&at_rest, &reader).unwrap(), edited);
        // A delta whose base cannot be read is left as it is.
        assert!(recompress(&put, 19, &|_| Err("gone".to_owned())).is_none());
    }
}
