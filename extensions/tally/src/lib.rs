//! tally: counts named events. Its counts are its state: `save-state` hands them to the next
//! version on a hot-swap and `restore-state` takes them, so `symphony dev` can replace the
//! component under a running IDE without resetting them. Each answer names the build that gave
//! it (`build`), which is how the swap tests tell versions apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use symphony_caret::{Caret, Error, OpInfo, Operator};

/// Which build answered: the crate version, plus `TALLY_BUILD` when set at compile time.
const BUILD: &str = match option_env!("TALLY_BUILD") {
    Some(b) => b,
    None => env!("CARGO_PKG_VERSION"),
};

#[derive(Default, Serialize, Deserialize)]
pub struct Tally {
    total: u64,
    counts: BTreeMap<String, u64>,
}

impl Caret for Tally {
    fn save_state(&mut self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn restore_state(&mut self, state: Vec<u8>) -> Result<(), Error> {
        // A build made to fail its hand-over, for the tests of refused swaps.
        if option_env!("TALLY_BROKEN_RESTORE").is_some() {
            return Err(Error::failed("this build refuses every state"));
        }
        *self = serde_json::from_slice(&state).map_err(|e| Error::invalid_input(format!("tally state: {e}")))?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct TickInput {
    #[serde(default)]
    name: Option<String>,
}

impl Operator for Tally {
    fn describe(&self) -> Vec<OpInfo> {
        vec![
            OpInfo::new("tick", "counts one event (optionally `{\"name\": …}`); answers {n, name_n, build}"),
            OpInfo::new("counts", "every count so far, with the total"),
            OpInfo::new("reset", "forgets every count"),
        ]
    }

    fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
        match op {
            "tick" => {
                let name = if input.trim().is_empty() {
                    None
                } else {
                    serde_json::from_str::<TickInput>(input).map_err(|e| Error::invalid_input(format!("tick: {e}")))?.name
                };
                self.total += 1;
                let name_n = name.map(|n| {
                    let c = self.counts.entry(n).or_default();
                    *c += 1;
                    *c
                });
                Ok(serde_json::json!({ "n": self.total, "name_n": name_n, "build": BUILD }).to_string())
            }
            "counts" => Ok(serde_json::json!({ "total": self.total, "counts": self.counts, "build": BUILD }).to_string()),
            "reset" => {
                *self = Tally::default();
                Ok("0".to_owned())
            }
            other => Err(Error::not_found(format!("tally has no op `{other}`"))),
        }
    }
}

symphony_caret::export!(Tally);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_a_save_and_restore() {
        let mut a = Tally::default();
        a.call("tick", r#"{"name":"save"}"#).ok();
        a.call("tick", "").ok();
        let state = a.save_state();
        let mut b = Tally::default();
        assert!(b.restore_state(state).is_ok());
        let answer: serde_json::Value = serde_json::from_str(&b.call("tick", r#"{"name":"save"}"#).unwrap_or_default()).unwrap_or_default();
        assert_eq!((answer["n"].as_u64(), answer["name_n"].as_u64()), (Some(3), Some(2)));
        assert!(b.restore_state(b"not json".to_vec()).is_err());
    }
}
