//! A component that is neither a Symphony caret nor a `wasi:cli` command: what a third party
//! might hand someone. `symphony audit` must report its imports and exports and say it matches
//! no Symphony world.

// The generated export glue is `unsafe` by nature (raw ABI entry points).
#![allow(unsafe_code)]

wit_bindgen::generate!({ path: "wit", world: "greeter" });

struct Greeter;

impl exports::acme::greeter::greet::Guest for Greeter {
    fn hello(name: String) -> String {
        acme::greeter::journal::write(&format!("greeted {name}"));
        format!("hello, {name}")
    }
}

export!(Greeter);
