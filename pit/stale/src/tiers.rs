//! The warm and cold tiers' storage. A warm pack (`<store>/warm/<name>.wpk`) holds many blobs
//! compressed together in one zstd stream (so similar blobs compress against each other):
//! `SYWARM1\n | u64 LE index length | index (postcard: id, offset, length) | zstd(blobs)`.
//! Written to a temporary name, synced and renamed. A cold pack is a warm pack put into object
//! storage (a local directory by default, S3 or any `object_store` URL when configured) under
//! `<prefix>/packs/<name>`.

use crate::StaleError;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"SYWARM1\n";

/// Where cold packs go: an object store and a key prefix.
pub struct Cold {
    store: Arc<dyn ObjectStore>,
    prefix: object_store::path::Path,
    /// Named in errors and reports (the URL, credentials left out).
    pub url: String,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

/// Dropping a runtime blocks until its tasks end, which tokio refuses (with a panic) inside
/// another runtime's async context: `symphony serve` drops the kernel, and with it this tier,
/// from one. Nothing runs on this runtime between calls (`run` blocks until its future is
/// done), so there is nothing to wait for.
impl Drop for Cold {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Cold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cold").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Cold {
    /// Opens object storage at `url` (`s3://bucket/prefix`, `file:///dir`, or a plain local
    /// path, created if missing) with `object_store` options (e.g. `aws_endpoint`,
    /// `aws_allow_http`, `aws_access_key_id`); AWS settings also come from the environment.
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Self, StaleError> {
        let bad = |reason: String| StaleError::Cold { url: url.to_owned(), reason };
        let parsed = if url.contains("://") {
            url::Url::parse(url).map_err(|e| bad(e.to_string()))?
        } else {
            std::fs::create_dir_all(url).map_err(|e| bad(e.to_string()))?;
            let abs = std::fs::canonicalize(url).map_err(|e| bad(e.to_string()))?;
            url::Url::from_directory_path(&abs).map_err(|()| bad("not an absolute path".to_owned()))?
        };
        let mut opts: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        opts.extend(options.iter().cloned());
        let (store, prefix) = if parsed.scheme() == "file" {
            let dir = parsed.to_file_path().map_err(|()| bad("not a local path".to_owned()))?;
            std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
            (Arc::new(local) as Arc<dyn ObjectStore>, object_store::path::Path::default())
        } else {
            let (store, prefix) = object_store::parse_url_opts(&parsed, opts).map_err(|e| bad(e.to_string()))?;
            (Arc::from(store), prefix)
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(e.to_string()))?;
        Ok(Self { store, prefix, url: url.to_owned(), runtime: Some(runtime) })
    }

    fn key(&self, pack: &str) -> object_store::path::Path {
        self.prefix.clone().join("packs").join(pack)
    }

    /// Runs an object-store future to completion on this tier's runtime, from a thread of its
    /// own (the caller may be inside another runtime).
    fn run<T: Send>(&self, fut: impl std::future::Future<Output = Result<T, object_store::Error>> + Send) -> Result<T, object_store::Error> {
        let Some(runtime) = &self.runtime else { return Err(object_store::Error::Generic { store: "cold tier", source: "the tier is closed".into() }) };
        std::thread::scope(|s| s.spawn(|| runtime.block_on(fut)).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    pub fn put(&self, pack: &str, bytes: Vec<u8>) -> Result<(), StaleError> {
        let key = self.key(pack);
        self.run(self.store.put(&key, bytes.into())).map(|_| ()).map_err(|e| StaleError::Cold { url: self.url.clone(), reason: format!("put {key}: {e}") })
    }

    pub fn get(&self, pack: &str) -> Result<Vec<u8>, StaleError> {
        let key = self.key(pack);
        self.run(async { self.store.get(&key).await?.bytes().await }).map(|b| b.to_vec()).map_err(|e| StaleError::Cold { url: self.url.clone(), reason: format!("get {key}: {e}") })
    }

    pub fn delete(&self, pack: &str) -> Result<(), StaleError> {
        let key = self.key(pack);
        self.run(self.store.delete(&key)).map_err(|e| StaleError::Cold { url: self.url.clone(), reason: format!("delete {key}: {e}") })
    }

    /// The names of the packs stored.
    pub fn list(&self) -> Result<Vec<String>, StaleError> {
        use futures_util::TryStreamExt;
        let prefix = self.prefix.clone().join("packs");
        let metas: Vec<object_store::ObjectMeta> = self.run(self.store.list(Some(&prefix)).try_collect()).map_err(|e| StaleError::Cold { url: self.url.clone(), reason: format!("list {prefix}: {e}") })?;
        Ok(metas.into_iter().filter_map(|m| m.location.filename().map(str::to_owned)).collect())
    }
}

/// Blobs are grouped into zstd frames of about this many bytes.
const FRAME: u64 = 1 << 20;

type IndexEntry = (String, u64, u64, u64);

/// Builds a pack of `blobs` (id, bytes) at zstd `level`.
pub fn build_pack(blobs: &[(String, Vec<u8>)], level: i32) -> Result<Vec<u8>, StaleError> {
    let bad = |e: std::io::Error| StaleError::Pack { pack: "new".to_owned(), reason: e.to_string() };
    // Blobs go into ~1 MiB frames in order; a blob's index entry is (frame, offset in it, length).
    let mut raw_frames: Vec<Vec<u8>> = vec![Vec::new()];
    let mut placed = Vec::with_capacity(blobs.len());
    for (id, bytes) in blobs {
        if raw_frames.last().is_some_and(|f| f.len() as u64 >= FRAME) {
            raw_frames.push(Vec::new());
        }
        let at = raw_frames.len() - 1;
        let frame = raw_frames.last_mut().ok_or_else(|| bad(std::io::Error::other("no frame")))?;
        placed.push((id.clone(), at, frame.len() as u64, bytes.len() as u64));
        frame.extend_from_slice(bytes);
    }
    // zstd at a high level is the work: frames are compressed on all cores, each core with
    // one compressor for all its frames. A new one per frame allocated its tables afresh
    // (megabytes at level 19), and faulting those pages in took about a third of a sweep.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = raw_frames.len().div_ceil(workers).max(1);
    let compressed: Vec<Vec<u8>> = std::thread::scope(|s| {
        let parts: Vec<_> = raw_frames
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    let mut zstd = zstd::bulk::Compressor::new(level)?;
                    part.iter().filter(|f| !f.is_empty()).map(|f| zstd.compress(f)).collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        parts.into_iter().map(|h| h.join().map_err(|_| std::io::Error::other("a compressing thread panicked"))?).collect::<Result<Vec<Vec<Vec<u8>>>, _>>()
    })
    .map_err(bad)?
    .into_iter()
    .flatten()
    .collect();
    let mut starts = Vec::with_capacity(compressed.len());
    let mut frames = Vec::new();
    for z in &compressed {
        starts.push(frames.len() as u64);
        frames.extend_from_slice(z);
    }
    let index: Vec<IndexEntry> = placed.into_iter().map(|(id, frame, offset, len)| (id, starts.get(frame).copied().unwrap_or(frames.len() as u64), offset, len)).collect();
    let index = postcard::to_allocvec(&index).map_err(|e| StaleError::Pack { pack: "new".to_owned(), reason: e.to_string() })?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(index.len() as u64).to_le_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&frames);
    Ok(out)
}

/// A pack's index and where its frames start.
fn index_of(pack_name: &str, pack: &[u8]) -> Result<(Vec<IndexEntry>, usize), StaleError> {
    let bad = |reason: String| StaleError::Pack { pack: pack_name.to_owned(), reason };
    if pack.len() < 16 || &pack[..8] != MAGIC {
        return Err(bad("not a warm pack (bad header)".to_owned()));
    }
    let n = usize::try_from(u64::from_le_bytes(pack[8..16].try_into().map_err(|_| bad("short header".to_owned()))?)).map_err(|e| bad(e.to_string()))?;
    let index_bytes = pack.get(16..16usize.saturating_add(n)).ok_or_else(|| bad("the index runs past the end".to_owned()))?;
    let index = postcard::from_bytes(index_bytes).map_err(|e| bad(format!("the index does not decode: {e}")))?;
    Ok((index, 16 + n))
}

/// The bytes of blob `id` in `pack` (its contents); checked by the caller against the id.
pub fn read_pack(pack_name: &str, pack: &[u8], id: &str) -> Result<Vec<u8>, StaleError> {
    use std::io::Read;
    let bad = |reason: String| StaleError::Pack { pack: pack_name.to_owned(), reason };
    let (index, frames) = index_of(pack_name, pack)?;
    let (_, frame, offset, len) = index.iter().find(|(i, ..)| i == id).cloned().ok_or_else(|| bad(format!("blob {id} is not in it")))?;
    let start = usize::try_from(frame).ok().and_then(|f| frames.checked_add(f)).filter(|&s| s <= pack.len()).ok_or_else(|| bad("a frame offset runs past the end".to_owned()))?;
    let mut decoder = zstd::stream::Decoder::new(&pack[start..]).map_err(|e| bad(e.to_string()))?;
    std::io::copy(&mut (&mut decoder).take(offset), &mut std::io::sink()).map_err(|e| bad(format!("does not decompress: {e}")))?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    decoder.take(len).read_to_end(&mut out).map_err(|e| bad(format!("does not decompress: {e}")))?;
    if out.len() as u64 != len {
        return Err(bad(format!("blob {id} is cut short")));
    }
    Ok(out)
}

/// The blob ids a pack holds.
pub fn pack_ids(pack_name: &str, pack: &[u8]) -> Result<Vec<String>, StaleError> {
    Ok(index_of(pack_name, pack)?.0.into_iter().map(|(id, ..)| id).collect())
}

/// The local warm directory.
#[derive(Debug)]
pub struct Warm {
    pub dir: PathBuf,
}

impl Warm {
    pub fn path(&self, pack: &str) -> PathBuf {
        self.dir.join(pack)
    }

    pub fn write(&self, pack: &str, bytes: &[u8]) -> Result<(), StaleError> {
        symphony_artifacts::write_atomic(&self.path(pack), bytes).map_err(|e| StaleError::Pack { pack: pack.to_owned(), reason: e.to_string() })
    }

    pub fn read(&self, pack: &str) -> Result<Vec<u8>, StaleError> {
        std::fs::read(self.path(pack)).map_err(|e| StaleError::Pack { pack: self.path(pack).display().to_string(), reason: e.to_string() })
    }

    /// The warm packs present.
    pub fn list(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir).into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str().filter(|n| n.ends_with(".wpk")).map(str::to_owned)).collect()
    }

    pub fn remove(&self, pack: &str) -> Result<(), StaleError> {
        let path = self.path(pack);
        std::fs::remove_file(&path).map_err(|e| StaleError::Pack { pack: path.display().to_string(), reason: e.to_string() })
    }
}

/// A pack name: when it was made and a hash of what is in it.
pub fn pack_name(blobs: &[(String, Vec<u8>)]) -> String {
    let mut h = blake3::Hasher::new();
    for (id, _) in blobs {
        h.update(id.as_bytes());
    }
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{ms}-{}.wpk", &h.finalize().to_hex()[..12])
}
