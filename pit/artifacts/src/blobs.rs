//! Content-addressed, chunk-deduplicated, compressed blob storage (see the crate docs).
//!
//! Layout under the store's root:
//! - `chunks/<first two hex>/<blake3>.zst` — one compressed chunk;
//! - `blobs/<blake3>.recipe` — postcard: the blob's length and its chunk hashes, with a
//!   BLAKE3 checksum of that encoding in front.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Chunk sizes: small enough that an edit rewrites little, large enough that per-chunk files
/// stay few (FastCDC normalises around the average).
const MIN_CHUNK: u32 = 16 << 10;
const AVG_CHUNK: u32 = 64 << 10;
const MAX_CHUNK: u32 = 256 << 10;

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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

#[derive(Serialize, Deserialize)]
struct Recipe {
    len: u64,
    chunks: Vec<[u8; 32]>,
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
}

/// What the blob layer holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub blobs: usize,
    pub chunks: usize,
    /// Bytes on disk: compressed chunks and recipes.
    pub stored_bytes: u64,
}

/// A blob store rooted at a directory.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    level: i32,
}

/// Writes `bytes` to `path` so that `path` is either absent or whole: temp file, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::Io { path: path.to_path_buf(), source: e });
    }
    Ok(())
}

fn parse_id(id: &BlobId) -> Result<blake3::Hash, StoreError> {
    blake3::Hash::from_hex(&id.0).map_err(|_| StoreError::BadId(id.0.clone()))
}

impl BlobStore {
    /// Opens (creating) a store; `level` is the zstd level (1–22; 3 is zstd's default).
    pub fn open(root: impl Into<PathBuf>, level: i32) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["chunks", "blobs"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Self { root, level: level.clamp(1, 22) })
    }

    fn chunk_path(&self, hash: &blake3::Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("chunks").join(&hex[..2]).join(format!("{hex}.zst"))
    }

    fn recipe_path(&self, id: &blake3::Hash) -> PathBuf {
        self.root.join("blobs").join(format!("{}.recipe", id.to_hex()))
    }

    /// Stores `bytes`; chunks already in the store are not written again.
    pub fn put(&self, bytes: &[u8]) -> Result<PutReport, StoreError> {
        let id = blake3::hash(bytes);
        let mut recipe = Recipe { len: bytes.len() as u64, chunks: Vec::new() };
        let (mut reused, mut written) = (0, 0u64);
        for chunk in fastcdc::v2020::FastCDC::new(bytes, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            let data = &bytes[chunk.offset..chunk.offset + chunk.length];
            let hash = blake3::hash(data);
            let path = self.chunk_path(&hash);
            if path.exists() {
                reused += 1;
            } else {
                let compressed = zstd::bulk::compress(data, self.level).map_err(io(&path))?;
                written += compressed.len() as u64;
                write_atomic(&path, &compressed)?;
            }
            recipe.chunks.push(*hash.as_bytes());
        }
        // The recipe last: a blob is visible only once all its chunks are.
        let encoded = postcard::to_allocvec(&recipe).map_err(|e| StoreError::Io { path: self.recipe_path(&id), source: std::io::Error::other(e) })?;
        let mut framed = blake3::hash(&encoded).as_bytes().to_vec();
        framed.extend_from_slice(&encoded);
        write_atomic(&self.recipe_path(&id), &framed)?;
        Ok(PutReport { id: BlobId(id.to_hex().to_string()), len: recipe.len, chunks: recipe.chunks.len(), reused, written })
    }

    fn recipe(&self, id: &BlobId) -> Result<Recipe, StoreError> {
        let hash = parse_id(id)?;
        let path = self.recipe_path(&hash);
        let framed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound(id.clone())),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let corrupt = |reason: &str| StoreError::Corrupt { what: "recipe of blob", hash: id.0.clone(), path: path.clone(), reason: reason.to_owned() };
        if framed.len() < 32 || blake3::hash(&framed[32..]).as_bytes() != &framed[..32] {
            return Err(corrupt("checksum mismatch"));
        }
        postcard::from_bytes(&framed[32..]).map_err(|e| corrupt(&e.to_string()))
    }

    /// Reads one chunk, checking it against its name.
    fn chunk(&self, hash: &blake3::Hash) -> Result<Vec<u8>, StoreError> {
        let path = self.chunk_path(hash);
        let corrupt = |reason: String| StoreError::Corrupt { what: "chunk", hash: hash.to_hex().to_string(), path: path.clone(), reason };
        let compressed = std::fs::read(&path).map_err(|e| corrupt(format!("cannot be read: {e}")))?;
        let data = zstd::stream::decode_all(compressed.as_slice()).map_err(|e| corrupt(format!("does not decompress: {e}")))?;
        if blake3::hash(&data) != *hash {
            return Err(corrupt("its bytes do not match its BLAKE3".to_owned()));
        }
        Ok(data)
    }

    /// The blob's bytes, every chunk and the whole checked.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, StoreError> {
        let recipe = self.recipe(id)?;
        let mut out = Vec::with_capacity(usize::try_from(recipe.len).unwrap_or(0));
        for hash in &recipe.chunks {
            out.extend_from_slice(&self.chunk(&blake3::Hash::from_bytes(*hash))?);
        }
        if blake3::hash(&out).to_hex().as_str() != id.0 {
            return Err(StoreError::Corrupt { what: "blob", hash: id.0.clone(), path: self.recipe_path(&parse_id(id)?), reason: "its chunks do not add up to it".to_owned() });
        }
        Ok(out)
    }

    /// Whether a blob is stored (its recipe exists).
    pub fn contains(&self, id: &BlobId) -> bool {
        parse_id(id).is_ok_and(|h| self.recipe_path(&h).exists())
    }

    /// How many blobs and chunks there are, and the bytes they take on disk.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        for (dir, chunks) in [(self.root.join("blobs"), false), (self.root.join("chunks"), true)] {
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
                    let entry = entry.map_err(io(&dir))?;
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with(".tmp-") {
                        continue;
                    }
                    usage.stored_bytes += entry.metadata().map_or(0, |m| m.len());
                    if chunks {
                        usage.chunks += 1;
                    } else {
                        usage.blobs += 1;
                    }
                }
            }
        }
        Ok(usage)
    }

    /// Every stored blob.
    pub fn ids(&self) -> Result<Vec<BlobId>, StoreError> {
        let dir = self.root.join("blobs");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if let Some(hex) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".recipe")) {
                out.push(BlobId(hex.to_owned()));
            }
        }
        Ok(out)
    }

    /// Removes every blob not in `keep`, then every chunk no kept blob uses, and leftover
    /// temporary files. Recipes go first, so a crash part-way leaves blobs that are either
    /// whole or gone; a kept blob whose recipe cannot be read stops the collection before any
    /// chunk is removed. The caller keeps writers out while it runs.
    pub fn gc(&self, keep: &std::collections::HashSet<BlobId>) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut used = std::collections::HashSet::new();
        for id in self.ids()? {
            if keep.contains(&id) {
                for hash in self.recipe(&id)?.chunks {
                    used.insert(hash);
                }
                report.blobs_kept += 1;
            } else {
                let path = self.recipe_path(&parse_id(&id)?);
                report.bytes_freed += size(&path);
                std::fs::remove_file(&path).map_err(io(&path))?;
                report.blobs_removed += 1;
            }
        }
        for dir in [self.root.join("blobs"), self.root.join("chunks")] {
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
                    let path = entry.map_err(io(&dir))?.path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
                    let remove = if name.starts_with(".tmp-") {
                        report.temp_files_removed += 1;
                        true
                    } else if let Some(hex) = name.strip_suffix(".zst") {
                        let used_here = blake3::Hash::from_hex(hex).is_ok_and(|h| used.contains(h.as_bytes()));
                        if used_here {
                            report.chunks_kept += 1;
                        } else {
                            report.chunks_removed += 1;
                        }
                        !used_here
                    } else {
                        false
                    };
                    if remove {
                        report.bytes_freed += size(&path);
                        std::fs::remove_file(&path).map_err(io(&path))?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Checks every chunk of every blob; returns what is corrupt (empty: all good).
    pub fn verify(&self) -> Result<Vec<StoreError>, StoreError> {
        let dir = self.root.join("blobs");
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let Some(hex) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".recipe")) else { continue };
            let recipe = match self.recipe(&BlobId(hex.to_owned())) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            for hash in recipe.chunks {
                if seen.insert(hash)
                    && let Err(e) = self.chunk(&blake3::Hash::from_bytes(hash))
                {
                    problems.push(e);
                }
            }
        }
        Ok(problems)
    }
}
