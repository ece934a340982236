//! Integration tests of the kernel against real carets built from `extensions/` by
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `cargo xtask carets`. One test binary, so wasmtime is linked once.

mod it {
    pub mod carets;
    pub mod command;
    pub mod hostile;
    pub mod registry;
    pub mod support;
    pub mod swap;
}
