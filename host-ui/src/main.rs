//! `symphony`: the command-line face of the kernel — install, grant, call and audit carets,
//! run WASI commands, serve the IDE (`start`, `serve`), and the developer loop (`dev`).

use clap::Parser;
use std::process::ExitCode;
use symphony::{cli, exit};

fn main() -> ExitCode {
    exit::quiet_on_closed_stdout();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("error: {e:#}");
            code
        }
    }
}
