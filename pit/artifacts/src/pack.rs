//! The store's append-only pack journal. Every chunk, recipe, version and placement is a
//! checksummed record appended to the current pack file (`packs/<n>.pack`); concurrent writers
//! share one write and one `fdatasync` per batch (group commit), so a durable put costs one
//! sync however many writers there are. An in-memory catalog (the `Catalog` trait) knows where
//! the latest record of every key is; it is rebuilt by scanning the packs on open.
//!
//! A record: `magic "SyR1" | kind u8 | key [32] | len u32 LE | check [16] | payload [len]`, where
//! `check` is the first 16 bytes of the BLAKE3 of everything before it but the magic plus the
//! payload. A crash mid-write leaves a torn tail: the open scan finds it, keeps its bytes in
//! `packs/<n>.torn-<offset>` and cuts it off, so writes go on after the last whole record. A
//! damaged record in the middle is skipped (the scan finds the next whole record) and reported.
//! While a store is open, the pack being appended to goes on in zeros written ahead (no record
//! starts with a zero byte); a closed store cuts them off, and the open scan ignores them.
//! Compaction gathers the records read only on open (all but chunks) into group records.

use crate::blobs::StoreError;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

const MAGIC: [u8; 4] = *b"SyR1";
pub(crate) const HEADER: usize = 4 + 1 + 32 + 4 + 16;
/// A pack is sealed when it reaches this size: compaction rewrites a pack at a time, so packs
/// stay small enough to rewrite quickly.
const PACK_LIMIT: u64 = 64 << 20;
/// The current pack is filled with zeros past its last record ahead of time: a write into
/// bytes the file already has needs no inode update, so its `fdatasync` is one device write
/// instead of two (~140 µs instead of ~200–260 here). A fill is `FIRST_FILL`, doubling up to
/// `PREFILL` while small writes keep needing more. Writes larger than `PREFILL_UP_TO` just
/// extend the file (filling first would write their bytes twice).
const PREFILL: u64 = 1 << 20;
const PREFILL_UP_TO: u64 = 256 << 10;
const FIRST_FILL: u64 = 64 << 10;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A compressed chunk, keyed by the BLAKE3 of its uncompressed bytes.
    Chunk = 1,
    /// A blob's length and chunks, keyed by the blob's BLAKE3.
    Recipe = 2,
    /// A version of a name (JSON), keyed by the BLAKE3 of `name \0 version`.
    Version = 3,
    /// A version deleted by a retention policy (JSON `{name, version}`), same key.
    Tombstone = 4,
    /// Where a blob's bytes live (hot, warm, cold), keyed by the blob's BLAKE3.
    Placement = 5,
    /// Records of the kinds above but chunks, gathered by compaction into one zstd frame
    /// (they are only read on open, and compress far better together than one by one);
    /// keyed by the BLAKE3 of the members' bytes. See `group`.
    Group = 6,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Chunk,
            2 => Self::Recipe,
            3 => Self::Version,
            4 => Self::Tombstone,
            5 => Self::Placement,
            6 => Self::Group,
            _ => return None,
        })
    }
}

/// Where a record is: its pack, the offset of its header, and its payload's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub len: u32,
}

impl Loc {
    /// The record's place in journal order (packs in turn, then offsets).
    pub fn position(self) -> u64 {
        (u64::from(self.pack) << 40) | self.offset
    }
}

/// A record to append.
pub(crate) struct Record {
    pub kind: Kind,
    pub key: [u8; 32],
    pub payload: Vec<u8>,
    /// What the payload decodes to, when the writer has it at hand: the catalog then need not
    /// decode it again.
    pub decoded: Option<Decoded>,
}

/// A record's payload, decoded (the catalog knows the type per kind).
pub(crate) type Decoded = Box<dyn std::any::Any + Send>;

/// What the journal's records mean: kept current as records become durable.
pub(crate) trait Catalog: Send + Sync {
    /// Whether opening must read this kind's payload (chunks are only located).
    fn wants_payload(kind: Kind) -> bool;
    /// A record is durable (or was found on open); `payload` is there if `wants_payload`,
    /// `decoded` if its writer handed it over.
    fn apply(&mut self, kind: Kind, key: [u8; 32], payload: Option<&[u8]>, loc: Loc, decoded: Option<Decoded>);
    /// Compaction dropped this record: forget the key if this is where it points.
    fn forget(&mut self, kind: Kind, key: &[u8; 32], loc: Loc);
}

/// The form a record being rewritten is better kept in, if any (see `Journal::compact`).
pub(crate) type AtRest<'a> = dyn Fn(Kind, &[u8]) -> Option<Vec<u8>> + Sync + 'a;

/// Whether a record (in the catalog's view) is still needed.
pub(crate) type Liveness<'a, C> = dyn Fn(&C, Kind, &[u8; 32], Loc) -> bool + 'a;

/// Something the open scan or `verify` found wrong in a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub reason: String,
}

struct Pending {
    loc: Loc,
    head: [u8; HEADER],
    record: Record,
}

struct WriteState {
    pack: u32,
    end: u64,
    batch: Vec<Pending>,
    /// Tickets: each append takes the next; `durable` is the last one whose batch is synced.
    issued: u64,
    durable: u64,
    leading: bool,
    /// How many batches have been led; the one being written (while `leading`) is this one.
    generation: u64,
    /// The last ticket of the batch being written.
    in_flight: u64,
    /// A failed batch poisons the journal from its first ticket on (what is on disk after a
    /// failed write is unknown until the next open scans it).
    failed: Option<(u64, String)>,
}

/// The pack being appended to: where its records end, and how long the file is (the bytes
/// between are zeros written ahead).
struct Tail {
    pack: u32,
    data_end: u64,
    file_len: u64,
    /// How many zeros the next fill writes.
    fill: u64,
}

impl Tail {
    /// The tail of `pack`, which has no bytes yet.
    fn new(pack: u32) -> Self {
        Self { pack, data_end: 0, file_len: 0, fill: FIRST_FILL }
    }

    /// Moves on to `pack`: the one appended to so far is done with, and its zeros go.
    fn move_to(&mut self, pack: u32, files: &RwLock<BTreeMap<u32, Arc<File>>>) {
        self.cut_zeros(&files.read().unwrap_or_else(|p| p.into_inner()));
        *self = Self::new(pack);
    }

    /// Cuts the zeros written ahead off a pack nothing more is appended to. Best effort: a
    /// pack that keeps them (a crash came first) reads the same.
    fn cut_zeros(&self, files: &BTreeMap<u32, Arc<File>>) {
        if self.file_len > self.data_end
            && let Some(file) = files.get(&self.pack)
            && let Err(e) = file.set_len(self.data_end)
        {
            tracing::debug!(pack = self.pack, "could not cut the zeros after the last record: {e}");
        }
    }
}

/// The journal over `dir`, with its catalog.
pub(crate) struct Journal<C> {
    dir: PathBuf,
    files: RwLock<BTreeMap<u32, Arc<File>>>,
    pub catalog: RwLock<C>,
    state: parking_lot::Mutex<WriteState>,
    /// Waiters by generation parity: those whose records are being written wait on the
    /// generation's, those queued for the next batch on the other. A leader that finishes
    /// wakes all of the first and one of the second (to lead), not everyone.
    synced: [parking_lot::Condvar; 2],
    /// Only the leader writes, so this lock is never contended.
    tail: Mutex<Tail>,
    /// What the open scan found damaged (torn tails kept aside, skipped records).
    pub damage: Vec<Damage>,
    /// Records found failing their checksum on open, by key: a read of one names it.
    pub damaged: std::collections::HashMap<[u8; 32], (Kind, Loc)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

fn check_of(kind: u8, key: &[u8; 32], payload: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&[kind]);
    h.update(key);
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// What goes in front of a record's payload. Written with it in one vectored write: copying
/// each payload behind its header cost the appending thread a copy (and fresh pages) of
/// everything it wrote.
fn header(r: &Record) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    out[..4].copy_from_slice(&MAGIC);
    out[4] = r.kind as u8;
    out[5..37].copy_from_slice(&r.key);
    out[37..41].copy_from_slice(&(r.payload.len() as u32).to_le_bytes());
    out[41..].copy_from_slice(&check_of(r.kind as u8, &r.key, &r.payload));
    out
}

/// Marks a group payload: `1 | raw length u32 LE | zstd frame` of the members, each
/// `kind u8 | key [32] | len u32 LE | payload`.
const GROUP_ZSTD: u8 = 1;
/// The same, for a group a bulk write made (`group_of`): compaction regroups its members the
/// way it keeps them at rest (sorted by name, compressed harder), and recompresses the chunks
/// written with it.
const GROUP_FRESH: u8 = 2;
/// Fresh groups are made under the journal's lock: compress them quickly.
const FRESH_LEVEL: i32 = 3;
/// A group holds members up to about this many bytes (one at least).
const GROUP_BYTES: usize = 1 << 20;
/// Groups are written once, read on every open: compress them well.
const GROUP_LEVEL: i32 = 9;
/// Compaction rewrites a pack once it holds this many records that could be grouped.
const GROUP_AT_LEAST: usize = 64;

/// Whether compaction gathers records of this kind into groups.
fn groupable(kind: Kind) -> bool {
    !matches!(kind, Kind::Chunk | Kind::Group)
}

/// `records` (none of them chunks) gathered into group records. Versions are sorted by their
/// payload (JSON starting with the name), so a name's versions sit together and compress
/// against each other; other kinds keep their order (a later placement of a blob overrides
/// an earlier one).
fn group(mut records: Vec<Record>) -> Result<Vec<Record>, String> {
    records.sort_by(|a, b| (a.kind as u8).cmp(&(b.kind as u8)).then_with(|| if a.kind == Kind::Version { a.payload.cmp(&b.payload) } else { std::cmp::Ordering::Equal }));
    let mut raws = vec![Vec::new()];
    for r in records {
        let raw = raws.last_mut().ok_or("no group")?;
        push_member(raw, &r)?;
        if raw.len() >= GROUP_BYTES {
            raws.push(Vec::new());
        }
    }
    raws.retain(|r| !r.is_empty());
    // Compressing is the work: the groups are compressed on all cores.
    crate::cores::map(&raws, crate::cores::available(), |raw| seal_group(raw, GROUP_ZSTD, GROUP_LEVEL)).into_iter().collect()
}

/// A member's bytes inside a group: `kind u8 | key [32] | len u32 LE | payload`.
fn push_member(raw: &mut Vec<u8>, r: &Record) -> Result<(), String> {
    raw.push(r.kind as u8);
    raw.extend_from_slice(&r.key);
    raw.extend_from_slice(&u32::try_from(r.payload.len()).map_err(|e| e.to_string())?.to_le_bytes());
    raw.extend_from_slice(&r.payload);
    Ok(())
}

/// A group record (`mark` says which kind) of members laid out in `raw`, compressed at `level`.
fn seal_group(raw: &[u8], mark: u8, level: i32) -> Result<Record, String> {
    let z = crate::blobs::compress(raw, level).ok_or("does not compress")?;
    let mut payload = Vec::with_capacity(z.len() + 5);
    payload.push(mark);
    payload.extend_from_slice(&u32::try_from(raw.len()).map_err(|e| e.to_string())?.to_le_bytes());
    payload.extend_from_slice(&z);
    Ok(Record { kind: Kind::Group, key: *blake3::hash(raw).as_bytes(), payload, decoded: None })
}

/// A bulk write's small records (recipes, versions) as one group, in their order: one frame,
/// checksum and catalog entry point instead of one each, and compressed together (a name's
/// JSON compresses against its neighbours'). The members go to the catalog from memory
/// (`apply_to`), as they would have one by one.
pub(crate) fn group_of(records: Vec<Record>) -> Result<Record, String> {
    let mut raw = Vec::with_capacity(records.iter().map(|r| 37 + r.payload.len()).sum());
    for r in &records {
        if !groupable(r.kind) {
            return Err(format!("a {:?} record cannot be grouped", r.kind));
        }
        push_member(&mut raw, r)?;
    }
    let mut group = seal_group(&raw, GROUP_FRESH, FRESH_LEVEL)?;
    group.decoded = Some(Box::new(records));
    Ok(group)
}

/// A record inside a group: kind, key, payload.
pub(crate) type Member = (Kind, [u8; 32], Vec<u8>);

/// The members of a group record's payload, checked against the group's key.
pub(crate) fn members(key: &[u8; 32], payload: &[u8]) -> Result<Vec<Member>, String> {
    let (Some(&(GROUP_ZSTD | GROUP_FRESH)), Some(len)) = (payload.first(), payload.get(1..5)) else { return Err("not a group payload".to_owned()) };
    let len = u32::from_le_bytes(len.try_into().map_err(|_| "short group header".to_owned())?) as usize;
    if len > PACK_LIMIT as usize * 4 {
        return Err(format!("claims {len} bytes of members"));
    }
    let raw = zstd::bulk::decompress(&payload[5..], len).map_err(|e| format!("does not decompress: {e}"))?;
    if blake3::hash(&raw).as_bytes() != key {
        return Err("its members do not match its BLAKE3".to_owned());
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let head = raw.get(at..at + 37).ok_or("a member is cut short")?;
        let kind = Kind::from_byte(head[0]).filter(|&k| groupable(k)).ok_or_else(|| format!("a member of kind {}", head[0]))?;
        let key: [u8; 32] = head[1..33].try_into().map_err(|_| "a member is cut short".to_owned())?;
        let len = u32::from_le_bytes(head[33..37].try_into().map_err(|_| "a member is cut short".to_owned())?) as usize;
        let body = raw.get(at + 37..at + 37 + len).ok_or("a member is cut short")?;
        out.push((kind, key, body.to_vec()));
        at += 37 + len;
    }
    Ok(out)
}

/// Applies a record to the catalog, each member of a group in turn (at the group's place;
/// from memory when the group was just written by `group_of`).
fn apply_to<C: Catalog>(catalog: &mut C, kind: Kind, key: [u8; 32], payload: Option<&[u8]>, loc: Loc, decoded: Option<Decoded>) {
    if kind != Kind::Group {
        return catalog.apply(kind, key, payload, loc, decoded);
    }
    if let Some(Ok(records)) = decoded.map(|d| d.downcast::<Vec<Record>>()) {
        for r in *records {
            let payload = C::wants_payload(r.kind).then_some(r.payload.as_slice());
            catalog.apply(r.kind, r.key, payload, loc, r.decoded);
        }
        return;
    }
    match members(&key, payload.unwrap_or_default()) {
        Ok(members) => {
            for (kind, key, payload) in members {
                catalog.apply(kind, key, Some(&payload), loc, None);
            }
        }
        Err(e) => tracing::warn!(?loc, "a group of records does not read: {e}"),
    }
}

/// A parsed header.
struct Header {
    kind: Kind,
    key: [u8; 32],
    len: u32,
    check: [u8; 16],
}

fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER || b[..4] != MAGIC {
        return None;
    }
    let kind = Kind::from_byte(b[4])?;
    let key: [u8; 32] = b[5..37].try_into().ok()?;
    let len = u32::from_le_bytes(b[37..41].try_into().ok()?);
    let check: [u8; 16] = b[41..57].try_into().ok()?;
    Some(Header { kind, key, len, check })
}

pub(crate) fn pack_name(id: u32) -> String {
    format!("{id:08}.pack")
}

/// One record found in a pack's bytes.
pub(crate) struct Found<'a> {
    pub kind: Kind,
    pub key: [u8; 32],
    pub loc: Loc,
    pub payload: &'a [u8],
    /// Whether the payload matches its check.
    pub whole: bool,
}

/// Walks the records of a pack held in memory. A header that does not parse starts a damaged
/// region that ends at the next whole record (or at the end: a torn tail). With `may_tear`
/// (the last pack, on open) a last record that fails its check is a torn write too; anywhere
/// else it is a damaged record.
pub(crate) fn walk(pack: u32, bytes: &[u8], path: &Path, may_tear: bool, mut each: impl FnMut(Found<'_>), damage: &mut Vec<Damage>) -> u64 {
    let mut at = 0usize;
    let mut good_end = 0u64;
    // Past this only zeros, written ahead (no record starts with a zero byte): a record
    // reaching it is the last one, and is a torn write if it fails its check. (A last record
    // may itself end in zeros.)
    let data_len = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    while at < data_len {
        let whole_at = |at: usize| -> Option<(Header, bool)> {
            let h = parse_header(&bytes[at..])?;
            let end = at.checked_add(HEADER)?.checked_add(h.len as usize)?;
            let payload = bytes.get(at + HEADER..end)?;
            let whole = check_of(h.kind as u8, &h.key, payload) == h.check;
            Some((h, whole))
        };
        match whole_at(at) {
            Some((h, whole)) if whole || !may_tear || at + HEADER + (h.len as usize) < data_len => {
                let loc = Loc { pack, offset: at as u64, len: h.len };
                let payload = &bytes[at + HEADER..at + HEADER + h.len as usize];
                if !whole {
                    damage.push(Damage { path: path.to_path_buf(), offset: at as u64, len: (HEADER + payload.len()) as u64, reason: "record fails its checksum".to_owned() });
                }
                each(Found { kind: h.kind, key: h.key, loc, payload, whole });
                at += HEADER + h.len as usize;
                good_end = at as u64;
            }
            _ => {
                // Find the next record that is whole; everything before it is damaged.
                let next = (at + 1..bytes.len()).find(|&i| bytes[i..].starts_with(&MAGIC) && whole_at(i).is_some_and(|(_, whole)| whole));
                let stop = next.unwrap_or(bytes.len());
                let reason = if next.is_some() { "damaged bytes between records" } else { "torn tail (a write cut off)" };
                damage.push(Damage { path: path.to_path_buf(), offset: at as u64, len: (stop - at) as u64, reason: reason.to_owned() });
                at = stop;
            }
        }
    }
    good_end
}

/// A record found by `scan_sealed`: its payload if the catalog wants it.
type Scanned = (Kind, [u8; 32], Loc, Option<Vec<u8>>);

/// Reads a sealed pack's records sequentially, skipping the payloads the catalog does not
/// want; `None` when anything does not parse or check (the caller then walks it whole).
fn scan_sealed<C: Catalog>(pack: u32, file: &File) -> std::io::Result<Option<Vec<Scanned>>> {
    use std::io::Read;
    let len = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(256 << 10, file);
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut header = [0u8; HEADER];
    while at < len {
        if at + HEADER as u64 > len {
            return Ok(None);
        }
        reader.read_exact(&mut header)?;
        let Some(h) = parse_header(&header) else { return Ok(None) };
        let end = at + HEADER as u64 + u64::from(h.len);
        if end > len {
            return Ok(None);
        }
        let loc = Loc { pack, offset: at, len: h.len };
        let payload = if C::wants_payload(h.kind) {
            let mut payload = vec![0u8; h.len as usize];
            reader.read_exact(&mut payload)?;
            if check_of(h.kind as u8, &h.key, &payload) != h.check {
                return Ok(None);
            }
            Some(payload)
        } else {
            reader.seek_relative(i64::from(h.len))?;
            None
        };
        out.push((h.kind, h.key, loc, payload));
        at = end;
    }
    Ok(Some(out))
}

impl<C> Drop for Journal<C> {
    /// A closed store keeps no zeros written ahead.
    fn drop(&mut self) {
        let tail = self.tail.get_mut().unwrap_or_else(|p| p.into_inner());
        tail.cut_zeros(self.files.get_mut().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Writes a run of records (headers and payloads) at `offset`, in vectored writes of at most
/// `IOV_MAX` (1024) slices, going on after a short write.
fn write_run_at(file: &File, run: &[Pending], mut offset: u64) -> std::io::Result<()> {
    for part in run.chunks(512) {
        let mut slices: Vec<std::io::IoSlice<'_>> = part.iter().flat_map(|p| [std::io::IoSlice::new(&p.head), std::io::IoSlice::new(&p.record.payload)]).collect();
        let mut rest = slices.as_mut_slice();
        while !rest.is_empty() {
            let n = match rustix::io::pwritev(file, rest, offset) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            offset += n as u64;
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
    }
    Ok(())
}

impl<C: Catalog> Journal<C> {
    /// Opens the journal in `dir` (creating it), replaying every pack into `catalog`.
    pub fn open(dir: &Path, mut catalog: C) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut ids: Vec<u32> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".pack")).and_then(|n| n.parse().ok()))
            .collect();
        ids.sort_unstable();
        let mut files = BTreeMap::new();
        let mut damage = Vec::new();
        let mut damaged = std::collections::HashMap::new();
        let (mut end, mut last_len) = (0, 0);
        for (i, &id) in ids.iter().enumerate() {
            let path = dir.join(pack_name(id));
            let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io(&path))?;
            let last = i + 1 == ids.len();
            // Sealed packs were synced whole before the next one began: their headers are
            // read and only payloads the catalog needs are read and checked (a chunk is checked
            // when it is read). The last two may end in a torn batch: read and checked whole.
            // A sealed pack whose scan finds anything wrong is read and checked whole too.
            let sealed = if i + 2 < ids.len() { scan_sealed::<C>(id, &file).map_err(io(&path))? } else { None };
            if let Some(records) = sealed {
                for (kind, key, loc, payload) in records {
                    apply_to(&mut catalog, kind, key, payload.as_deref(), loc, None);
                }
                files.insert(id, Arc::new(file));
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let mut found = Vec::new();
            let good_end = walk(id, &bytes, &path, last, |f| found.push((f.kind, f.key, f.loc, f.whole)), &mut damage);
            for (kind, key, loc, whole) in found {
                // A record failing its check is located (a read reports it) unless its payload
                // would be believed: versions, recipes and placements must be whole.
                if !whole {
                    damaged.insert(key, (kind, loc));
                    if C::wants_payload(kind) {
                        continue;
                    }
                }
                let payload = C::wants_payload(kind).then(|| &bytes[loc.offset as usize + HEADER..loc.offset as usize + HEADER + loc.len as usize]);
                apply_to(&mut catalog, kind, key, payload, loc, None);
            }
            if last {
                end = good_end;
                last_len = bytes.len() as u64;
                let zeros = bytes[good_end as usize..].iter().all(|&b| b == 0);
                if !zeros {
                    // A torn tail: kept aside, then cut off so appends follow the last whole record.
                    let aside = dir.join(format!("{id:08}.torn-{good_end}"));
                    std::fs::write(&aside, &bytes[good_end as usize..]).map_err(io(&aside))?;
                    file.set_len(good_end).map_err(io(&path))?;
                    file.sync_all().map_err(io(&path))?;
                    last_len = good_end;
                    tracing::warn!(pack = %path.display(), offset = good_end, "a torn tail was cut off and kept in {}", aside.display());
                }
            }
            files.insert(id, Arc::new(file));
        }
        let pack = ids.last().copied().unwrap_or(1);
        let state = WriteState { pack, end, batch: Vec::new(), issued: 0, durable: 0, leading: false, generation: 0, in_flight: 0, failed: None };
        Ok(Self { dir: dir.to_path_buf(), files: RwLock::new(files), catalog: RwLock::new(catalog), state: parking_lot::Mutex::new(state),
            synced: [parking_lot::Condvar::new(), parking_lot::Condvar::new()],
            tail: Mutex::new(Tail { data_end: end, file_len: last_len, ..Tail::new(pack) }),
            damage,
            damaged,
        })
    }

    pub fn pack_path(&self, pack: u32) -> PathBuf {
        self.dir.join(pack_name(pack))
    }

    /// Appends `records` and, under the same lock, those `last` makes (it sees the order
    /// records are written in, e.g. to number versions); returns once all are durable and in
    /// the catalog.
    pub fn append(&self, records: Vec<Record>, last: Option<&mut dyn FnMut() -> Result<Vec<Record>, StoreError>>) -> Result<(), StoreError> {
        let mut framed: Vec<([u8; HEADER], Record)> = records.into_iter().map(|r| (header(&r), r)).collect();
        let mut st = self.state.lock();
        if let Some((_, e)) = &st.failed {
            return Err(StoreError::Io { path: self.dir.clone(), source: std::io::Error::other(format!("an earlier write failed ({e}); reopen the store")) });
        }
        if let Some(last) = last {
            framed.extend(last()?.into_iter().map(|r| (header(&r), r)));
        }
        for (head, record) in framed {
            let len = (HEADER + record.payload.len()) as u64;
            if st.end > 0 && st.end + len > PACK_LIMIT {
                st.pack += 1;
                st.end = 0;
            }
            let loc = Loc { pack: st.pack, offset: st.end, len: record.payload.len() as u32 };
            st.end += len;
            st.batch.push(Pending { loc, head, record });
        }
        st.issued += 1;
        let ticket = st.issued;
        loop {
            if st.durable >= ticket {
                return match &st.failed {
                    Some((first, e)) if *first <= ticket => Err(StoreError::Io { path: self.dir.clone(), source: std::io::Error::other(e.clone()) }),
                    _ => Ok(()),
                };
            }
            if st.leading {
                let waiting_for = if ticket <= st.in_flight { st.generation } else { st.generation + 1 };
                self.synced[(waiting_for % 2) as usize].wait(&mut st);
                continue;
            }
            // Lead: write everything waiting, sync once, publish, wake the others.
            st.leading = true;
            st.generation += 1;
            st.in_flight = st.issued;
            let generation = st.generation;
            let batch = std::mem::take(&mut st.batch);
            let (first, upto, current) = (st.durable + 1, st.issued, st.pack);
            drop(st);
            let written = self.write_batch(&batch, current);
            if written.is_ok() {
                let mut catalog = self.catalog.write().unwrap_or_else(|p| p.into_inner());
                for p in batch {
                    let r = p.record;
                    let payload = C::wants_payload(r.kind).then_some(r.payload.as_slice());
                    apply_to(&mut *catalog, r.kind, r.key, payload, p.loc, r.decoded);
                }
            }
            st = self.state.lock();
            st.leading = false;
            st.durable = upto;
            if let Err(e) = written {
                st.failed = Some((first, e.to_string()));
            }
            self.synced[(generation % 2) as usize].notify_all();
            // Tickets issued meanwhile wait for the next batch: wake one to lead it. (Not "if
            // records wait": an append can add none — an identical put, a seal — and its
            // writer then slept forever.)
            if st.issued > st.durable {
                self.synced[((generation + 1) % 2) as usize].notify_one();
            }
        }
    }

    fn write_batch(&self, batch: &[Pending], current: u32) -> Result<(), StoreError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        for run in batch.chunk_by(|a, b| a.loc.pack == b.loc.pack) {
            let (pack, offset) = (run[0].loc.pack, run[0].loc.offset);
            let written: u64 = run.iter().map(|p| (HEADER + p.record.payload.len()) as u64).sum();
            if pack != tail.pack {
                tail.move_to(pack, &self.files);
            }
            let path = self.pack_path(pack);
            let (file, created) = self.file_for_writing(pack)?;
            let end = offset + written;
            if end > tail.file_len {
                if written <= PREFILL_UP_TO {
                    // Fills grow (64 KiB, doubling to `PREFILL`) while small writes keep
                    // coming: a lone one (a restore after a sweep) waits for a small fill.
                    let target = (end + tail.fill).min(PACK_LIMIT).max(end);
                    tail.fill = (tail.fill * 2).min(PREFILL);
                    file.write_all_at(&vec![0u8; (target - end) as usize], end).map_err(io(&path))?;
                    tail.file_len = target;
                } else {
                    tail.file_len = end;
                    tail.fill = FIRST_FILL;
                }
            }
            write_run_at(&file, run, offset).map_err(io(&path))?;
            file.sync_data().map_err(io(&path))?;
            tail.data_end = tail.data_end.max(end);
            if created {
                // The new file's name must be durable too.
                File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
            }
        }
        if tail.pack != current {
            // Sealed: nothing more goes to it.
            tail.move_to(current, &self.files);
        }
        Ok(())
    }

    fn file_for_writing(&self, pack: u32) -> Result<(Arc<File>, bool), StoreError> {
        if let Some(f) = self.files.read().unwrap_or_else(|p| p.into_inner()).get(&pack) {
            return Ok((Arc::clone(f), false));
        }
        let path = self.pack_path(pack);
        let file = Arc::new(std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io(&path))?);
        self.files.write().unwrap_or_else(|p| p.into_inner()).insert(pack, Arc::clone(&file));
        Ok((file, true))
    }

    /// Looks a key up in the catalog and pins the pack it is in, so compaction cannot take the
    /// file away before it is read.
    pub fn locate(&self, find: impl FnOnce(&C) -> Option<Loc>) -> Option<(Loc, Arc<File>)> {
        let catalog = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        let loc = find(&catalog)?;
        let file = Arc::clone(self.files.read().unwrap_or_else(|p| p.into_inner()).get(&loc.pack)?);
        Some((loc, file))
    }

    /// Reads the payload at `loc` from `file`; `check` also verifies the record's checksum
    /// (chunks skip it: their content hash is checked after decompression instead).
    pub fn read(&self, file: &File, loc: Loc, kind: Kind, key: &[u8; 32], check: bool) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; HEADER + loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(|e| format!("cannot be read at byte {} of {}: {e}", loc.offset, self.pack_path(loc.pack).display()))?;
        let damaged = |what: &str| format!("{what} at byte {} of {}", loc.offset, self.pack_path(loc.pack).display());
        let header = parse_header(&buf).ok_or_else(|| damaged("a damaged record header"))?;
        if header.kind != kind || header.key != *key || header.len != loc.len {
            return Err(damaged("a different record"));
        }
        if check && check_of(kind as u8, key, &buf[HEADER..]) != header.check {
            return Err(damaged("a record failing its checksum"));
        }
        buf.drain(..HEADER);
        Ok(buf)
    }

    /// Every pack id, oldest first.
    pub fn packs(&self) -> Vec<u32> {
        self.files.read().unwrap_or_else(|p| p.into_inner()).keys().copied().collect()
    }

    /// Bytes on disk in packs.
    pub fn disk_bytes(&self) -> u64 {
        let (pack, data_end) = {
            let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            (tail.pack, tail.data_end)
        };
        self.packs().into_iter().map(|p| if p == pack { data_end } else { std::fs::metadata(self.pack_path(p)).map_or(0, |m| m.len()) }).sum()
    }

    /// Closes the current pack: later appends go to a new one, so every existing pack can be
    /// rewritten. Waits for a batch being written.
    pub fn seal(&self) -> Result<(), StoreError> {
        {
            let mut st = self.state.lock();
            if st.end > 0 {
                st.pack += 1;
                st.end = 0;
            }
        }
        // An empty append returns once every batch before it is durable.
        self.append(Vec::new(), None)
    }

    /// Rewrites every sealed pack that holds a record `live` says is no longer needed, or
    /// `GROUP_AT_LEAST` records not yet grouped: the live records are appended again (durably)
    /// — chunks one by one, the rest gathered into groups, each first given the form
    /// `at_rest` prefers (if any) — then the old pack is deleted. `progress` hears of the
    /// bytes of packs looked at and in all; `dropped` hears of each record left behind and
    /// its size. The caller keeps other writers out.
    pub fn compact(
        &self,
        live: &Liveness<'_, C>,
        at_rest: &AtRest<'_>,
        progress: &mut dyn FnMut(u64, u64),
        mut dropped: impl FnMut(Kind, u64),
    ) -> Result<(), StoreError> {
        self.seal()?;
        let current = self.state.lock().pack;
        let sealed: Vec<u32> = self.packs().into_iter().filter(|&p| p < current).collect();
        let size = |p: u32| std::fs::metadata(self.pack_path(p)).map_or(0, |m| m.len());
        let total = sealed.iter().map(|&p| size(p)).sum();
        let mut done = 0;
        for pack in sealed {
            progress(done, total);
            done += size(pack);
            let path = self.pack_path(pack);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let (mut chunks, mut loose, mut grouped) = (Vec::new(), Vec::new(), 0);
            let mut dead = Vec::new();
            let (mut damage, mut bad_groups) = (Vec::new(), Vec::new());
            {
                let catalog = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                walk(
                    pack,
                    &bytes,
                    &path,
                    false,
                    |f| {
                        let size = (HEADER + f.payload.len()) as u64;
                        let members = match (f.kind, f.whole) {
                            (Kind::Group, true) => match members(&f.key, f.payload) {
                                Ok(members) => members,
                                Err(reason) => {
                                    bad_groups.push(Damage { path: path.clone(), offset: f.loc.offset, len: size, reason: format!("a group of records that {reason}") });
                                    return;
                                }
                            },
                            (_, true) => vec![(f.kind, f.key, f.payload.to_vec())],
                            (_, false) => {
                                dead.push((f.kind, f.key, f.loc, size));
                                return;
                            }
                        };
                        for (kind, key, payload) in members {
                            if !live(&catalog, kind, &key, f.loc) {
                                dead.push((kind, key, f.loc, if f.kind == Kind::Group { payload.len() as u64 } else { size }));
                            } else if kind == Kind::Chunk {
                                chunks.push(Record { kind, key, payload, decoded: None });
                            } else {
                                grouped += usize::from(f.kind == Kind::Group && f.payload.first() == Some(&GROUP_ZSTD));
                                loose.push(Record { kind, key, payload, decoded: None });
                            }
                        }
                    },
                    &mut damage,
                );
            }
            damage.extend(bad_groups);
            if dead.is_empty() && damage.is_empty() && loose.len() - grouped < GROUP_AT_LEAST {
                continue;
            }
            // Damaged bytes are not copied; a live record that is damaged stays reported by
            // `verify` until this pack is rewritten — then it is gone, so keep such packs.
            if damage.iter().any(|d| d.reason != "torn tail (a write cut off)") {
                tracing::warn!(pack = %path.display(), "not compacted: it has damaged records (see verify)");
                continue;
            }
            // Recompressing chunks is the work here: spread it over the cores.
            let payloads: Vec<&[u8]> = chunks.iter().map(|r| r.payload.as_slice()).collect();
            let better = crate::cores::map(&payloads, crate::cores::available(), |p| at_rest(Kind::Chunk, p));
            let better: Vec<Option<Vec<u8>>> = better.into_iter().chain(loose.iter().map(|r| at_rest(r.kind, &r.payload))).collect();
            for (r, better) in chunks.iter_mut().chain(loose.iter_mut()).zip(better) {
                if let Some(better) = better {
                    r.payload = better;
                }
            }
            // Groups before chunks: on open, a last record failing its check is taken for a
            // torn write and cut off — better one chunk than a group of versions.
            let mut records = group(loose).map_err(|e| StoreError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
            records.append(&mut chunks);
            if !records.is_empty() {
                self.append(records, None)?;
            }
            {
                let mut catalog = self.catalog.write().unwrap_or_else(|p| p.into_inner());
                for (kind, key, loc, size) in &dead {
                    catalog.forget(*kind, key, *loc);
                    dropped(*kind, *size);
                }
                self.files.write().unwrap_or_else(|p| p.into_inner()).remove(&pack);
            }
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        progress(total, total);
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StoreCatalog;

    /// Regression: an append that adds no records (an identical put, a seal) and queued
    /// behind a sync slept forever once no records were queued with it: the finishing leader
    /// only woke a next one when records were waiting.
    #[test]
    fn an_append_adding_nothing_behind_a_sync_returns() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let journal = Arc::new(Journal::open(dir.path(), StoreCatalog::default()).unwrap_or_else(|e| panic!("{e}")));
        for round in 0..8u8 {
            let records: Vec<Record> = (0..8u8).map(|i| Record { kind: Kind::Chunk, key: *blake3::hash(&[round, i]).as_bytes(), payload: vec![i; 1 << 20], decoded: None }).collect();
            let writer = {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || journal.append(records, None))
            };
            // Queue behind the write while it is under way.
            while !journal.state.lock().leading && !writer.is_finished() {
                std::thread::yield_now();
            }
            let (done, returned) = std::sync::mpsc::channel();
            let empty = {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || {
                    let appended = journal.append(Vec::new(), None);
                    let _ = done.send(());
                    appended
                })
            };
            returned.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| panic!("round {round}: the empty append never returned"));
            assert!(writer.join().is_ok_and(|r| r.is_ok()) && empty.join().is_ok_and(|r| r.is_ok()));
        }
    }
}
