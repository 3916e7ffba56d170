//! Developer tool: `cargo run -p careline-triage --example judge -- "text"`
//! prints a judgement; `--eval FILE` prints the evaluation report with misses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use careline_triage::{Context, Engine, eval};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let engine = Engine::embedded().unwrap_or_else(|e| panic!("{e}"));
    if args.first().map(String::as_str) == Some("--eval") {
        let f = std::fs::File::open(&args[1]).unwrap();
        let (ex, errs) = eval::read_examples(std::io::BufReader::new(f));
        let mut r = eval::evaluate(&engine, &ex);
        r.errors = errs;
        print!("{}", r.render(true));
        return;
    }
    for t in &args {
        let j = engine.judge(t, &Context::default());
        println!("== {t}\n   {}", j.explanation);
        if std::env::var("V").is_ok() {
            for e in &j.evidence {
                println!("     + {} {} [{}]", e.protocol, e.concept, e.text);
            }
            for e in &j.suppressed {
                println!(
                    "     - {} {} [{}] {}",
                    e.protocol, e.concept, e.text, e.reason
                );
            }
        }
    }
}
