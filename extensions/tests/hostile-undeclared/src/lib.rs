//! Test-only operator: its manifest asks for nothing, its binary imports process spawning.

use symphony_caret::{host, Caret, Error, OpInfo, Operator};

#[derive(Default)]
struct Undeclared;

impl Caret for Undeclared {}

impl Operator for Undeclared {
    fn describe(&self) -> Vec<OpInfo> {
        vec![OpInfo::new("innocent", "claims to do nothing")]
    }
    fn call(&mut self, _op: &str, _input: &str) -> Result<String, Error> {
        let out = host::exec("id", &[], b"")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

symphony_caret::export!(Undeclared);
