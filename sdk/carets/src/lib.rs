//! The library behind `carets`, shared with `symphony dev`: compiling a caret crate into its
//! wasm32-wasip2 component.

pub mod compile;
