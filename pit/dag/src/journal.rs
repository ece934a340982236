//! The checkpoint journal of a run: an append-only file of length-prefixed, checksummed postcard
//! records. A record is whole or it is not there: a torn tail (a kill mid-write) fails its
//! checksum and is cut off on resume. Writes go out per batch of finished nodes, so a `kill -9`
//! loses nothing already written; the file is fsynced when the run ends.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SYMDAGJ1";
/// Bytes of BLAKE3 kept per record: a torn or flipped record is caught with 2^-64 odds.
const SUM: usize = 8;

/// One entry of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The first record: which graph this run is.
    Begin { run_id: String, fingerprint: [u8; 32], nodes: u32 },
    /// A node finished; its output is kept for later nodes and for the user.
    Done { node: String, output: String, micros: u64, attempts: u32 },
    /// A node failed after all its attempts.
    Failed { node: String, error: String, attempts: u32 },
    /// The run ended (all nodes settled, or cancelled).
    End { ok: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a run journal (bad header)", path.display())]
    NotAJournal { path: PathBuf },
    #[error("{}: record {index} is corrupt ({reason}) and is followed by more data; the journal was left untouched", path.display())]
    Corrupt { path: PathBuf, index: usize, reason: String },
}

/// An open journal being appended to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
}

/// `Record::Done` with borrowed fields: postcard is positional, so this serialises to exactly
/// what `Record::Done` reads back, without copying the id and output per node.
#[derive(Serialize)]
enum DoneRef<'a> {
    #[allow(dead_code)]
    Begin,
    Done { node: &'a str, output: &'a str, micros: u64, attempts: u32 },
}

/// Appends one framed record (length, checksum, postcard payload) to `out`.
fn frame(record: &impl Serialize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4 + SUM]);
    // Serialising plain data into a Vec cannot fail.
    let _ = postcard::to_io(record, &mut *out);
    let payload_len = out.len() - start - 4 - SUM;
    let sum = blake3::hash(&out[start + 4 + SUM..]);
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 4 + SUM].copy_from_slice(&sum.as_bytes()[..SUM]);
}

impl Journal {
    /// Creates a new journal at `path` beginning with `begin`.
    pub fn create(path: &Path, begin: &Record) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new().create_new(true).append(true).open(path).map_err(io)?;
        let mut bytes = MAGIC.to_vec();
        frame(begin, &mut bytes);
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self { path: path.to_path_buf(), file, pending: Vec::new() })
    }

    /// Reads every whole record of the journal at `path`, cuts off a torn tail, and reopens it
    /// for appending.
    pub fn resume(path: &Path) -> Result<(Self, Vec<Record>), JournalError> {
        let (records, valid_len) = read_records(path)?;
        let io = |source| JournalError::Io { path: path.to_path_buf(), source };
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        file.set_len(valid_len).map_err(io)?;
        Ok((Self { path: path.to_path_buf(), file, pending: Vec::new() }, records))
    }

    /// Reads the whole records of a journal without changing it.
    pub fn read(path: &Path) -> Result<Vec<Record>, JournalError> {
        read_records(path).map(|(r, _)| r)
    }

    /// Queues a record; it reaches the file at the next `flush`.
    pub fn push(&mut self, record: &Record) {
        frame(record, &mut self.pending);
    }

    /// Queues a `Record::Done` without copying its text.
    pub fn push_done(&mut self, node: &str, output: &str, micros: u64, attempts: u32) {
        frame(&DoneRef::Done { node, output, micros, attempts }, &mut self.pending);
    }

    /// Writes the queued records in one write.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.pending);
        self.pending.clear();
        r.map_err(|source| JournalError::Io { path: self.path.clone(), source })
    }

    /// Flushes and makes everything durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        self.file.sync_all().map_err(|source| JournalError::Io { path: self.path.clone(), source })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_records(path: &Path) -> Result<(Vec<Record>, u64), JournalError> {
    let io = |source| JournalError::Io { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    File::open(path).map_err(io)?.read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(JournalError::NotAJournal { path: path.to_path_buf() });
    }
    let mut at = MAGIC.len();
    let mut records = Vec::new();
    while at < bytes.len() {
        let head = 4 + SUM;
        let torn = |reason: &str| (reason.to_owned(), at);
        let result: Result<(Record, usize), (String, usize)> = (|| {
            if bytes.len() - at < head {
                return Err(torn("truncated header"));
            }
            let mut len = [0u8; 4];
            len.copy_from_slice(&bytes[at..at + 4]);
            let len = u32::from_le_bytes(len) as usize;
            let body = at + head;
            if bytes.len() - body < len {
                return Err(torn("truncated record"));
            }
            let payload = &bytes[body..body + len];
            if blake3::hash(payload).as_bytes()[..SUM] != bytes[at + 4..at + head] {
                return Err(torn("checksum mismatch"));
            }
            let record = postcard::from_bytes(payload).map_err(|e| (e.to_string(), at))?;
            Ok((record, body + len))
        })();
        match result {
            Ok((record, next)) => {
                records.push(record);
                at = next;
            }
            // A bad record at the very end is a write a crash cut short: drop it. Anywhere
            // else it is damage, and guessing past it could resurrect or lose results.
            Err((reason, start)) => {
                let is_tail = reason.starts_with("truncated") || is_last_frame(&bytes, start, head);
                if is_tail {
                    return Ok((records, start as u64));
                }
                return Err(JournalError::Corrupt { path: path.to_path_buf(), index: records.len(), reason });
            }
        }
    }
    Ok((records, bytes.len() as u64))
}

/// Whether the frame at `start` claims to reach (at least) the end of the file.
fn is_last_frame(bytes: &[u8], start: usize, head: usize) -> bool {
    if bytes.len() - start < 4 {
        return true;
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[start..start + 4]);
    start + head + u32::from_le_bytes(len) as usize >= bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_done_record_frames_exactly_like_the_owned_one() {
        let mut owned = Vec::new();
        frame(&Record::Done { node: "node-7".into(), output: "{\"x\":1}".into(), micros: 1234, attempts: 2 }, &mut owned);
        let mut borrowed = Vec::new();
        frame(&DoneRef::Done { node: "node-7", output: "{\"x\":1}", micros: 1234, attempts: 2 }, &mut borrowed);
        assert_eq!(owned, borrowed);
    }
}
