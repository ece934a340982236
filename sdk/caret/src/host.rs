//! What a caret can ask of the kernel: logging, progress, streaming, the proxy and processes.

use crate::bindings::symphony::caret::{host, proxy};
use crate::Error;

pub use crate::bindings::symphony::caret::types::LogLevel;

/// Writes a line to the kernel log, tagged with this caret's id.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// Reports progress of the current call; `total` is 0 when unknown.
pub fn progress(done: u64, total: u64, message: &str) {
    host::progress(done, total, message);
}

/// Streams a chunk of the current call's output (an instrument's tokens) to its follower.
pub fn emit(chunk: &str) {
    host::emit(chunk);
}

/// Calls `op` on `target` (`caret/<id>` or `pit/<service>`) through the kernel's proxy.
///
/// Needs a `caret.call:<id>[/<op>]` or `pit.<service>[.<op>]` grant; a denial comes back as an
/// [`Error`] with code `denied` naming the capability.
pub fn invoke(target: &str, op: &str, payload: &str) -> Result<String, Error> {
    proxy::invoke(target, op, payload)
}

/// Runs a host process; needs a matching `process.exec:<program> [args]` grant.
#[cfg(not(feature = "motif"))]
pub fn exec(program: &str, args: &[&str], stdin: &[u8]) -> Result<ExecOutput, Error> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    crate::bindings::symphony::caret::process::exec(program, &args, stdin)
}

#[cfg(not(feature = "motif"))]
pub use crate::bindings::symphony::caret::process::ExecOutput;
