//! Host bindings of the caret WIT API, one module per API version (Zed's `since_vX.Y.Z`):
//! when the API changes, the old version's module stays and its carets keep loading.

/// API versions this kernel loads, oldest first.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0"];

/// Bindings for `symphony:caret@0.1.0` (`wit/since_v0.1.0`).
pub mod since_v0_1_0 {
    /// The `operator` world; its import interfaces are shared by the other two worlds.
    pub mod operator {
        wasmtime::component::bindgen!({
            path: "../wit/since_v0.1.0",
            world: "operator",
        });
    }

    /// The `instrument` world.
    pub mod instrument {
        wasmtime::component::bindgen!({
            path: "../wit/since_v0.1.0",
            world: "instrument",
            with: {
                "symphony:caret/types": super::operator::symphony::caret::types,
                "symphony:caret/host": super::operator::symphony::caret::host,
                "symphony:caret/proxy": super::operator::symphony::caret::proxy,
                "symphony:caret/process": super::operator::symphony::caret::process,
            },
        });
    }

    /// The `motif` world.
    pub mod motif {
        wasmtime::component::bindgen!({
            path: "../wit/since_v0.1.0",
            world: "motif",
            with: {
                "symphony:caret/types": super::operator::symphony::caret::types,
                "symphony:caret/host": super::operator::symphony::caret::host,
                "symphony:caret/proxy": super::operator::symphony::caret::proxy,
            },
        });
    }

    pub use operator::symphony::caret::types::{Error, ErrorCode, HealthStatus, LogLevel, OpInfo};
}
