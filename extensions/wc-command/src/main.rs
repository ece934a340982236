//! `wc` as a plain `wasi:cli/command`: shows that any WASI tool runs as an operator unchanged.

use std::io::Read;
use std::process::ExitCode;

fn counts(text: &[u8]) -> (usize, usize, usize) {
    let s = String::from_utf8_lossy(text);
    (s.lines().count(), s.split_whitespace().count(), text.len())
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
            eprintln!("wc: stdin: {e}");
            return ExitCode::from(1);
        }
        let (l, w, b) = counts(&buf);
        println!("{l} {w} {b}");
        return ExitCode::SUCCESS;
    }
    let mut status = ExitCode::SUCCESS;
    for file in &files {
        match std::fs::read(file) {
            Ok(bytes) => {
                let (l, w, b) = counts(&bytes);
                println!("{l} {w} {b} {file}");
            }
            Err(e) => {
                eprintln!("wc: {file}: {e}");
                status = ExitCode::from(1);
            }
        }
    }
    status
}
