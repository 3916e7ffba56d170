//! `careline bench ingest`: a load generator. It logs in members and posts
//! messages over keep-alive connections, at a fixed concurrency (as fast as
//! the server acknowledges) or at a fixed rate (open loop: latency counts from
//! when each message was due, so a stall is not hidden), and prints
//! messages/s and latency percentiles. By default it starts its own server on
//! a fresh data directory with the demo organization.

use crate::httpc::Conn;
use crate::server::spawn_named;
use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Post messages and report throughput and latency.
    Ingest(IngestArgs),
    /// Fill the store (the data directory, or PostgreSQL with CARELINE_DATABASE_URL) with synthetic contacts through the real store: triaged, ticketed, chained. For audit benchmarks.
    Contacts(ContactsArgs),
}

#[derive(Args, Clone)]
pub struct ContactsArgs {
    /// How many contacts to write.
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Contacts written concurrently (they commit in groups).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    #[command(flatten)]
    pub data: crate::cli::DataDir,
}

/// Write `count` contacts from the demo members, spread over the past 30 days.
pub async fn contacts(a: ContactsArgs) -> Result<()> {
    use careline_core::ingest::{ContactIn, ContactKind};
    use careline_core::validate::MessageText;
    use careline_store::ContactRequest;
    let store = crate::cli::open_any(&a.data.data_dir).await?;
    let now = jiff::Timestamp::now();
    crate::demo::seed(store.as_ref(), &crate::demo::password(), now).await?;
    let org = store
        .org_by_name(crate::demo::ORG)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("no demo org"))?;
    let members: Vec<careline_core::authz::Principal> = store
        .users(org.id)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .filter(|u| u.role == careline_core::model::Role::Member)
        .map(|u| careline_core::authz::Principal {
            user_id: u.id,
            org_id: u.org_id,
            role: u.role,
            name: u.name,
            member_id: u.member_id,
            proxy_for: vec![],
            team_ids: vec![],
            grants: vec![],
            enrolment_only: false,
        })
        .collect();
    let engine = std::sync::Arc::new(crate::server::load_engine(None)?);
    let started = Instant::now();
    let span = 30.0 * 86_400.0;
    let mut handles = Vec::new();
    let per = a.count.div_ceil(a.concurrency.max(1));
    for w in 0..a.concurrency.max(1) {
        let (store, engine, members) = (store.clone(), engine.clone(), members.clone());
        let n0 = w * per;
        let n1 = ((w + 1) * per).min(a.count);
        handles.push(spawn_named("bench-contacts", async move {
            for n in n0..n1 {
                let Some(m) = members.get(n % members.len().max(1)) else {
                    return Err(anyhow!("no demo members"));
                };
                let base = TEXTS.get(n % TEXTS.len()).copied().unwrap_or("hello");
                let text = padded(base, 0, n as u64);
                let judgement = engine.judge(&text, &careline_triage::Context::default());
                let Ok(text) = MessageText::parse(&text) else {
                    continue;
                };
                let at = now
                    - jiff::SignedDuration::from_secs_f64(
                        span * (1.0 - n as f64 / a.count.max(1) as f64),
                    );
                let contact = ContactIn {
                    kind: ContactKind::Message,
                    author_id: m.user_id,
                    author_name: m.name.clone(),
                    text,
                    judgement,
                };
                let member_id = m.member_id.unwrap_or_default();
                if let Err(e) = store
                    .record_contact(
                        ContactRequest {
                            principal: m.clone(),
                            member_id,
                            contact,
                            attachments: Vec::new(),
                        },
                        at,
                    )
                    .await
                {
                    return Err(anyhow!("{e}"));
                }
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| anyhow!("{e}"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} contacts in {secs:.1}s ({:.0}/s) to {}",
        a.count,
        a.count as f64 / secs,
        if std::env::var_os("CARELINE_DATABASE_URL").is_some_and(|u| !u.is_empty()) {
            "PostgreSQL (CARELINE_DATABASE_URL)".to_owned()
        } else {
            a.data.data_dir.display().to_string()
        }
    );
    Ok(())
}

#[derive(Args, Clone)]
pub struct IngestArgs {
    /// A running server to load (host:port); omitted, one is started on a temporary data directory.
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// How many demo members send (1–20).
    #[arg(long, default_value_t = 20)]
    pub members: usize,
    /// Log in as member01…member20 at this domain instead of the demo
    /// organization's (members created with `careline admin` in another
    /// organization, with the demo password).
    #[arg(long, default_value = crate::demo::DOMAIN)]
    pub member_domain: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Messages per second in total; 0 means as fast as acknowledged.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Approximate message size in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

const TEXTS: &[&str] = &[
    "Hi, could you send a refill of my blood pressure medication to the pharmacy on Main Street? Thanks.",
    "I need to reschedule my appointment next Tuesday, something came up at work.",
    "Question about my bill from the March visit, I think I was charged twice.",
    "My lab results came in the portal, can someone explain what the cholesterol numbers mean?",
    "I've had a mild cold for three days, stuffy nose, no fever. Anything I can take?",
    "Could I get a copy of my vaccination record for my new job?",
    "The rash on my arm is a bit better with the cream, just checking in.",
    "I have chest pressure going into my left arm and I'm sweating.",
    "My mom is slurring her words and her face looks droopy.",
    "My calf has been swollen and painful since my flight yesterday.",
];

/// Result of one run.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub mode: String,
    pub concurrency: usize,
    pub target_rate: u64,
    pub sent: u64,
    pub errors: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or(0) as f64 / 1000.0
}

fn padded(base: &str, size: usize, n: u64) -> String {
    let mut s = format!("{base} (ref {n})");
    while s.len() < size {
        s.push_str(" Thank you for your help.");
    }
    s
}

async fn login(addr: SocketAddr, domain: &str, n: usize) -> Result<String> {
    let user = format!("member{n:02}@{domain}");
    let body = serde_json::json!({"username": user, "password": crate::demo::password()});
    let r = crate::httpc::call(addr, "POST", "/api/v1/sessions", None, Some(&body)).await?;
    if r.status != 201 {
        bail!("login as {user} failed: {} {}", r.status, r.text());
    }
    r.json()
        .get("token")
        .and_then(|t| t.as_str())
        .map(String::from)
        .ok_or_else(|| anyhow!("no token in login response"))
}

/// Run the load and return its figures.
pub async fn ingest(args: IngestArgs, addr: SocketAddr) -> Result<Report> {
    if !(1..=20).contains(&args.members) || args.concurrency == 0 {
        bail!("--members must be 1–20 and --concurrency at least 1");
    }
    let mut tokens = Vec::new();
    for n in 1..=args.members {
        tokens.push(login(addr, &args.member_domain, n).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let per_worker_interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    let mut handles = Vec::new();
    for w in 0..args.concurrency {
        let token = tokens.get(w % tokens.len()).cloned().unwrap_or_default();
        let size = args.size;
        handles.push(spawn_named("bench-worker", async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut conn = match Conn::connect(addr).await {
                Ok(c) => c,
                Err(_) => return (lat, 1),
            };
            let mut k: u64 = 0;
            // Stagger workers across one interval so a fixed rate is smooth.
            let offset = per_worker_interval
                .map(|i| i.mul_f64(w as f64 / 64.0_f64.max(1.0)).min(i))
                .unwrap_or_default();
            loop {
                let due = match per_worker_interval {
                    Some(i) => started + offset + i.mul_f64(k as f64),
                    None => Instant::now(),
                };
                if due >= deadline {
                    break;
                }
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let text = padded(
                    TEXTS
                        .get((k as usize + w) % TEXTS.len())
                        .copied()
                        .unwrap_or("hello"),
                    size,
                    k,
                );
                let body = serde_json::json!({ "text": text });
                match conn
                    .request("POST", "/api/v1/messages", Some(&token), Some(&body))
                    .await
                {
                    Ok(r) if r.status == 201 => lat.push(due.elapsed().as_micros() as u64),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match Conn::connect(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
                k += 1;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (lat, e) = h.await.map_err(|e| anyhow!("worker: {e}"))?;
        all.extend(lat);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(Report {
        mode: if args.rate > 0 {
            "fixed-rate".into()
        } else {
            "fixed-concurrency".into()
        },
        concurrency: args.concurrency,
        target_rate: args.rate,
        sent: all.len() as u64,
        errors,
        seconds,
        msgs_per_sec: all.len() as f64 / seconds,
        p50_ms: pct(&all, 0.50),
        p90_ms: pct(&all, 0.90),
        p99_ms: pct(&all, 0.99),
        max_ms: all.last().copied().unwrap_or(0) as f64 / 1000.0,
    })
}

pub async fn run(cmd: BenchCmd) -> Result<()> {
    let args = match cmd {
        BenchCmd::Ingest(a) => a,
        BenchCmd::Contacts(a) => return contacts(a).await,
    };
    let (addr, running, _dir) = match args.target {
        Some(a) => (a, None, None),
        None => {
            let dir = tempfile_dir()?;
            let settings = crate::config::Settings::resolve(
                None,
                Some("127.0.0.1:0".into()),
                Some(dir.clone()),
                None,
            )?;
            let clock: std::sync::Arc<dyn careline_core::clock::Clock> =
                std::sync::Arc::new(careline_core::clock::SystemClock);
            let running = crate::server::start(&settings, clock.clone()).await?;
            crate::demo::seed(
                running.state.store.as_ref(),
                &crate::demo::password(),
                clock.now(),
            )
            .await?;
            (running.addr, Some(running), Some(dir))
        }
    };
    let json = args.json;
    let r = ingest(args, addr).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} c={} rate={}: {} msgs in {:.1}s = {:.0} msgs/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; errors {}",
            r.mode,
            r.concurrency,
            r.target_rate,
            r.sent,
            r.seconds,
            r.msgs_per_sec,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.errors
        );
    }
    if let Some(running) = running {
        running.stop().await?;
    }
    if let Some(d) = _dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("careline-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
