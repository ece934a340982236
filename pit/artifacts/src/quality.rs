//! An artifact's quality score: a number in [0, 1] and the factors it is made of, each with
//! its value, weight and what it measured — stored with every version, so the Conductor can
//! learn from the factors and not only the total. The score is the weighted mean of the factors.
//!
//! What is measured depends on the artifact's class (from a JSON/TOML `meta.mime`, else
//! `meta.kind`, else the name's extension, else a look at the bytes):
//!
//! | class | factor (weight) | 1.0 when | 0.0 when |
//! | --- | --- | --- | --- |
//! | code | `balanced` (3) | every `()[]{}` outside strings and comments closes | they do not |
//! | code | `size` (1) | 10–2,000 lines | empty, or far past 2,000 (tapers to 0 at 20,000) |
//! | code | `todo_density` (1) | no TODO/FIXME/XXX | ≥ 5 per 100 lines |
//! | code | `tests` (2) | a test outside literals and comments (`#[test]`, `#[cfg(test)]`, `@Test`; `it(`, `test(`, `describe(` as whole words; `def test_…(`, `func Test…(`) | none |
//! | code | `comments` (1) | 5–40 % of lines are comments | none, or all |
//! | text | `structure` (2) | headings, paragraphs and lists (each a third) | a single block |
//! | text | `length` (1) | 50–5,000 words | empty (tapers outside the range) |
//! | text | `sentences` (1) | mean sentence 8–30 words | much shorter or longer |
//! | data | `parses` (3) | JSON or TOML that parses | it does not |
//! | data | `size` (1) | non-empty, ≤ 10 MB | empty |
//! | binary | `size` (1) | non-empty | empty |

use serde::{Deserialize, Serialize};
use wide::u8x16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    pub name: String,
    /// In [0, 1].
    pub value: f64,
    pub weight: f64,
    /// What was measured, e.g. `3 TODOs in 120 lines`.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// In [0, 1]: the weighted mean of the factors.
    pub score: f64,
    /// `code`, `text`, `data` or `binary`.
    pub class: String,
    pub factors: Vec<Factor>,
}

const CODE: &[&str] = &["rs", "py", "ts", "tsx", "js", "jsx", "mjs", "go", "c", "h", "cc", "cpp", "hpp", "java", "kt", "swift", "rb", "sh", "cs", "scala", "zig", "lua"];
const TEXT: &[&str] = &["md", "markdown", "txt", "rst", "adoc", "org"];
const DATA: &[&str] = &["json", "toml", "jsonl", "ndjson"];

/// Which class an artifact is assessed as: by kind, then mime type, then name, then bytes.
pub fn class_of(name: &str, kind: &str, mime: &str, bytes: &[u8]) -> &'static str {
    if mime.contains("json") || mime.contains("toml") {
        return "data";
    }
    match kind {
        "code" => return "code",
        "text" | "report" | "doc" => return "text",
        "data" | "json" | "config" => return "data",
        _ => {}
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    if CODE.contains(&ext.as_str()) {
        "code"
    } else if TEXT.contains(&ext.as_str()) {
        "text"
    } else if DATA.contains(&ext.as_str()) {
        "data"
    } else if std::str::from_utf8(bytes).is_ok() {
        "text"
    } else {
        "binary"
    }
}

/// `1 line`, `2 lines`: a factor's detail is read by people too.
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn factor(name: &str, value: f64, weight: f64, detail: String) -> Factor {
    Factor { name: name.to_owned(), value: value.clamp(0.0, 1.0), weight, detail }
}

/// 1 inside `[lo, hi]`, falling linearly to 0 at `zero_below` and `zero_above`.
fn band(x: f64, zero_below: f64, lo: f64, hi: f64, zero_above: f64) -> f64 {
    if x < lo {
        if lo <= zero_below { 0.0 } else { ((x - zero_below) / (lo - zero_below)).clamp(0.0, 1.0) }
    } else if x > hi {
        ((zero_above - x) / (zero_above - hi)).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Up to 64 bytes of text as four 16-byte vectors (`wide`: SSE2 on x86-64, NEON on aarch64,
/// plain arrays elsewhere), zero-padded: no predicate here matches a zero byte.
struct Block([u8x16; 4]);

impl Block {
    #[inline(always)]
    fn new(bytes: &[u8]) -> Self {
        let whole: [u8; 64] = <[u8; 64]>::try_from(bytes).unwrap_or_else(|_| {
            let mut padded = [0u8; 64];
            padded[..bytes.len().min(64)].copy_from_slice(&bytes[..bytes.len().min(64)]);
            padded
        });
        Self(std::array::from_fn(|k| u8x16::new(std::array::from_fn(|i| whole[16 * k + i]))))
    }

    /// Bit `i` set: byte `i` matches `hit` (lanes of `0xff` where a byte matches, else 0).
    /// One compare and one `movemask` per 16 bytes. The scalar form this replaced (a 0/1 byte
    /// each, gathered eight at a time by a multiply) made the whole score ~15 % slower.
    #[inline(always)]
    fn mask(&self, hit: impl Fn(u8x16) -> u8x16) -> u64 {
        self.0.iter().enumerate().fold(0, |mask, (k, &v)| mask | (u64::from(hit(v).move_mask() as u16) << (16 * k)))
    }
}

/// Lanes equal to `c`.
#[inline(always)]
fn eq(v: u8x16, c: u8) -> u8x16 {
    v.cmp_eq(u8x16::splat(c))
}

/// What `scan_code` looks at besides brackets: quotes, `/` and `#` (a literal or comment may
/// start there; `#[test]`) and `@` (`@Test`). `"`/`#` differ only in bit 0, `'`/`/` only in
/// bit 3.
#[inline(always)]
fn openers(v: u8x16) -> u8x16 {
    eq(v & u8x16::splat(0xfe), b'"') | eq(v | u8x16::splat(0x08), b'/') | eq(v, b'`') | eq(v, b'@')
}

/// Brackets: `[`/`{` and `]`/`}` differ only in bit 5, `(`/`)` only in bit 0.
#[inline(always)]
fn brackets(v: u8x16) -> u8x16 {
    let lower = v | u8x16::splat(0x20);
    eq(lower, b'{') | eq(lower, b'}') | eq(v & u8x16::splat(0xfe), b'(')
}

/// ASCII whitespace, as `u8::is_ascii_whitespace`.
#[inline(always)]
fn whitespace(v: u8x16) -> u8x16 {
    eq(v, b' ') | eq(v, b'\t') | eq(v, b'\n') | eq(v, b'\r') | eq(v, 0x0c)
}

/// Whether brackets balance (the first reason they do not), skipping string literals and
/// `//`, `#` and `/* */` comments, and whether the code has tests: a test attribute
/// (`#[test]`, `#[cfg(test)]`, `@Test`), or a call or definition of one (`it(`, `test(`,
/// `describe(` as whole words, `def test_…(`, `func Test…(`), outside literals and comments.
///
/// Works on bytes: every byte it looks for is ASCII, and UTF-8 never puts an ASCII byte inside
/// another character. Brackets and the bytes that may open a literal or comment are found 64
/// at a time as bit masks (code is ~95 % other bytes); the brackets before the next opener
/// are matched in a loop of their own, and only the few openers take the many-way branch.
/// Lines are only counted when there is an error to report. Test markers
/// used to be eight substring searches over the whole text, which also took `split(` for `it(`.
fn scan_code(text: &str) -> (Result<(), String>, bool) {
    let b = text.as_bytes();
    let line_of = |at: usize| 1 + memchr::memchr_iter(b'\n', &b[..at]).count();
    let end_of_line = |from: usize| memchr::memchr(b'\n', &b[from..]).map_or(b.len(), |p| from + p);
    let mut stack: Vec<(u8, usize)> = Vec::new();
    // After the first unbalanced bracket, the scan goes on for tests only.
    let mut unbalanced: Option<String> = None;
    let mut tests = false;
    let calls = TestCalls::new(b);
    let mut block = 0;
    'blocks: while block < b.len() {
        let block_end = (block + 64).min(b.len());
        let v = Block::new(&b[block..block_end]);
        let (mut opens, mut pairs) = (v.mask(openers), v.mask(brackets));
        loop {
            // The brackets before the next opener (all of them if there is none).
            let opener = opens.trailing_zeros();
            let mut run = pairs & bits(0, opener);
            while run != 0 {
                let i = block + run.trailing_zeros() as usize;
                let c = b[i];
                // `)` `]` `}` are the brackets whose low two bits are 01; each is one or two
                // past its opening bracket.
                if c & 3 != 1 {
                    stack.push((c, i));
                    tests = tests || (c == b'(' && calls.at(b, i));
                } else if unbalanced.is_none() {
                    let want = if c == b')' { b'(' } else { c - 2 };
                    match stack.pop() {
                        Some((open, _)) if open == want => {}
                        Some((open, at)) => unbalanced = Some(format!("`{}` on line {} closes `{}` from line {}", c as char, line_of(i), open as char, line_of(at))),
                        None => unbalanced = Some(format!("`{}` on line {} closes nothing", c as char, line_of(i))),
                    }
                }
                run &= run - 1;
            }
            if unbalanced.is_some() && tests {
                break 'blocks;
            }
            if opens == 0 {
                break;
            }
            let i = block + opener as usize;
            let c = b[i];
            // Where to look next: past the literal or comment starting here, if it is one.
            let next = match c {
                b'\'' => {
                    // A character literal (`'x'`, `'\n'`, `'\u{1F600}'`), not a lifetime (`'a`).
                    let rest = &b[i + 1..b.len().min(i + 14)];
                    if rest.first() == Some(&b'\\') {
                        rest.iter().skip(1).position(|&d| d == b'\'').map_or(i + 1, |close| i + close + 3)
                    } else if let Some(&lead) = rest.first() {
                        let width = match lead {
                            0x00..=0x7f => 1,
                            0xc0..=0xdf => 2,
                            0xe0..=0xef => 3,
                            _ => 4,
                        };
                        if rest.get(width) == Some(&b'\'') { i + width + 2 } else { i + 1 }
                    } else {
                        i + 1
                    }
                }
                // Only a literal closed on the same line counts as a string.
                b'"' | b'`' => memchr::memchr(c, &b[i + 1..end_of_line(i + 1)]).map_or(i + 1, |close| i + close + 2),
                b'/' if b.get(i + 1) == Some(&b'/') => end_of_line(i),
                b'#' if matches!(b.get(i + 1), Some(b' ' | b'!')) => end_of_line(i),
                b'/' if b.get(i + 1) == Some(&b'*') => memchr::memmem::find(&b[i + 2..], b"*/").map_or(b.len(), |p| i + p + 4),
                b'#' | b'@' => {
                    tests = tests || [b"#[test]".as_slice(), b"#[cfg(test)]", b"@Test"].iter().any(|m| b[i..].starts_with(m));
                    i + 1
                }
                _ => i + 1,
            };
            if next >= block_end {
                block = next;
                continue 'blocks;
            }
            let rest = u64::MAX << (next - block);
            (opens, pairs) = (opens & rest, pairs & rest);
        }
        block = block_end;
    }
    let balanced = match (unbalanced, stack.pop()) {
        (Some(why), _) => Err(why),
        (None, None) => Ok(()),
        (None, Some((open, at))) => Err(format!("`{}` from line {} is never closed", open as char, line_of(at))),
    };
    (balanced, tests)
}

/// Which tests a `(` can be the call or definition of, in a text.
struct TestCalls {
    /// The text holds `def test_` or `func Test`, so a name before a `(` is worth reading.
    defined: bool,
}

impl TestCalls {
    fn new(b: &[u8]) -> Self {
        Self { defined: [b"def test_".as_slice(), b"func Test"].iter().any(|m| memchr::memmem::find(b, m).is_some()) }
    }

    /// Whether the `(` at `paren` calls or defines a test: `it(`, `test(`, `describe(` (whole
    /// words), `def test_…(` or `func Test…(` (Go's rule: not `Test` and a lowercase letter).
    /// Most texts have no definitions, and then only a `(` after `t` or `e` is looked at.
    #[inline(always)]
    fn at(&self, b: &[u8], paren: usize) -> bool {
        let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        let before = &b[..paren];
        let called = matches!(before.last(), Some(b't' | b'e'))
            && [b"it".as_slice(), b"test", b"describe"].iter().any(|w| before.ends_with(w) && !before[..before.len() - w.len()].last().is_some_and(word));
        if called || !self.defined {
            return called;
        }
        let start = before.iter().rposition(|c| !word(c)).map_or(0, |p| p + 1);
        let (before, name) = (&b[..start], &b[start..paren]);
        (name.starts_with(b"test_") && before.ends_with(b"def ")) || (name.starts_with(b"Test") && !name.get(4).is_some_and(u8::is_ascii_lowercase) && before.ends_with(b"func "))
    }
}

/// What the code factors count: lines holding a TODO marker.
const TODO_MARKERS: [&str; 3] = ["TODO", "FIXME", "XXX"];

/// How many lines hold a TODO marker.
fn todo_lines(text: &str) -> usize {
    let b = text.as_bytes();
    let mut lines: Vec<usize> = TODO_MARKERS.iter().flat_map(|m| memchr::memmem::find_iter(b, m.as_bytes()).map(|at| memchr::memrchr(b'\n', &b[..at]).map_or(0, |p| p + 1))).collect();
    lines.sort_unstable();
    lines.dedup();
    lines.len()
}

/// A line without its leading spaces and tabs.
fn indent_trimmed(line: &[u8]) -> &[u8] {
    let indent = line.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &line[indent..]
}

/// The lines of `b` where `str::lines` would split them (a final `\n` ends the last line
/// rather than starting an empty one; a `\r` before a `\n` stays on the line, which nothing
/// here looks at), for a text's headings and lists. Found with the `memchr` crate's SIMD
/// search: `str::lines` uses the standard library's word-at-a-time one, about twice as slow
/// here. (A bit mask of newlines per 64 bytes was no faster: ~100 ms for 300 MB either way.)
fn lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', b).map(Some).chain([None]).filter_map(move |newline| {
        let from = start;
        match newline {
            Some(at) => {
                start = at + 1;
                Some(&b[from..at])
            }
            None => (from < b.len()).then(|| &b[from..]),
        }
    })
}

/// How many lines a text has (as `str::lines` counts them) and how many of them are comments:
/// after their indent they start with `//`, `#`, `/*`, `*` or `--`. 64 bytes at a time, all
/// as bit masks: each line's first byte past its indent (a line start that is blank, added to
/// the mask of blanks, carries to the end of its run) against the mask of bytes that begin a
/// comment. Walking the lines one by one cost ~85 ms for 230 MB of code; visiting each line's
/// first byte, a mispredicted branch on most lines.
fn comment_lines(b: &[u8]) -> (usize, usize) {
    let (mut lines, mut comments) = (0, 0);
    // Bit 0 of the next block starts a line (or continues one's indent).
    let mut carried = 1u64;
    for (k, block) in b.chunks(64).enumerate() {
        let valid = bits(0, block.len() as u32);
        let v = Block::new(block);
        let newline = v.mask(|v| eq(v, b'\n'));
        let blank = v.mask(|v| eq(v, b' ') | eq(v, b'\t'));
        let starts = ((newline << 1) | carried) & valid;
        let (past_indent, overflow) = (starts & blank).overflowing_add(blank);
        let firsts = (past_indent | starts) & !blank & valid;
        // `#` and `*` begin a comment alone, `/` before `/` or `*`, `-` before `-`: the byte
        // after bit 63 is the next block's first.
        let after = b.get(k * 64 + 64).copied().unwrap_or(0);
        let follows = |hit: u64, c: bool| (hit >> 1) | (u64::from(c) << 63);
        let slash = v.mask(|v| eq(v, b'/'));
        let star = v.mask(|v| eq(v, b'*'));
        let dash = v.mask(|v| eq(v, b'-'));
        let opens = v.mask(|v| eq(v, b'#')) | star | (slash & follows(slash | star, after == b'/' || after == b'*')) | (dash & follows(dash, after == b'-'));
        comments += (firsts & opens).count_ones() as usize;
        lines += newline.count_ones() as usize;
        carried = (newline >> 63) | u64::from(overflow);
    }
    (lines + usize::from(b.last().is_some_and(|&c| c != b'\n')), comments)
}

fn assess_code(text: &str) -> Vec<Factor> {
    let (n_lines, comments) = comment_lines(text.as_bytes());
    let n = n_lines.max(1) as f64;
    let (balanced, has_tests) = scan_code(text);
    let balanced = match balanced {
        Ok(()) => factor("balanced", 1.0, 3.0, "every bracket closes".to_owned()),
        Err(why) => factor("balanced", 0.0, 3.0, why),
    };
    let todos = todo_lines(text);
    let per_100 = todos as f64 * 100.0 / n;
    let ratio = comments as f64 / n;
    vec![
        balanced,
        factor("size", band(n_lines as f64, 0.0, 10.0, 2000.0, 20000.0), 1.0, count(n_lines, "line")),
        factor("todo_density", 1.0 - per_100 / 5.0, 1.0, format!("{todos} TODO/FIXME/XXX in {}", count(n_lines, "line"))),
        factor("tests", if has_tests { 1.0 } else { 0.0 }, 2.0, if has_tests { "test markers present" } else { "no tests" }.to_owned()),
        factor("comments", band(ratio, 0.0, 0.05, 0.40, 1.0), 1.0, format!("{:.0} % comment lines", ratio * 100.0)),
    ]
}

fn assess_text(text: &str) -> Vec<Factor> {
    let mut headings = false;
    let mut lists = false;
    for line in lines(text.as_bytes()) {
        headings |= line.starts_with(b"#") || line.starts_with(b"==") || line.starts_with(b"--");
        let t = indent_trimmed(line);
        let digits = t.iter().take_while(|c| c.is_ascii_digit()).count();
        lists |= t.starts_with(b"- ") || t.starts_with(b"* ") || (digits > 0 && t[digits..].starts_with(b". "));
        if headings && lists {
            break;
        }
    }
    let counts = count_prose(text.as_bytes());
    let (paragraphs, words) = (counts.paragraphs, counts.words);
    let structure = [headings, lists, paragraphs >= 2].iter().filter(|b| **b).count() as f64 / 3.0;
    let mean = words as f64 / counts.sentences.max(1) as f64;
    vec![
        factor(
            "structure",
            structure,
            2.0,
            format!("{}headings, {}lists, {paragraphs} paragraphs", if headings { "" } else { "no " }, if lists { "" } else { "no " }),
        ),
        factor("length", band(words as f64, 0.0, 50.0, 5000.0, 50000.0), 1.0, count(words, "word")),
        factor("sentences", band(mean, 2.0, 8.0, 30.0, 80.0), 1.0, format!("{mean:.1} words per sentence")),
    ]
}

/// Paragraphs (blocks between blank lines), words (runs of non-whitespace) and sentences
/// (stretches ended by `.`, `!` or `?` that hold anything else but whitespace) of a text.
struct ProseCounts {
    paragraphs: usize,
    words: usize,
    sentences: usize,
}

/// Bits `lo..hi` of a block's mask (`lo <= hi <= 64`).
fn bits(lo: u32, hi: u32) -> u64 {
    let below = |n: u32| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    below(hi) & !below(lo)
}

/// How many of a block's `ends` close a stretch holding any `content` bit (`open`: the stretch
/// open before the block does); `open` becomes whether the stretch after the last end does.
fn ends_holding(mut ends: u64, content: u64, open: &mut bool) -> usize {
    let (mut count, mut from) = (0, 0);
    while ends != 0 {
        let at = ends.trailing_zeros();
        count += usize::from(*open || content & bits(from, at) != 0);
        *open = false;
        (from, ends) = (at + 1, ends & (ends - 1));
    }
    *open |= content & bits(from, 64) != 0;
    count
}

/// One pass over the bytes (ASCII whitespace; any other byte is part of a word), 64 at a time:
/// each block's whitespace, newlines and stops become bit masks, words are counted from the
/// masks, and only paragraph and sentence ends (a few per line) are visited one by one. The
/// byte-at-a-time loop this replaces ran ~25 dependent operations a byte.
fn count_prose(b: &[u8]) -> ProseCounts {
    let mut counts = ProseCounts { paragraphs: 0, words: 0, sentences: 0 };
    // Carried from one block to the next: whether the byte before was whitespace (the text's
    // start counts as such) or a newline, and whether the open paragraph and sentence hold
    // anything yet.
    let (mut after_space, mut after_newline) = (true, false);
    let (mut paragraph_has_text, mut sentence_has_word) = (false, false);
    for block in b.chunks(64) {
        let last = block.len() as u32 - 1;
        let v = Block::new(block);
        let space = v.mask(whitespace);
        let newline = v.mask(|v| eq(v, b'\n'));
        let stop = v.mask(|v| eq(v, b'.') | eq(v, b'!') | eq(v, b'?'));
        let text = !space & bits(0, last + 1);
        counts.words += (text & ((space << 1) | u64::from(after_space))).count_ones() as usize;
        // A second newline in a row ends a paragraph, if it held text; a stop ends a sentence,
        // if it held a word (anything but whitespace and stops).
        counts.paragraphs += ends_holding(newline & ((newline << 1) | u64::from(after_newline)), text, &mut paragraph_has_text);
        counts.sentences += ends_holding(stop, text & !stop, &mut sentence_has_word);
        (after_space, after_newline) = (space >> last & 1 == 1, newline >> last & 1 == 1);
    }
    counts.paragraphs += usize::from(paragraph_has_text);
    counts.sentences += usize::from(sentence_has_word);
    counts
}

fn assess_data(name: &str, mime: &str, text: &str) -> Vec<Factor> {
    // Checked, not kept: `IgnoredAny` builds no tree of values to drop again.
    use serde::de::IgnoredAny;
    let parses = if name.ends_with(".toml") || mime.contains("toml") {
        toml::from_str::<IgnoredAny>(text).map(|_| ()).map_err(|e| e.message().to_owned())
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || mime.contains("ndjson") {
        text.lines().filter(|l| !l.trim().is_empty()).enumerate().try_for_each(|(i, l)| {
            serde_json::from_str::<IgnoredAny>(l).map(|_| ()).map_err(|e| format!("line {}: {e}", i + 1))
        })
    } else {
        serde_json::from_str::<IgnoredAny>(text)
            .map(|_| ())
            .or_else(|json| toml::from_str::<IgnoredAny>(text).map(|_| ()).map_err(|_| json.to_string()))
    };
    vec![
        match parses {
            Ok(()) => factor("parses", 1.0, 3.0, "parses".to_owned()),
            Err(why) => factor("parses", 0.0, 3.0, why),
        },
        factor("size", if text.is_empty() || text.len() > 10 << 20 { 0.0 } else { 1.0 }, 1.0, count(text.len(), "byte")),
    ]
}

/// Scores an artifact's bytes.
pub fn assess(name: &str, kind: &str, mime: &str, bytes: &[u8]) -> Quality {
    let class = class_of(name, kind, mime, bytes);
    let utf8 = std::str::from_utf8(bytes);
    let binary = utf8.is_err();
    let factors = match (class, utf8) {
        ("code", Ok(text)) => assess_code(text),
        ("text", Ok(text)) => assess_text(text),
        ("data", Ok(text)) => assess_data(name, mime, text),
        _ => vec![factor("size", if bytes.is_empty() { 0.0 } else { 1.0 }, 1.0, count(bytes.len(), "byte"))],
    };
    let weight: f64 = factors.iter().map(|f| f.weight).sum();
    let score = if weight > 0.0 { factors.iter().map(|f| f.value * f.weight).sum::<f64>() / weight } else { 0.0 };
    Quality { score: (score * 1000.0).round() / 1000.0, class: if binary { "binary" } else { class }.to_owned(), factors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(q: &Quality, name: &str) -> f64 {
        q.factors.iter().find(|f| f.name == name).map_or(f64::NAN, |f| f.value)
    }

    #[test]
    fn brackets_outside_strings_and_comments() {
        for ok in ["fn a() { let s = \"(\"; }", "// ) in a comment\nfn b() {}", "/* { */ x[0]", "let c = '}';", "fn f<'a>(x: &'a str) {}", "let e = 'é'; let n = '\\n'; let u = '\\u{1F600}'; (x)", "/* (\n ) */ {\n}", "# ) a shell comment\n(a)", "let t = `(`;"] {
            assert_eq!(scan_code(ok).0, Ok(()), "{ok}");
        }
        for (bad, why) in [("fn a() {", "never closed"), ("x)", "closes nothing"), ("(]", "closes `(`"), ("/* a */\n\n)", "line 3"), ("\"unclosed (\n]", "on line 2 closes"), ("/* never closed (", "")] {
            assert!(scan_code(bad).0.is_err_and(|e| e.contains(why)) != why.is_empty(), "{bad}");
        }
    }

    /// The scan looks at 64 bytes at a time: literals, comments and brackets that straddle
    /// one of those blocks read the same as anywhere else.
    #[test]
    fn brackets_across_the_scan_blocks() {
        let cases = [
            ("let s = \"a ( string that is long enough to cross a block boundary )\"; (x)", Ok(())),
            ("// a comment ( that runs on past the sixty-fourth byte of its block\n{}", Ok(())),
            ("/* a block comment { that also runs on across the boundary */ [y]", Ok(())),
            ("let c = '\\u{1F600}'; let d = '('; f(c, d)", Ok(())),
            ("fn f() { g(\"}\") }", Ok(())),
            ("fn f() { g(\"}\")", Err("`{` from line 1 is never closed")),
            ("x[0] = (1, 2];", Err("`]` on line 1 closes `(` from line 1")),
        ];
        for pad in 0..140 {
            for (code, expected) in &cases {
                let text = format!("{}{code}", " ".repeat(pad));
                assert_eq!(scan_code(&text).0, expected.map_err(str::to_owned), "{pad} spaces, then {code}");
            }
        }
    }

    /// Lines and comment lines, against their definition on `str::lines`, also across the
    /// 64-byte blocks the count works in.
    #[test]
    fn comment_lines_match_their_definition() {
        let cases = ["", "\n", "x", "// a\nfn f() {}\n", "  # shell\n\t/* c */\n   * star\n-- sql\n- not\n/ not\n", "code\r\n   //\r\n", "    \n  \t  \n//", "a\n\n\n--"];
        for pad in [0, 1, 30, 62, 63, 64, 65, 100, 127, 128, 129] {
            for case in cases {
                for text in [format!("{}{case}", " ".repeat(pad)), format!("{}\n{case}", "x".repeat(pad)), format!("{case}{}", " ".repeat(pad))] {
                    let comments = text.lines().map(|l| l.trim_start_matches([' ', '\t'])).filter(|t| ["//", "#", "/*", "*", "--"].iter().any(|p| t.starts_with(p))).count();
                    assert_eq!(comment_lines(text.as_bytes()), (text.lines().count(), comments), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn code_is_scored_by_its_factors() {
        let good = "//! A counter.\n\n/// Adds one.\npub fn inc(x: u32) -> u32 {\n    x + 1\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        assert_eq!(super::inc(1), 2);\n    }\n}\n";
        let q = assess("src/lib.rs", "", "", good.as_bytes());
        assert_eq!(q.class, "code");
        assert_eq!((value(&q, "balanced"), value(&q, "tests"), value(&q, "todo_density")), (1.0, 1.0, 1.0));
        let bad = "fn broken( {\n// TODO one\n// FIXME two\n";
        let b = assess("x.rs", "", "", bad.as_bytes());
        assert_eq!((value(&b, "balanced"), value(&b, "tests")), (0.0, 0.0));
        assert!(value(&b, "todo_density") < 0.01);
        assert_eq!(todo_lines("a TODO\nb\nTODO FIXME XXX\n"), 2, "lines, not matches");
        assert_eq!(todo_lines("XXXX\n// FIXME\nfn f() {}\n"), 2);
        assert!(q.score > 0.9 && b.score < 0.4, "{} {}", q.score, b.score);
    }

    /// Test markers are whole words outside literals and comments: `split(` is no `it(`.
    #[test]
    fn tests_are_found_by_their_markers() {
        let with = [
            "#[cfg(test)]\nmod tests {}",
            "#[test]\nfn adds() {}",
            "describe(\"x\", () => it(\"y\"))",
            "test('adds', () => {})",
            "  it(\"works\", async () => {})",
            "def test_adds(self):\n    pass",
            "func TestAdds(t *testing.T) {}",
            "class A {\n  @Test\n  void adds() {}\n}",
            "let s = \"(\"; it(s)",
        ];
        let without = [
            "let parts = s.split(','); wait(); init(x); latest(v);",
            "// it( in a comment\nfn f() {}",
            "let s = \"test(\";",
            "/* #[test] */ fn f() {}",
            "def testing_helper(x):\n    pass",
            "func Tester(t int) {}",
            "fn contest() {} fn f(x: u8) {}",
            "",
        ];
        for code in with {
            assert!(scan_code(code).1, "{code}");
        }
        for code in without {
            assert!(!scan_code(code).1, "{code}");
        }
        // An unbalanced bracket before the test does not hide it.
        let (balanced, tests) = scan_code("x)\n#[test]\nfn t() {}");
        assert_eq!((balanced, tests), (Err("`)` on line 1 closes nothing".to_owned()), true));
    }

    #[test]
    fn prose_counts_match_their_definitions() {
        for text in ["", "One.", "e.g. this, and 3.14! Then?\n\n\nNext para...\n", "  a  b\n\n\n\n c. d", "# T\r\n\r\nx y z", "...!?", "no terminator here", "Intro\n  - one\n==\n", "1. first\n\t12. twelfth", "not - a list\n#"] {
            // The count runs 64 bytes at a time: the same texts again across block edges.
            for pad in [0, 59, 62, 63, 64, 65, 127] {
                let padded = format!("{}{text}\n\n{}. {text}", " ".repeat(pad), "x".repeat(pad));
                let c = count_prose(padded.as_bytes());
                let paragraphs = padded.split("\n\n").filter(|p| !p.trim().is_empty()).count();
                let sentences = padded.split(['.', '!', '?']).filter(|s| s.split_whitespace().count() > 0).count();
                assert_eq!((c.paragraphs, c.words, c.sentences), (paragraphs, padded.split_whitespace().count(), sentences), "{padded:?}");
            }
            let c = count_prose(text.as_bytes());
            let split: Vec<&str> = text.lines().collect();
            let ours: Vec<&str> = lines(text.as_bytes()).map(|l| std::str::from_utf8(l).unwrap_or_default().trim_end_matches('\r')).collect();
            assert_eq!(ours, split, "lines of {text:?}");
            let paragraphs = text.split("\n\n").filter(|p| !p.trim().is_empty()).count();
            let words = text.split_whitespace().count();
            let sentences = text.split(['.', '!', '?']).filter(|s| s.split_whitespace().count() > 0).count();
            assert_eq!((c.paragraphs, c.words, c.sentences), (paragraphs, words, sentences), "{text:?}");
        }
    }

    #[test]
    fn text_data_and_binary() {
        let doc = "# Guide\n\nThis guide shows how the store keeps every version of a file. It is short.\n\n- first point\n- second point\n\nAnother paragraph follows here with a few more words in it.\n";
        let t = assess("guide.md", "", "", doc.as_bytes());
        assert_eq!(t.class, "text");
        assert_eq!(value(&t, "structure"), 1.0);
        let flat = assess("note", "text", "", b"hi");
        assert!(flat.score < t.score);
        assert_eq!(value(&assess("a.json", "", "", b"{\"a\": 1}"), "parses"), 1.0);
        let broken = assess("a.json", "", "", b"{\"a\": ");
        assert_eq!(value(&broken, "parses"), 0.0);
        assert!(broken.factors[0].detail.contains("EOF"), "{:?}", broken.factors);
        assert_eq!(value(&assess("Cargo.toml", "", "", b"[package]\nname = \"x\"\n"), "parses"), 1.0);
        // What does not parse is found without building the values: syntax, duplicate keys
        // and tables, trailing JSON, a bad line of NDJSON.
        for (name, mime, bad) in [
            ("Cargo.toml", "", "[package]\nname = \"x\"\nname = \"y\"\n"),
            ("Cargo.toml", "", "[a]\nx = 1\n[a]\ny = 2\n"),
            ("Cargo.toml", "", "[package\nname = 1\n"),
            ("a.json", "", "{\"a\": 1} 2"),
            ("a.json", "", "{\"a\": [1, 2}"),
            ("log.jsonl", "", "{\"a\":1}\n{\"b\":\n"),
        ] {
            assert_eq!(value(&assess(name, "", mime, bad.as_bytes()), "parses"), 0.0, "{name}: {bad:?}");
        }
        assert_eq!(value(&assess("nested.json", "", "", br#"{"a": {"b": [1, {"c": null}]}, "d": "e"}"#), "parses"), 1.0);
        let bin = assess("img.png", "", "", &[0xff, 0xd8, 0x00, 0x9f]);
        assert_eq!((bin.class.as_str(), bin.score), ("binary", 1.0));
        assert_eq!(assess("empty.bin", "", "", &[]).score, 0.0);
        let episodes = assess("conductor/episodes/m", "training-data", "application/x-ndjson", b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!((episodes.class.as_str(), value(&episodes, "parses")), ("data", 1.0));
    }
}
