//! `pit/terminal`: shells on real PTYs (portable-pty) for the IDE's terminal panel: `open
//! {cols, rows}` → `{terminal, pid}`, `write {terminal, data}`, `resize {terminal, cols,
//! rows}`, `close {terminal}`. Output and the exit status reach `symphony serve` clients
//! through `subscribe {topic: "terminal", terminal}`; a client's terminals close with it.
//! A subscriber first gets the output so far (the last `BACKLOG` bytes), so a shell's first
//! prompt, written before anyone listened, is not lost.

use portable_pty::{native_pty_system, CommandBuilder, MasterPty, PtySize};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use symphony_kernel::{CallError, ErrorCode, Principal, Service};

/// What a terminal says: output (UTF-8, never split inside a character) or its end.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TermEvent {
    Output { data: String },
    Exit { code: Option<u32> },
}

/// How much recent output a new subscriber is sent first.
const BACKLOG: usize = 64 << 10;

/// A terminal's listeners and recent output, under one lock so a new listener sees every byte
/// exactly once: the backlog, then what follows.
#[derive(Default)]
struct Audience {
    listeners: Vec<mpsc::Sender<TermEvent>>,
    backlog: String,
}

impl Audience {
    fn send(&mut self, event: &TermEvent) {
        if let TermEvent::Output { data } = event {
            self.backlog.push_str(data);
            if self.backlog.len() > BACKLOG {
                let mut cut = self.backlog.len() - BACKLOG;
                while !self.backlog.is_char_boundary(cut) {
                    cut += 1;
                }
                self.backlog.drain(..cut);
            }
        }
        self.listeners.retain(|l| l.send(event.clone()).is_ok());
    }
}

struct Terminal {
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    killer: Box<dyn portable_pty::ChildKiller + Send + Sync>,
    audience: Arc<Mutex<Audience>>,
}

pub struct TerminalService {
    workspace: PathBuf,
    next: AtomicU64,
    terminals: Mutex<HashMap<u64, Terminal>>,
}

impl std::fmt::Debug for TerminalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalService").field("workspace", &self.workspace).finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Open {
    #[serde(default = "cols")]
    cols: u16,
    #[serde(default = "rows")]
    rows: u16,
}

fn cols() -> u16 {
    80
}
fn rows() -> u16 {
    24
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Write_ {
    terminal: u64,
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resize {
    terminal: u64,
    cols: u16,
    rows: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Id {
    terminal: u64,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CallError {
    CallError::new(ErrorCode::Failed, format!("{what}: {e}"))
}

fn parse<'a, T: Deserialize<'a>>(op: &str, payload: &'a str) -> Result<T, CallError> {
    serde_json::from_str(payload).map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("pit/terminal {op}: {e}")))
}

/// Splits off a trailing incomplete UTF-8 sequence to prepend to the next chunk.
fn take_text(pending: &mut Vec<u8>) -> String {
    let cut = match std::str::from_utf8(pending) {
        Ok(_) => pending.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => pending.len(),
    };
    let rest = pending.split_off(cut);
    let text = String::from_utf8_lossy(pending).into_owned();
    *pending = rest;
    text
}

impl TerminalService {
    pub fn new(workspace: PathBuf) -> Self {
        Self { workspace, next: AtomicU64::new(1), terminals: Mutex::new(HashMap::new()) }
    }

    fn open(self: &Arc<Self>, o: Open) -> Result<serde_json::Value, CallError> {
        let pair = native_pty_system()
            .openpty(PtySize { rows: o.rows, cols: o.cols, pixel_width: 0, pixel_height: 0 })
            .map_err(|e| failed("opening a PTY", e))?;
        let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_owned());
        let mut cmd = CommandBuilder::new(&shell);
        cmd.cwd(&self.workspace);
        cmd.env("TERM", "xterm-256color");
        let mut child = pair.slave.spawn_command(cmd).map_err(|e| failed(&format!("starting {shell}"), e))?;
        drop(pair.slave);
        let pid = child.process_id();
        let killer = child.clone_killer();
        let mut reader = pair.master.try_clone_reader().map_err(|e| failed("reading the PTY", e))?;
        let writer = pair.master.take_writer().map_err(|e| failed("writing the PTY", e))?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let audience: Arc<Mutex<Audience>> = Arc::default();
        let send = {
            let audience = Arc::clone(&audience);
            move |event: TermEvent| audience.lock().unwrap_or_else(|p| p.into_inner()).send(&event)
        };
        let service = Arc::downgrade(self);
        std::thread::Builder::new()
            .name(format!("terminal-{id}"))
            .spawn(move || {
                let (mut buf, mut pending) = ([0u8; 8192], Vec::new());
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            pending.extend_from_slice(&buf[..n]);
                            let data = take_text(&mut pending);
                            if !data.is_empty() {
                                send(TermEvent::Output { data });
                            }
                        }
                    }
                }
                let code = child.wait().ok().map(|s| s.exit_code());
                send(TermEvent::Exit { code });
                if let Some(service) = service.upgrade() {
                    service.terminals.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                }
            })
            .map_err(|e| failed("starting the reader", e))?;
        let term = Terminal { master: pair.master, writer, killer, audience };
        self.terminals.lock().unwrap_or_else(|p| p.into_inner()).insert(id, term);
        Ok(json!({ "terminal": id, "pid": pid, "shell": shell }))
    }

    fn with<T>(&self, id: u64, f: impl FnOnce(&mut Terminal) -> Result<T, CallError>) -> Result<T, CallError> {
        let mut terminals = self.terminals.lock().unwrap_or_else(|p| p.into_inner());
        let term = terminals.get_mut(&id).ok_or_else(|| CallError::new(ErrorCode::NotFound, format!("no terminal {id} (it may have exited)")))?;
        f(term)
    }

    /// Events of terminal `id`: its recent output, then everything from now on; `None` when
    /// there is no such terminal.
    pub fn listen(&self, id: u64) -> Option<mpsc::Receiver<TermEvent>> {
        let (tx, rx) = mpsc::channel();
        self.with(id, |t| {
            let mut audience = t.audience.lock().unwrap_or_else(|p| p.into_inner());
            if !audience.backlog.is_empty() {
                let _ = tx.send(TermEvent::Output { data: audience.backlog.clone() });
            }
            audience.listeners.push(tx);
            Ok(())
        })
        .ok()?;
        Some(rx)
    }

    /// Kills terminal `id`'s shell (its reader then reports the exit and forgets it).
    pub fn close(&self, id: u64) -> Result<(), CallError> {
        self.with(id, |t| t.killer.kill().map_err(|e| failed("closing the terminal", e)))
    }
}

/// The service as registered with the kernel (it needs an `Arc` of itself for `open`).
#[derive(Debug)]
pub struct TerminalProxy(pub Arc<TerminalService>);

impl Service for TerminalProxy {
    fn name(&self) -> &str {
        "terminal"
    }

    fn call(&self, _principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let s = &self.0;
        let payload = if payload.trim().is_empty() { "{}" } else { payload };
        let answer = match op {
            "open" => s.open(parse(op, payload)?)?,
            "write" => {
                let w: Write_ = parse(op, payload)?;
                s.with(w.terminal, |t| {
                    t.writer.write_all(w.data.as_bytes()).and_then(|()| t.writer.flush()).map_err(|e| failed("writing to the terminal", e))
                })?;
                json!(true)
            }
            "resize" => {
                let r: Resize = parse(op, payload)?;
                s.with(r.terminal, |t| {
                    t.master
                        .resize(PtySize { rows: r.rows, cols: r.cols, pixel_width: 0, pixel_height: 0 })
                        .map_err(|e| failed("resizing the terminal", e))
                })?;
                json!(true)
            }
            "close" => {
                s.close(parse::<Id>(op, payload)?.terminal)?;
                json!(true)
            }
            other => {
                return Err(CallError::new(ErrorCode::NotFound, format!("pit/terminal has no op `{other}`; it has open, write, resize, close")));
            }
        };
        Ok(answer.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{take_text, Audience, TermEvent, BACKLOG};

    #[test]
    fn the_backlog_keeps_the_latest_output_on_character_boundaries() {
        let mut audience = Audience::default();
        for _ in 0..BACKLOG {
            audience.send(&TermEvent::Output { data: "é".to_owned() });
        }
        audience.send(&TermEvent::Output { data: "end".to_owned() });
        assert!(audience.backlog.len() <= BACKLOG);
        assert!(audience.backlog.ends_with("éend"));
    }

    #[test]
    fn a_character_split_across_reads_is_kept_whole() {
        let bytes = "é→".as_bytes();
        let mut pending = bytes[..1].to_vec();
        assert_eq!(take_text(&mut pending), "");
        pending.extend_from_slice(&bytes[1..3]);
        assert_eq!(take_text(&mut pending), "é");
        pending.extend_from_slice(&bytes[3..]);
        assert_eq!(take_text(&mut pending), "→");
        assert!(pending.is_empty());
    }
}
