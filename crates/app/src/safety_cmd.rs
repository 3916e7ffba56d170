//! `careline safety-audit`: re-read every contact of a period with the
//! current (or given) protocols and list each red flag that did not reach a
//! clinician in time — a "failure to clinically escalate" — filing each
//! finding in the safety-review queue.

use anyhow::{Result, anyhow};
use careline_core::model::MessageKind;
use careline_core::safety;
use careline_store::{NewFinding, Store};
use careline_triage::{Channel, Context, Engine};
use clap::Args;
use jiff::Timestamp;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct SafetyAuditArgs {
    /// Start of the period (RFC 3339 or YYYY-MM-DD); default: the beginning.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the period (RFC 3339 or YYYY-MM-DD, exclusive); default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Protocol directory to judge with instead of the embedded set.
    #[arg(long)]
    pub protocols: Option<PathBuf>,
    /// text or json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Only report; do not file findings in the safety-review queue.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub data: crate::cli::DataDir,
}

fn parse_time(s: &str, what: &str) -> Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| anyhow!("--{what} '{s}' is not RFC 3339 or YYYY-MM-DD"))
}

/// A finding with where it happened, as printed.
#[derive(serde::Serialize)]
pub struct Reported {
    pub message_id: String,
    pub ticket_id: String,
    pub member_id: String,
    pub channel: &'static str,
    #[serde(flatten)]
    pub finding: safety::Finding,
}

/// Summary of one run.
pub struct AuditRun {
    pub contacts: u64,
    pub red_flags: u64,
    pub findings: Vec<Reported>,
    pub filed: usize,
    pub seconds: f64,
}

/// A progress bar on stderr (when `on`), redrawn at most every 100 ms.
pub(crate) struct Progress {
    on: bool,
    pub(crate) total: u64,
    last: std::time::Instant,
}

impl Progress {
    pub(crate) fn new(on: bool, total: u64) -> Progress {
        Progress {
            on,
            total,
            last: std::time::Instant::now(),
        }
    }

    /// Draw `done` of `total`; `force` draws now and ends the line.
    pub(crate) fn show(&mut self, done: u64, force: bool) {
        if !self.on || (!force && self.last.elapsed().as_millis() < 100) {
            return;
        }
        self.last = std::time::Instant::now();
        let frac = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let width = 30usize;
        let filled = ((frac * width as f64) as usize).min(width);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {:>5.1}% {done}/{}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            frac * 100.0,
            self.total
        );
        if force {
            let _ = writeln!(err);
        }
    }
}

/// Run the audit over `store`.
pub async fn audit(
    store: &dyn Store,
    engine: &Engine,
    since: Timestamp,
    until: Timestamp,
    file: bool,
    progress: bool,
) -> Result<AuditRun> {
    let started = std::time::Instant::now();
    let e = |e: careline_core::Error| anyhow!("{e}");
    let total = store.contact_count(since, until).await.map_err(e)?;
    let mut bar = Progress::new(progress, total.max(0) as u64);
    let mut after = None;
    let mut run = AuditRun {
        contacts: 0,
        red_flags: 0,
        findings: Vec::new(),
        filed: 0,
        seconds: 0.0,
    };
    let mut settings_cache = HashMap::new();
    let mut histories: HashMap<careline_core::ids::TicketId, careline_core::safety::TicketHistory> =
        HashMap::new();
    loop {
        let batch = store.contacts(since, until, after, 5000).await.map_err(e)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.message_id);
        let mut flagged = Vec::new();
        for c in &batch {
            let channel = if c.kind == MessageKind::CallNote {
                Channel::CallNote
            } else {
                Channel::Portal
            };
            let j = engine.judge(
                &c.text,
                &Context {
                    channel,
                    language: None,
                },
            );
            if j.disposition.is_red_flag() {
                flagged.push((c, j));
            }
        }
        run.contacts += batch.len() as u64;
        run.red_flags += flagged.len() as u64;
        // A ticket's history does not change during the audit: fetch each once.
        let unknown: Vec<_> = flagged
            .iter()
            .map(|(c, _)| c.ticket_id)
            .filter(|t| !histories.contains_key(t))
            .collect();
        if !unknown.is_empty() {
            histories.extend(store.ticket_histories(unknown).await.map_err(e)?);
        }
        let mut new = Vec::new();
        for (c, j) in flagged {
            let ack = match settings_cache.get(&c.org_id) {
                Some(a) => *a,
                None => {
                    let a = store.settings(c.org_id).await.map_err(e)?.ack;
                    settings_cache.insert(c.org_id, a);
                    a
                }
            };
            let h = histories.get(&c.ticket_id).cloned().unwrap_or_default();
            if let Some(f) = safety::assess(&j, c.created_at, &h, &ack) {
                new.push(NewFinding {
                    org_id: c.org_id,
                    message_id: c.message_id,
                    ticket_id: c.ticket_id,
                    member_id: c.member_id,
                    disposition: j.disposition.as_str().into(),
                    finding: serde_json::to_value(&f).unwrap_or_default(),
                    protocol_version: j.protocol_version.clone(),
                });
                run.findings.push(Reported {
                    message_id: c.message_id.to_string(),
                    ticket_id: c.ticket_id.to_string(),
                    member_id: c.member_id.to_string(),
                    channel: if c.kind == MessageKind::CallNote {
                        "call_note"
                    } else {
                        "portal"
                    },
                    finding: f,
                });
            }
        }
        if file && !new.is_empty() {
            run.filed += store
                .file_findings(new, Timestamp::now())
                .await
                .map_err(e)?;
        }
        bar.show(run.contacts, false);
    }
    bar.show(run.contacts, true);
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

pub async fn run(a: SafetyAuditArgs) -> Result<()> {
    if !matches!(a.format.as_str(), "text" | "json") {
        return Err(anyhow!("--format must be text or json"));
    }
    let since = a
        .since
        .as_deref()
        .map(|s| parse_time(s, "since"))
        .transpose()?
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let until = a
        .until
        .as_deref()
        .map(|s| parse_time(s, "until"))
        .transpose()?
        .unwrap_or_else(Timestamp::now);
    if since >= until {
        return Err(anyhow!("--since must be before --until"));
    }
    if std::env::var_os("CARELINE_DATABASE_URL").is_none()
        && !a
            .data
            .data_dir
            .join(careline_store_sqlite::DB_FILE)
            .exists()
    {
        return Err(anyhow!(
            "no careline database in {}",
            a.data.data_dir.display()
        ));
    }
    let engine = crate::server::load_engine(a.protocols.as_deref())?;
    let store = crate::cli::open_any(&a.data.data_dir).await?;
    let r = audit(
        store.as_ref(),
        &engine,
        since,
        until,
        !a.dry_run,
        std::io::stderr().is_terminal(),
    )
    .await?;
    if a.format == "json" {
        let out = serde_json::json!({
            "since": since.to_string(),
            "until": until.to_string(),
            "protocol_version": engine.version(),
            "protocol_hash": engine.hash(),
            "contacts": r.contacts,
            "red_flags": r.red_flags,
            "failures_to_clinically_escalate": r.findings,
            "filed_for_review": r.filed,
            "seconds": r.seconds,
        });
        println!("{out}");
    } else {
        for f in &r.findings {
            println!(
                "{}  {}  ticket {}  member {}",
                f.finding.contact_at, f.channel, f.ticket_id, f.member_id
            );
            println!("    {}", f.finding.summary);
            if !f.finding.evidence.is_empty() {
                println!(
                    "    evidence: {}",
                    f.finding
                        .evidence
                        .iter()
                        .map(|e| format!("\u{201c}{e}\u{201d}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        println!(
            "{} contact(s) re-triaged with protocols {} ({}…) in {:.1}s: {} red flag(s), {} failure(s) to clinically escalate, {} newly filed for safety review",
            r.contacts,
            engine.version(),
            engine.hash().get(..12).unwrap_or(""),
            r.seconds,
            r.red_flags,
            r.findings.len(),
            r.filed
        );
    }
    Ok(())
}
