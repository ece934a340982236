//! Audits filesystem denials. Preopens alone refuse escapes silently (and an absolute path
//! outside every preopen never even reaches the host), so the kernel mounts an empty, read-only
//! sentinel directory at `/` and wraps `open-at`: every open outside the granted scopes, and
//! every `..`/symlink escape refused by cap-std, becomes a typed error and an audit record.

use crate::host::CaretState;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};

/// The WASI filesystem version wasmtime-wasi defines; guests importing any 0.2.x match it.
/// `tests/hostile.rs` fails if this drifts from wasmtime-wasi (the wrapper would not apply).
const WASI_FILESYSTEM: &str = "0.2.12";

/// Where the sentinel is mounted in the guest.
pub(crate) const SENTINEL_MOUNT: &str = "/";

/// The grant that would have allowed an open: the scope a guest path falls in, or just the
/// family when the path is in no scope at all.
fn needed_capability(guest_path: Option<&str>, writing: bool) -> String {
    let family = if writing { "fs.write" } else { "fs.read" };
    let scope = guest_path.and_then(|p| {
        let first = p.trim_start_matches('/').split('/').next().unwrap_or_default();
        ["workspace", "data", "cache"].into_iter().find(|s| *s == first)
    });
    match scope {
        Some(scope) => format!("{family}:{scope}"),
        None => family.to_owned(),
    }
}

type OpenAtParams = (Resource<Descriptor>, PathFlags, String, OpenFlags, DescriptorFlags);

/// Replaces `get-directories` (to learn which handle is the sentinel) and `descriptor.open-at`
/// (to audit what is refused) in a linker that already has WASI.
pub(crate) fn wrap(linker: &mut Linker<CaretState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut preopens = linker.instance(&format!("wasi:filesystem/preopens@{WASI_FILESYSTEM}"))?;
    preopens.func_wrap("get-directories", |mut store: StoreContextMut<'_, CaretState>, (): ()| {
        let state = store.data_mut();
        let dirs = state.filesystem().get_directories()?;
        if state.sentinel_mounted {
            state.sentinel = dirs.iter().find(|(_, mount)| mount == SENTINEL_MOUNT).map(|(d, _)| d.rep());
        }
        Ok((dirs,))
    })?;
    let mut types = linker.instance(&format!("wasi:filesystem/types@{WASI_FILESYSTEM}"))?;
    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, CaretState>, (fd, path_flags, path, oflags, flags): OpenAtParams| {
            let state = store.data_mut();
            let outside = state.sentinel == Some(fd.rep());
            let writing = flags.contains(DescriptorFlags::WRITE)
                || oflags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE);
            let result: Result<Resource<Descriptor>, ErrorCode> = if outside {
                // Nothing under the sentinel is ever served, not even its empty directory.
                Err(ErrorCode::Access)
            } else {
                match HostDescriptor::open_at(&mut state.filesystem(), fd, path_flags, path.clone(), oflags, flags) {
                    Ok(d) => Ok(d),
                    Err(e) => Err(e.downcast()?.into()),
                }
            };
            if let Err(code) = &result {
                let reason = match code {
                    _ if outside => Some("outside every granted scope"),
                    ErrorCode::NotPermitted => Some("escapes its scope (`..` or a symlink) or needs write access"),
                    ErrorCode::Access | ErrorCode::ReadOnly => Some("needs write access to a read-only scope"),
                    _ => None,
                };
                if let Some(reason) = reason {
                    let shown = if outside { format!("/{}", path.trim_start_matches('/')) } else { path.clone() };
                    let capability = needed_capability(outside.then_some(shown.as_str()), writing);
                    let principal = format!("caret:{}", state.caret);
                    state.audit.denied(&principal, Some(&state.caret), &capability, &shown, Some(reason.to_owned()));
                    state.note_denial(capability);
                }
            }
            Ok((result,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
