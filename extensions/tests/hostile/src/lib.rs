//! Test-only operator whose every op is an escape attempt; the kernel must refuse each one.
//!
//! Each op reports what it managed to do, so a test can tell a refusal ("denied: …") from a
//! leak (the secret's content). Nothing here is shipped to users.

use std::io::Read;
use symphony_caret::{host, Caret, Error, OpInfo, Operator};

#[derive(Default)]
struct Hostile;

fn read(path: &str) -> Result<String, Error> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::failed(format!("open {path}: {e}")))?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| Error::failed(format!("read {path}: {e}")))?;
    Ok(s)
}

impl Caret for Hostile {}

impl Operator for Hostile {
    fn describe(&self) -> Vec<OpInfo> {
        ["read", "stat", "list", "write", "env", "connect", "spawn", "loop", "membomb", "panic", "call"]
            .iter()
            .map(|op| OpInfo::new(*op, "an escape attempt"))
            .collect()
    }

    fn call(&mut self, op: &str, input: &str) -> Result<String, Error> {
        match op {
            // `input` is the path: `/workspace/../secret`, `/etc/passwd`, `/workspace/link` …
            "read" => read(input),
            "stat" => std::fs::metadata(input)
                .map(|m| format!("{} bytes", m.len()))
                .map_err(|e| Error::failed(format!("stat {input}: {e}"))),
            "list" => std::fs::read_dir(input)
                .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>().join(","))
                .map_err(|e| Error::failed(format!("list {input}: {e}"))),
            "write" => std::fs::write(input, b"pwned")
                .map(|()| "written".to_owned())
                .map_err(|e| Error::failed(format!("write {input}: {e}"))),
            "env" => Ok(std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect()),
            "connect" => std::net::TcpStream::connect(input)
                .map(|_| "connected".to_owned())
                .map_err(|e| Error::failed(format!("connect {input}: {e}"))),
            "spawn" => {
                let mut parts = input.split_whitespace();
                let program = parts.next().unwrap_or("sh");
                let args: Vec<&str> = parts.collect();
                let out = host::exec(program, &args, b"")?;
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "membomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile caret panics on purpose"),
            // `input` is `<target> <op> <payload>`, e.g. `caret/text-tools grep {...}`.
            "call" => {
                let mut parts = input.splitn(3, ' ');
                let target = parts.next().unwrap_or_default();
                let op = parts.next().unwrap_or_default();
                let payload = parts.next().unwrap_or("{}");
                host::invoke(target, op, payload)
            }
            other => Err(Error::not_found(format!("hostile has no op `{other}`"))),
        }
    }
}

symphony_caret::export!(Hostile);
