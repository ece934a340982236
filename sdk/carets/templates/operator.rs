//! {{name}}: a Symphony operator. Ops take text (or JSON) and return text.

use symphony_caret::{Caret, Error, OpInfo, Operator};

#[derive(Default)]
pub struct {{Type}} {
    calls: u64,
}

impl Caret for {{Type}} {
    // Keep the call count across hot-swaps.
    fn save_state(&mut self) -> Vec<u8> {
        self.calls.to_le_bytes().to_vec()
    }
    fn restore_state(&mut self, state: Vec<u8>) -> Result<(), Error> {
        let bytes: [u8; 8] = state.as_slice().try_into().map_err(|_| Error::invalid_input("state is not 8 bytes"))?;
        self.calls = u64::from_le_bytes(bytes);
        Ok(())
    }
}

impl Operator for {{Type}} {
    fn describe(&self) -> Vec<OpInfo> {
        vec![
            OpInfo::new("upper", "upper-cases its input"),
            OpInfo::new("calls", "how many calls this instance has answered"),
        ]
    }

    fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
        self.calls += 1;
        match op {
            "upper" => Ok(input.to_uppercase()),
            "calls" => Ok(self.calls.to_string()),
            other => Err(Error::not_found(format!("{{name}} has no op `{other}`"))),
        }
    }
}

symphony_caret::export!({{Type}});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_cases_and_counts() {
        let mut caret = {{Type}}::default();
        assert_eq!(caret.call("upper", "hi").ok().as_deref(), Some("HI"));
        assert_eq!(caret.call("calls", "").ok().as_deref(), Some("2"));
        assert!(caret.call("nope", "").is_err());
    }
}
