//! `cargo bench -p careline-triage`: judging throughput on one core, latency
//! percentiles per message, and protocol-set load time. A `harness = false`
//! bench that prints figures (no extra dependencies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use careline_triage::{Channel, Context, Engine};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Realistic member messages and call notes (EN/ES, routine and red flags).
const MESSAGES: &[&str] = &[
    "Hi, can I get a refill on my lisinopril 10mg? I'm almost out. Thanks!",
    "I have had crushing chest pain for the last hour and I'm sweating a lot",
    "78F c/o CP x2h radiating to L arm, diaphoretic, denies SOB",
    "my mom is slurring her words and her face looks droopy on one side",
    "Can you move my appointment on Tuesday to the afternoon? I have a work meeting.",
    "BP 188/108 this morning, mild headache, no vision changes",
    "my 7wk old has a temp of 100.8 and is not feeding well",
    "me falta el aire y tengo dolor de pecho desde anoche",
    "necesito una copia de mis resultados de laboratorio por favor",
    "no fever, no cough, just wondering if I should get the flu shot this year",
    "had a blood clot in 2019, need an eliquis refill",
    "my left calf is swollen and painful since the long flight home, now a bit short of breath",
    "The billing department gave me a headache, why was I charged twice for the same visit?",
    "pt states she fell yesterday, hit head, on warfarin, now vomiting x2",
    "sometimes I wish I wouldn't wake up, but I'm not going to do anything",
    "what are the signs of a stroke? my dad is 70 and I want to be prepared",
    "throwing up since last night and can't keep down my keppra",
    "mi bebé de 2 meses tiene fiebre de 38.5",
    "Stomach pain and there was blood in my stool this morning, feeling dizzy",
    "I'd like to schedule my annual physical and get my cholesterol checked. Also my new insurance card is attached.",
];

/// CPU time of this thread (user + system), from /proc on Linux: the machine
/// may be shared, and wall-clock throughput then understates one core's rate.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    // Load time (embedded set), best and median of several loads.
    let mut loads = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let e = Engine::embedded().expect("embedded protocol set loads");
        loads.push(t.elapsed());
        black_box(e.version());
    }
    loads.sort();
    let engine = Engine::embedded().unwrap();
    let ctx_portal = Context {
        channel: Channel::Portal,
        language: None,
    };
    let ctx_call = Context {
        channel: Channel::CallNote,
        language: None,
    };

    // Warm up.
    for m in MESSAGES {
        black_box(engine.judge(m, &ctx_portal));
    }

    // Throughput on one core.
    let rounds = 40_000usize;
    let cpu0 = thread_cpu();
    let t = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    for i in 0..rounds {
        for m in MESSAGES {
            let ctx = if i % 2 == 0 { &ctx_portal } else { &ctx_call };
            black_box(engine.judge(black_box(m), ctx));
            n += 1;
            bytes += m.len();
        }
    }
    let el = t.elapsed();
    let cpu = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => Some(b - a),
        _ => None,
    };
    let per_sec = n as f64 / el.as_secs_f64();

    // The same on the rules alone (the second reader left out), interleaved
    // with the full engine so that both see the same machine: best of three.
    let rules_only = Engine::embedded().unwrap().with_reader(None);
    let rate = |e: &Engine| {
        let t = Instant::now();
        let mut k = 0usize;
        for i in 0..rounds / 4 {
            for m in MESSAGES {
                let ctx = if i % 2 == 0 { &ctx_portal } else { &ctx_call };
                black_box(e.judge(black_box(m), ctx));
                k += 1;
            }
        }
        k as f64 / t.elapsed().as_secs_f64()
    };
    let (mut best_full, mut best_rules) = (0f64, 0f64);
    for _ in 0..3 {
        best_full = best_full.max(rate(&engine));
        best_rules = best_rules.max(rate(&rules_only));
    }

    // Latency distribution per message.
    let mut lat = Vec::with_capacity(MESSAGES.len() * 2000);
    for _ in 0..2000 {
        for m in MESSAGES {
            let t = Instant::now();
            black_box(engine.judge(black_box(m), &ctx_portal));
            lat.push(t.elapsed());
        }
    }
    lat.sort();

    // The labelled development set, when present (longer, more clinical).
    let dev_path = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/dev.jsonl");
    let dev: Vec<String> = std::fs::read_to_string(dev_path)
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut dev_lat = Vec::with_capacity(dev.len() * 50);
    let dev_cpu0 = thread_cpu();
    let t = Instant::now();
    for _ in 0..50 {
        for m in &dev {
            let t = Instant::now();
            black_box(engine.judge(black_box(m), &ctx_portal));
            dev_lat.push(t.elapsed());
        }
    }
    let dev_el = t.elapsed();
    let dev_cpu = match (dev_cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => Some(b - a),
        _ => None,
    };
    dev_lat.sort();

    // A long call note (scaling check).
    let long: String = MESSAGES.join(" ").repeat(50);
    let t = Instant::now();
    for _ in 0..20 {
        black_box(engine.judge(&long, &ctx_call));
    }
    let long_each = t.elapsed() / 20;

    println!(
        "careline-triage bench (protocol set {} {})",
        engine.version(),
        &engine.hash()[..12]
    );
    println!(
        "protocol-set load: min {:.1} ms, median {:.1} ms",
        loads[0].as_secs_f64() * 1e3,
        loads[3].as_secs_f64() * 1e3
    );
    println!(
        "throughput (1 core): {:.0} messages/s ({:.1} MB/s, avg {} bytes/message)",
        per_sec,
        bytes as f64 / el.as_secs_f64() / 1e6,
        bytes / n
    );
    println!(
        "interleaved, best of 3: rules + second reader {:.0} messages/s, rules alone {:.0} messages/s (ratio {:.2})",
        best_full,
        best_rules,
        best_full / best_rules
    );
    println!(
        "latency per message: p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        percentile(&lat, 0.50).as_secs_f64() * 1e6,
        percentile(&lat, 0.90).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6,
        lat.last().unwrap().as_secs_f64() * 1e6
    );
    if let Some(cpu) = cpu {
        println!(
            "throughput per CPU-second (this thread's CPU time, robust to a busy machine): {:.0} messages/s",
            n as f64 / cpu.as_secs_f64()
        );
    }
    if !dev_lat.is_empty() {
        let n = dev_lat.len() as f64;
        println!(
            "dev.jsonl messages ({} texts, avg {} bytes): {:.0} messages/s wall, {} per CPU-second; p50 {:.2} µs, p99 {:.2} µs",
            dev.len(),
            dev.iter().map(String::len).sum::<usize>() / dev.len().max(1),
            n / dev_el.as_secs_f64(),
            dev_cpu.map_or("n/a".to_string(), |c| format!("{:.0}", n / c.as_secs_f64())),
            percentile(&dev_lat, 0.50).as_secs_f64() * 1e6,
            percentile(&dev_lat, 0.99).as_secs_f64() * 1e6
        );
    }
    println!(
        "long note ({} KB): {:.0} µs",
        long.len() / 1024,
        long_each.as_secs_f64() * 1e6
    );
}
