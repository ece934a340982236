//! Exit codes, so scripts can tell a denial from a missing caret from a crash.

use std::process::ExitCode;
use symphony_kernel::{CallError, CommandError, ErrorCode, KernelError};

/// Anything not covered below.
pub const FAILURE: u8 = 1;
/// A capability was missing.
pub const DENIED: u8 = 3;
/// No such caret, service, op or file.
pub const NOT_FOUND: u8 = 4;
/// Bad input: manifest, capability, payload, component.
pub const INVALID: u8 = 5;
/// The caret trapped, timed out or ran out of memory.
pub const CARET_FAILED: u8 = 6;
/// Stdout was closed by its reader (`symphony … | head`): what a shell reports for SIGPIPE.
pub const BROKEN_PIPE: i32 = 141;

/// Ends the process quietly when stdout's reader has gone, as Unix tools do, instead of the
/// panic `println!` raises. Signals are left alone: the kernel writes to pipes and sockets
/// whose other end may go, and must get an error there, not die.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied());
        if message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe")) {
            std::process::exit(BROKEN_PIPE);
        }
        default(info);
    }));
}

pub fn for_call(e: &CallError) -> u8 {
    match e.code {
        ErrorCode::Denied => DENIED,
        ErrorCode::NotFound => NOT_FOUND,
        ErrorCode::InvalidInput | ErrorCode::Unsupported => INVALID,
        ErrorCode::Timeout | ErrorCode::OutOfMemory | ErrorCode::Trap => CARET_FAILED,
        ErrorCode::Failed | ErrorCode::Busy | ErrorCode::Internal => FAILURE,
    }
}

fn for_kernel(e: &KernelError) -> u8 {
    match e {
        KernelError::Call(c) => for_call(c),
        KernelError::NotInstalled(_) | KernelError::NoPrevious(_) | KernelError::ComponentMissing { .. } => NOT_FOUND,
        KernelError::NotRequested { .. } => DENIED,
        KernelError::Manifest(_)
        | KernelError::Capability(_)
        | KernelError::InvalidComponent { .. }
        | KernelError::WorldMismatch { .. }
        | KernelError::ApiMismatch { .. }
        | KernelError::UndeclaredImports { .. }
        | KernelError::Config { .. }
        | KernelError::Corrupt { .. } => INVALID,
        KernelError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => NOT_FOUND,
        KernelError::Io { .. } | KernelError::Engine(_) => FAILURE,
    }
}

/// The exit code for an error that reached `main`.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<KernelError>() {
            return ExitCode::from(for_kernel(k));
        }
        if let Some(c) = cause.downcast_ref::<CallError>() {
            return ExitCode::from(for_call(c));
        }
        if cause.downcast_ref::<symphony_kernel::capability::CapabilityParseError>().is_some() {
            return ExitCode::from(INVALID);
        }
        if let Some(i) = cause.downcast_ref::<symphony_kernel::package_index::IndexError>() {
            use symphony_kernel::package_index::IndexError as I;
            return ExitCode::from(match i {
                I::UnknownCaret(_) | I::UnknownVersion { .. } => NOT_FOUND,
                I::Unsigned { .. } => DENIED,
                I::AlreadyPublished { .. } | I::Unsatisfiable(_) => INVALID,
                I::Package(_) | I::Kernel(_) => FAILURE,
            });
        }
        if let Some(p) = cause.downcast_ref::<symphony_kernel::package::PackageError>() {
            use symphony_kernel::package::PackageError as P;
            return ExitCode::from(match p {
                P::Unsigned { .. } | P::Untrusted { .. } => DENIED,
                P::Malformed { .. } | P::Tampered { .. } | P::BadSignature { .. } => INVALID,
                P::Kernel(k) => for_kernel(k),
            });
        }
        if let Some(c) = cause.downcast_ref::<CommandError>() {
            return ExitCode::from(match c {
                CommandError::Kernel(k) => for_kernel(k),
                CommandError::Trap { .. } => CARET_FAILED,
            });
        }
    }
    ExitCode::from(FAILURE)
}
