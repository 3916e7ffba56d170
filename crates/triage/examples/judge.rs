//! Developer tool: `cargo run -p careline-triage --example judge -- "text"`
//! prints a judgement; `--eval FILE` prints the evaluation report with misses.
//! Set `PROTOCOLS=dir` to use a protocol directory instead of the embedded set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use careline_triage::{Context, Engine, eval};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // LOAD_MS=dir prints the fastest of 10 loads of a protocol directory.
    if let Ok(dir) = std::env::var("LOAD_MS") {
        let mut best = std::time::Duration::MAX;
        for _ in 0..10 {
            let t = std::time::Instant::now();
            Engine::load_dir(std::path::Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
            best = best.min(t.elapsed());
        }
        println!("load {dir}: min {:.1} ms", best.as_secs_f64() * 1e3);
        return;
    }
    // PROTOCOLS=dir judges with an edited (or older) protocol directory.
    let engine = match std::env::var("PROTOCOLS") {
        Ok(dir) => Engine::load_dir(std::path::Path::new(&dir)),
        Err(_) => Engine::embedded(),
    }
    .unwrap_or_else(|e| panic!("{e}"));
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
