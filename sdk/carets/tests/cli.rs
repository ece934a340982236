//! The `carets` binary end to end. One test binary; modules share `support`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli {
    mod call_tests;
    mod new_build;
    mod package;
    mod registry;
    pub mod support;
}
