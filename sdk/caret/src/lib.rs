//! Guest SDK for Symphony carets: implement one plain trait per kind and export it with one macro.
//!
//! A caret enables exactly one kind feature (`operator`, `instrument` or `motif`), implements
//! [`Caret`] plus that kind's trait, and calls [`export!`]:
//!
//! ```ignore
//! use symphony_caret::{Caret, Error, OpInfo, Operator};
//!
//! #[derive(Default)]
//! struct Shout;
//! impl Caret for Shout {}
//! impl Operator for Shout {
//!     fn describe(&self) -> Vec<OpInfo> { vec![OpInfo::new("shout", "upper-cases its input")] }
//!     fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
//!         match op {
//!             "shout" => Ok(input.to_uppercase()),
//!             other => Err(Error::not_found(format!("no op `{other}`"))),
//!         }
//!     }
//! }
//! symphony_caret::export!(Shout);
//! ```
//!
//! One instance of the caret type lives per component instance; the kernel never re-enters an
//! instance, so `&mut self` is sound.

#[cfg(any(
    all(feature = "operator", feature = "instrument"),
    all(feature = "operator", feature = "motif"),
    all(feature = "instrument", feature = "motif"),
))]
compile_error!(
    "symphony-caret: enable exactly one of the features `operator`, `instrument`, `motif` \
     (build carets one package at a time, e.g. `cargo xtask carets`, so features do not unify)"
);
#[cfg(not(any(feature = "operator", feature = "instrument", feature = "motif")))]
compile_error!("symphony-caret: enable one of the features `operator`, `instrument`, `motif`");

// The generated code names its runtime through the public crate path, as caret crates see it.
extern crate self as symphony_caret;

/// Raw bindings for the selected world. Caret code should not need them.
#[doc(hidden)]
pub mod bindings {
    #[cfg(feature = "operator")]
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "operator",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "symphony_caret::bindings",
        runtime_path: "symphony_caret::__wit_bindgen_rt",
    });
    #[cfg(feature = "instrument")]
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "instrument",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "symphony_caret::bindings",
        runtime_path: "symphony_caret::__wit_bindgen_rt",
    });
    #[cfg(feature = "motif")]
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "motif",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "symphony_caret::bindings",
        runtime_path: "symphony_caret::__wit_bindgen_rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as __wit_bindgen_rt;

mod adapter;
pub mod host;
pub mod vdom;

pub use bindings::symphony::caret::types::{Error, ErrorCode, HealthStatus as Health, OpInfo};
#[cfg(feature = "instrument")]
pub use bindings::exports::symphony::caret::instrument_api::ModelCard;
#[cfg(feature = "motif")]
pub use bindings::symphony::caret::ui::{Attr, ThemeToken, UiEvent, Vnode as VNode};

#[doc(hidden)]
pub use adapter::Adapter;

/// The API version this SDK builds carets against.
pub const API_VERSION: &str = "0.1.0";

impl OpInfo {
    /// Describes an op by name and one line of text.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self { name: name.into(), description: description.into() }
    }
}

impl Error {
    fn with(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), capability: None }
    }
    /// The input did not parse or made no sense for the op.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::with(ErrorCode::InvalidInput, message)
    }
    /// The op or something it names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::with(ErrorCode::NotFound, message)
    }
    /// The op ran and failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::with(ErrorCode::Failed, message)
    }
    /// The caret does not offer this.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::with(ErrorCode::Unsupported, message)
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Denied => "denied",
            ErrorCode::Failed => "failed",
            ErrorCode::Unsupported => "unsupported",
        })
    }
}

/// What every caret is: lifecycle hooks with sensible defaults.
///
/// Override [`Caret::save_state`] and [`Caret::restore_state`] to keep state across a hot-swap.
pub trait Caret: Default + 'static {
    /// Serialises the state that should survive a hot-swap. Default: nothing.
    fn save_state(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// Takes the state a previous version saved. Default: ignores it.
    fn restore_state(&mut self, _state: Vec<u8>) -> Result<(), Error> {
        Ok(())
    }
    /// Reports health to the pool. Default: always healthy.
    fn health(&mut self) -> Health {
        Health::Ok
    }
}

/// A workflow utility: named ops over JSON (or plain) text.
#[cfg(feature = "operator")]
pub trait Operator: Caret {
    /// The ops this caret offers.
    fn describe(&self) -> Vec<OpInfo>;
    /// Runs `op` on `input`.
    fn call(&mut self, op: &str, input: &str) -> Result<String, Error>;
}

/// An AI model or model client. Stream partial output with [`host::emit`].
#[cfg(feature = "instrument")]
pub trait Instrument: Caret {
    /// The ops this caret offers.
    fn describe(&self) -> Vec<OpInfo>;
    /// What model this is.
    fn model_info(&self) -> ModelCard;
    /// Runs `op` on `input`.
    fn call(&mut self, op: &str, input: &str) -> Result<String, Error>;
}

/// UI: a theme and/or panels rendered as virtual DOM (see [`vdom::Builder`]).
#[cfg(feature = "motif")]
pub trait Motif: Caret {
    /// The ops this caret offers through `call`. Default: none.
    fn describe(&self) -> Vec<OpInfo> {
        Vec::new()
    }
    /// Runs `op` on `input`. Default: unsupported.
    fn call(&mut self, op: &str, _input: &str) -> Result<String, Error> {
        Err(Error::unsupported(format!("this motif has no op `{op}`")))
    }
    /// Design tokens of the theme. Default: none (not a theme).
    fn theme(&self) -> Vec<ThemeToken> {
        Vec::new()
    }
    /// Names of the panels this motif renders. Default: none.
    fn panels(&self) -> Vec<String> {
        Vec::new()
    }
    /// Renders `panel` for the JSON `state`.
    fn render(&mut self, panel: &str, _state: &str) -> Result<Vec<VNode>, Error> {
        Err(Error::not_found(format!("no panel `{panel}`")))
    }
    /// Handles an event on `panel` and returns its next JSON state. Default: state unchanged.
    fn handle_event(&mut self, _panel: &str, state: &str, _event: UiEvent) -> Result<String, Error> {
        Ok(state.to_owned())
    }
}

/// Exports a caret type as the component's implementation of its world.
///
/// The type must implement [`Caret`] and the trait of the enabled kind feature. The exports
/// exist only when building for wasm32: their names are not valid native symbols, and a host
/// build (`cargo test` of the caret's own logic) has nothing to export.
#[macro_export]
macro_rules! export {
    ($caret:ty) => {
        #[cfg(target_arch = "wasm32")]
        type __SymphonyCaretExport = $crate::Adapter<$caret>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_world!(__SymphonyCaretExport with_types_in $crate::bindings);
    };
}
