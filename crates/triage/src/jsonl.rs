//! `careline triage --jsonl`: JSON lines in, one judgement per line out,
//! over any `BufRead`/`Write` so it is testable without a process.
//!
//! Input lines carry `id`, `text`, optional `channel` (`portal`/`call_note`)
//! and `language`; unknown fields are ignored. A malformed line produces
//! `{"line": n, "error": "…"}` and processing goes on. One engine, one reused
//! line buffer, buffered output.

use crate::{Channel, Context, Engine, Evidence, FiredProtocol, Guidance, Suppressed};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{self, BufRead, Write};

/// One input line.
#[derive(Debug, Deserialize)]
pub struct InputLine<'a> {
    /// Caller's id, echoed back verbatim (string or number).
    #[serde(default)]
    pub id: serde_json::Value,
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Serialize)]
struct OutputLine<'a> {
    id: &'a serde_json::Value,
    disposition: &'a str,
    protocols: &'a [FiredProtocol],
    evidence: &'a [Evidence],
    suppressed: &'a [Suppressed],
    protocol_version: &'a str,
    protocol_hash: &'a str,
    explanation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    guidance: Option<&'a Guidance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    second_reader: Option<&'a crate::reader::SecondReader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clinical_content: Option<&'a crate::ClinicalContent>,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    line: usize,
    error: &'a str,
}

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub lines: usize,
    pub judged: usize,
    pub errors: usize,
}

/// Judge every JSON line of `input`, writing one JSON line per input line.
/// Blank lines are skipped. I/O errors abort; malformed lines do not.
pub fn process<R: BufRead, W: Write>(
    engine: &Engine,
    mut input: R,
    output: W,
) -> io::Result<Stats> {
    let mut out = io::BufWriter::with_capacity(1 << 16, output);
    let mut buf = String::with_capacity(4096);
    let mut stats = Stats::default();
    loop {
        buf.clear();
        let n = match input.read_line(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Not UTF-8: report the line and skip its bytes.
                stats.lines += 1;
                stats.errors += 1;
                let mut skip = Vec::new();
                input.read_until(b'\n', &mut skip)?;
                serde_json::to_writer(
                    &mut out,
                    &ErrorLine {
                        line: stats.lines,
                        error: "line is not valid UTF-8",
                    },
                )?;
                out.write_all(b"\n")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        stats.lines += 1;
        let line = buf.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<InputLine>(line) {
            Ok(inp) => {
                let ctx = Context {
                    channel: inp.channel.unwrap_or_default(),
                    language: inp.language,
                };
                let j = engine.judge(&inp.text, &ctx);
                let o = OutputLine {
                    id: &inp.id,
                    disposition: j.disposition.as_str(),
                    protocols: &j.protocols,
                    evidence: &j.evidence,
                    suppressed: &j.suppressed,
                    protocol_version: &j.protocol_version,
                    protocol_hash: &j.protocol_hash,
                    explanation: &j.explanation,
                    guidance: j.guidance.as_ref(),
                    second_reader: j.second_reader.as_ref(),
                    clinical_content: j.clinical_content.as_ref(),
                };
                serde_json::to_writer(&mut out, &o)?;
                stats.judged += 1;
            }
            Err(e) => {
                stats.errors += 1;
                let msg = e.to_string();
                serde_json::to_writer(
                    &mut out,
                    &ErrorLine {
                        line: stats.lines,
                        error: &msg,
                    },
                )?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(stats)
}
