//! Reads a component's imports and exports straight from its binary (no compilation) and maps
//! them onto the worlds and capabilities they imply.

use crate::manifest::CaretKind;
use serde::Serialize;
use wasmparser::{Encoding, Parser, Payload};

/// What a component binary says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// Top-level import names, e.g. `wasi:filesystem/types@0.2.6`.
    pub imports: Vec<String>,
    /// Top-level export names.
    pub exports: Vec<String>,
    /// The Symphony world and API version it exports, or that it is a plain command.
    pub world: World,
}

/// Which world a component implements, judged from its exports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum World {
    Caret { kind: CaretKind, api: String },
    /// A `wasi:cli/command`: exports `wasi:cli/run`.
    Command,
    /// Matches no Symphony world.
    Unknown,
}

/// What an import lets a component reach, as a capability family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// Always available: stdio, clocks, random, logging, the SDK's types.
    Baseline,
    /// Files, but only inside granted preopens.
    Fs,
    /// Environment variables, but only granted ones.
    Env,
    /// Sockets.
    Net,
    /// Outgoing HTTP.
    Http,
    /// Host processes through `symphony:caret/process`.
    Process,
    /// Other carets and Pit services through `symphony:caret/proxy`.
    Proxy,
    /// An interface this kernel does not provide.
    Unknown,
}

impl Reach {
    /// The capability prefix a manifest must declare before a binary may import this; `None`
    /// where the import is harmless without a grant (preopens and env are empty by default,
    /// and every Rust std component imports them).
    pub fn required_declaration(self) -> Option<&'static str> {
        match self {
            Reach::Net => Some("net"),
            Reach::Http => Some("net.http"),
            Reach::Process => Some("process.exec"),
            Reach::Proxy => Some("caret.call or pit"),
            Reach::Baseline | Reach::Fs | Reach::Env | Reach::Unknown => None,
        }
    }
}

/// Maps one import name onto what it reaches.
pub fn reach_of(import: &str) -> Reach {
    let iface = import.split('@').next().unwrap_or(import);
    match iface {
        i if i.starts_with("wasi:filesystem/") => Reach::Fs,
        "wasi:cli/environment" => Reach::Env,
        i if i.starts_with("wasi:sockets/") => Reach::Net,
        i if i.starts_with("wasi:http/") => Reach::Http,
        "symphony:caret/process" => Reach::Process,
        "symphony:caret/proxy" => Reach::Proxy,
        i if i.starts_with("wasi:cli/")
            || i.starts_with("wasi:io/")
            || i.starts_with("wasi:clocks/")
            || i.starts_with("wasi:random/")
            || matches!(i, "symphony:caret/host" | "symphony:caret/types" | "symphony:caret/ui") =>
        {
            Reach::Baseline
        }
        _ => Reach::Unknown,
    }
}

/// Why a binary could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("this is a core wasm module, not a component: build for wasm32-wasip2 (or run `wasm-tools component new`)")]
    CoreModule,
    #[error("malformed component at byte {offset}: {message}")]
    Malformed { offset: usize, message: String },
}

/// Parses the top level of a component binary.
pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo, InspectError> {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InspectError::Malformed { offset: e.offset(), message: e.message().to_owned() })?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(InspectError::CoreModule);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| InspectError::Malformed { offset: e.offset(), message: e.message().to_owned() })?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| InspectError::Malformed { offset: e.offset(), message: e.message().to_owned() })?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    let world = world_of(&exports);
    Ok(ComponentInfo { imports, exports, world })
}

fn world_of(exports: &[String]) -> World {
    for export in exports {
        let (iface, version) = export.split_once('@').unwrap_or((export.as_str(), ""));
        let kind = match iface {
            "symphony:caret/operator-api" => CaretKind::Operator,
            "symphony:caret/instrument-api" => CaretKind::Instrument,
            "symphony:caret/motif-api" => CaretKind::Motif,
            _ => continue,
        };
        return World::Caret { kind, api: version.to_owned() };
    }
    if exports.iter().any(|e| e.starts_with("wasi:cli/run@")) {
        return World::Command;
    }
    World::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_imports_to_reach() {
        for (import, reach) in [
            ("wasi:filesystem/preopens@0.2.6", Reach::Fs),
            ("wasi:cli/environment@0.2.0", Reach::Env),
            ("wasi:cli/stdout@0.2.6", Reach::Baseline),
            ("wasi:sockets/tcp@0.2.6", Reach::Net),
            ("wasi:http/outgoing-handler@0.2.6", Reach::Http),
            ("symphony:caret/process@0.1.0", Reach::Process),
            ("symphony:caret/proxy@0.1.0", Reach::Proxy),
            ("symphony:caret/host@0.1.0", Reach::Baseline),
            ("acme:secret/backdoor", Reach::Unknown),
        ] {
            assert_eq!(reach_of(import), reach, "{import}");
        }
    }

    #[test]
    fn rejects_garbage_and_core_modules() {
        assert!(matches!(inspect(b"not wasm at all"), Err(InspectError::Malformed { .. })));
        // The smallest valid core module: magic + version 1.
        assert_eq!(inspect(b"\0asm\x01\0\0\0"), Err(InspectError::CoreModule));
        // A component header cut short.
        assert!(matches!(inspect(b"\0asm\x0d\0\x01\0\x07"), Err(InspectError::Malformed { .. })));
    }
}
