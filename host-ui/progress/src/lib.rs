//! Progress for Symphony's command-line tools: a bar on a terminal, plain lines otherwise.
//!
//! Long work (building, packing, publishing, installing) reports steps or bytes here. When
//! stderr is a terminal the user sees an `indicatif` bar; when it is a pipe or a CI log they
//! see one stable line per step (`pack [2/4] hashing 1.2 MiB`), which tests and scripts read.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An animated bar on stderr.
    Bar,
    /// One line per step on stderr.
    Lines,
    /// Nothing (e.g. `--json`, where stdout must stay machine-readable and stderr quiet).
    Off,
}

impl Mode {
    /// A bar when stderr is a terminal, lines otherwise; `quiet` turns it off.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// A piece of work made of a known number of steps.
#[derive(Debug)]
pub struct Steps {
    label: String,
    total: u64,
    done: std::cell::Cell<u64>,
    bar: Option<ProgressBar>,
    mode: Mode,
}

impl Steps {
    /// Starts `label` with `total` steps.
    pub fn new(mode: Mode, label: &str, total: u64) -> Steps {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{pos}/{len}] {bar:24} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Steps { label: label.to_owned(), total, done: std::cell::Cell::new(0), bar, mode }
    }

    /// Begins the next step, described by `message`.
    pub fn step(&self, message: &str) {
        let n = (self.done.get() + 1).min(self.total.max(1));
        self.done.set(n);
        match &self.bar {
            Some(bar) => {
                bar.set_position(n - 1);
                bar.set_message(message.to_owned());
            }
            None if self.mode == Mode::Lines => eprintln!("{} [{n}/{}] {message}", self.label, self.total),
            None => {}
        }
    }

    /// Corrects the total once the work's size is known (e.g. the dependencies to install).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Runs `f` with the bar hidden, for a child process that draws its own output (cargo).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Prints a line above the bar (or as is).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None if self.mode == Mode::Off => {}
            None => eprintln!("{line}"),
        }
    }

    /// Ends the work; the bar disappears so the command's result line stands alone.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Formats a byte count for people: `812 B`, `14.2 KiB`, `3.1 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Compared as it will be printed, so 1,048,575 bytes reads `1.0 MiB`, not `1024.0 KiB`.
    while (value * 10.0).round() >= 10240.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn bytes_pick_the_unit_that_keeps_the_number_small() {
        for (n, shown) in [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB"), (3 << 30, "3.0 GiB")] {
            assert_eq!(bytes(n), shown, "{n}");
        }
    }

    #[test]
    fn a_size_just_under_the_next_unit_does_not_print_as_1024_of_this_one() {
        for (n, shown) in [((1 << 20) - 1, "1.0 MiB"), ((1 << 20) - 60, "1023.9 KiB"), ((1 << 30) - 1, "1.0 GiB")] {
            assert_eq!(bytes(n), shown, "{n}");
        }
    }
}
