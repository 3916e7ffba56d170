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
    /// Train the second reader on the labelled corpus in DIR (its *.jsonl
    /// files, and one file per independent writer in DIR/writers/), report
    /// leave-one-writer-out figures, choose the thresholds, and write the
    /// reader into the protocol set (see --out).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["text", "eval", "jsonl", "lowo"])]
    train: Option<PathBuf>,
    /// Print the protocol catalogue page (markdown: every protocol with its
    /// system, population, dispositions, source and how many labelled lines
    /// of the corpus in DIR it fires on); `protocols/CATALOGUE.md` is this.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["text", "eval", "jsonl", "lowo", "train"])]
    catalogue: Option<PathBuf>,
    /// Only report leave-one-writer-out figures for the corpus in DIR (writes nothing).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["text", "eval", "jsonl"])]
    lowo: Option<PathBuf>,
    /// With --train: the protocol set directory to write reader/ into.
    #[arg(long, value_name = "DIR", default_value = "protocols")]
    out: PathBuf,
    /// With --train/--lowo: model family, logistic or naive_bayes.
    #[arg(long, default_value = "logistic")]
    family: String,
    /// With --train/--lowo: character n-gram lengths, comma-separated (empty: none).
    #[arg(long, default_value = "", value_name = "LENGTHS")]
    char_ngrams: String,
    /// With --train/--lowo: log2 of the number of hash buckets.
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u32).range(8..=24))]
    bits: u32,
    /// With --train/--lowo: passes over the corpus.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// With --train/--lowo: L2 regularization strength.
    #[arg(long, default_value_t = 1e-5)]
    l2: f32,
    /// With --train/--lowo: AdaGrad learning rate.
    #[arg(long, default_value_t = 0.4)]
    learning_rate: f32,
    /// With --train/--lowo: weigh both classes of each output equally.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    balanced: bool,
    /// With --train/--lowo: the worst writer's escalation sensitivity the urgent threshold must keep.
    #[arg(long, default_value_t = 0.97)]
    target_sensitivity: f64,
    /// With --train/--lowo: the worst writer's share of emergencies judged emergency the emergency threshold must keep.
    #[arg(long, default_value_t = 0.93)]
    target_emergency: f64,
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
    if let Some(dir) = &args.catalogue {
        return match careline_triage::train::read_corpus(dir) {
            Ok(writers) => {
                print!(
                    "{}",
                    careline_triage::train::catalogue_page(
                        &engine,
                        &writers,
                        &dir.display().to_string()
                    )
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("careline triage: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(dir) = args.train.as_ref().or(args.lowo.as_ref()) {
        return match train(&engine, dir, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("careline triage: {e}");
                ExitCode::from(2)
            }
        };
    }
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

/// Emergency guidance when the second reader raises to emergency and no
/// protocol gave any.
const READER_GUIDANCE_EN: &str = "What you describe may need emergency care. If this is happening now, call 911 or go to the nearest emergency department. A nurse is being alerted to your message.";
const READER_GUIDANCE_ES: &str = "Lo que describe puede necesitar atención de emergencia. Si está pasando ahora, llame al 911 o vaya a la sala de emergencias más cercana. Una enfermera está siendo avisada de su mensaje.";

fn train(engine: &Engine, dir: &std::path::Path, args: &TriageArgs) -> Result<(), String> {
    use careline_triage::{reader, train};
    let char_ngrams: Vec<usize> = args
        .char_ngrams
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (2..=8).contains(n))
                .ok_or_else(|| format!("--char-ngrams: '{s}' is not a length from 2 to 8"))
        })
        .collect::<Result<_, _>>()?;
    if !["logistic", "naive_bayes"].contains(&args.family.as_str()) {
        return Err(format!(
            "--family: '{}' is not logistic or naive_bayes",
            args.family
        ));
    }
    let writers = train::read_corpus(dir)?;
    let folds = writers.iter().filter(|w| w.fold).count();
    if folds < 2 {
        return Err(format!(
            "{}: leave-one-writer-out needs at least two writers in writers/ (found {folds})",
            dir.display()
        ));
    }
    let o = reader::TrainOptions {
        family: args.family.clone(),
        bits: args.bits,
        epochs: args.epochs,
        l2: args.l2,
        learning_rate: args.learning_rate,
        balanced: args.balanced,
    };
    let guidance = engine
        .reader_settings()
        .map(|s| s.guidance.clone())
        .unwrap_or(careline_triage::Guidance {
            en: READER_GUIDANCE_EN.into(),
            es: READER_GUIDANCE_ES.into(),
        });
    let lines: usize = writers.iter().map(|w| w.examples.len()).sum();
    let mut settings = reader::ReaderSettings {
        family: args.family.clone(),
        bits: o.bits,
        char_ngrams: char_ngrams.clone(),
        norm: if args.family == "naive_bayes" {
            reader::Norm::None
        } else {
            reader::Norm::Sqrt
        },
        urgent_threshold: 0.5,
        emergency_threshold: 0.5,
        guidance,
        trained: format!(
            "careline triage --train {} --bits {} --family {} --char-ngrams {} --epochs {} --l2 {} --learning-rate {} --balanced {}: {lines} lines, {} sets, {folds} of them independent writers held out in turn",
            dir.display(),
            args.bits,
            args.family,
            if args.char_ngrams.is_empty() {
                "''"
            } else {
                &args.char_ngrams
            },
            args.epochs,
            args.l2,
            args.learning_rate,
            args.balanced,
            writers.len()
        ),
    };
    let prepared = train::prepare(engine, &writers, &char_ngrams);
    let probs = train::lowo(&prepared, &writers, &settings, &o);
    let t = train::choose_thresholds(
        &prepared,
        &writers,
        &probs,
        args.target_sensitivity,
        args.target_emergency,
    );
    println!(
        "corpus {}: {lines} lines; family {}, character n-grams [{}]",
        dir.display(),
        args.family,
        args.char_ngrams
    );
    print!("{}", train::report(&prepared, &writers, &probs, t));
    if args.train.is_none() {
        return Ok(());
    }
    settings.urgent_threshold = (f64::from(t[0]) * 1000.0).round() / 1000.0;
    settings.emergency_threshold = (f64::from(t[1]) * 1000.0).round() / 1000.0;
    let weights = train::train_all(&prepared, &o);
    let out = args.out.join("reader");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let toml = toml::to_string(&reader::Settings { reader: settings })
        .map_err(|e| format!("cannot write the reader settings: {e}"))?;
    let header = "The second reader's weights, made by `careline triage --train` (see reader.toml).\nGenerated: do not edit by hand; retrain instead.\nEach line: hash bucket (hex), weight for at least urgent, weight for emergency.";
    let settings_path = out.join("reader.toml");
    let weights_path = out.join("weights.txt");
    std::fs::write(
        &settings_path,
        format!("# The second reader (see crates/triage/src/reader.rs). Made by `careline triage --train`;\n# thresholds chosen on leave-one-writer-out figures.\n{toml}"),
    )
    .map_err(|e| format!("{}: {e}", settings_path.display()))?;
    std::fs::write(&weights_path, reader::weights_text(&weights, header))
        .map_err(|e| format!("{}: {e}", weights_path.display()))?;
    println!(
        "\nwrote {} and {}",
        settings_path.display(),
        weights_path.display()
    );
    Ok(())
}
