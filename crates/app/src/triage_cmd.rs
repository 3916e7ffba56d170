//! `careline triage`: the triage engine on the command line. Thin: parsing
//! arguments and printing; JSONL processing and evaluation live in
//! `careline_triage::{jsonl, eval}`.

use careline_triage::{Channel, Context, Engine, eval, jsonl};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TriageArgs {
    /// Text to judge (reads stdin as one text when absent and no mode is given).
    text: Option<String>,
    /// Read JSON lines ({"id","text","channel"?,"language"?}) on stdin; write one JSON judgement per line.
    #[arg(long, conflicts_with_all = ["eval", "text"])]
    jsonl: bool,
    /// Evaluate against a labelled JSONL file (field `expected`): per-class
    /// sensitivity/specificity and the confusion matrix.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    eval: Option<PathBuf>,
    /// With --eval: list every disagreement.
    #[arg(long, requires = "eval")]
    misses: bool,
    /// Use the protocol set in DIR instead of the embedded one.
    #[arg(long, value_name = "DIR")]
    protocols: Option<PathBuf>,
    /// Print the judgement of a single text as JSON.
    #[arg(long)]
    json: bool,
    /// The text is a contact-centre call note (default: a portal message).
    #[arg(long)]
    call_note: bool,
}

pub fn run(args: TriageArgs) -> ExitCode {
    let engine = match &args.protocols {
        Some(dir) => Engine::load_dir(dir),
        None => Engine::embedded(),
    };
    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            eprintln!("careline triage: cannot load protocols: {e}");
            return ExitCode::from(2);
        }
    };
    if args.jsonl {
        let stdin = io::stdin().lock();
        let stdout = io::stdout().lock();
        return match jsonl::process(&engine, stdin, stdout) {
            Ok(stats) if stats.errors == 0 => ExitCode::SUCCESS,
            Ok(stats) => {
                eprintln!(
                    "careline triage: {} of {} lines could not be read",
                    stats.errors, stats.lines
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("careline triage: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(path) = &args.eval {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("careline triage: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let (examples, errors) = eval::read_examples(io::BufReader::new(file));
        let mut report = eval::evaluate(&engine, &examples);
        report.errors = errors;
        println!("protocol set {} ({})", engine.version(), engine.hash());
        print!("{}", report.render(args.misses));
        let unescalated = report.unescalated().count();
        if unescalated > 0 {
            println!("\nSAFETY FLOOR BROKEN: {unescalated} red-flag message(s) judged routine");
            return ExitCode::FAILURE;
        }
        return if report.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let text = match args.text {
        Some(t) => t,
        None => match io::read_to_string(io::stdin()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("careline triage: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let ctx = Context {
        channel: if args.call_note {
            Channel::CallNote
        } else {
            Channel::Portal
        },
        language: None,
    };
    let j = engine.judge(&text, &ctx);
    let mut out = io::stdout().lock();
    let res = if args.json {
        serde_json::to_writer_pretty(&mut out, &j)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        print_readable(&mut out, &j)
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("careline triage: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_readable(out: &mut impl Write, j: &careline_triage::Judgement) -> io::Result<()> {
    writeln!(out, "{}", j.disposition.as_str().to_uppercase())?;
    writeln!(out, "{}", j.explanation)?;
    for p in &j.protocols {
        writeln!(
            out,
            "  protocol {} — {} ({})",
            p.id,
            p.title,
            p.disposition.as_str()
        )?;
    }
    for e in &j.evidence {
        writeln!(
            out,
            "  evidence [{}..{}] '{}' ({} / {})",
            e.start, e.end, e.text, e.protocol, e.concept
        )?;
    }
    for s in &j.suppressed {
        writeln!(
            out,
            "  ignored  [{}..{}] '{}' — {}",
            s.start, s.end, s.text, s.reason
        )?;
    }
    if let Some(g) = &j.guidance {
        writeln!(out, "  guidance (en): {}", g.en)?;
        writeln!(out, "  guidance (es): {}", g.es)?;
    }
    writeln!(
        out,
        "protocol set {} ({})",
        j.protocol_version, j.protocol_hash
    )
}
