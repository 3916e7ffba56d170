//! Prometheus metrics in the text exposition format. A handful of counters
//! and histograms on atomics: enough for dashboards and alerts without a
//! metrics framework in the request path.

use careline_core::Disposition;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram over fixed bucket bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in nanoseconds, so it can live in an integer atomic.
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
    pub fn observe(&self, secs: f64) {
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            if secs <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
    }
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

const LATENCY: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const MINUTES: &[f64] = &[10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];
const MICRO: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.01,
];

/// careline's metrics.
#[derive(Debug)]
pub struct Metrics {
    pub http_requests: [Counter; 5],
    pub http_seconds: Histogram,
    pub contacts: [Counter; 3],
    pub contact_seconds: Histogram,
    pub triage_seconds: Histogram,
    pub login_failures: Counter,
    pub sse_clients: AtomicU64,
    /// From receipt of a red-flag contact to its page being committed.
    pub time_to_page: Histogram,
    /// From a red flag's commit to a clinician's acknowledgement, [emergency, urgent].
    pub time_to_ack: [Histogram; 2],
    pub escalations: Counter,
    pub alarms: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http_requests: Default::default(),
            http_seconds: Histogram::new(LATENCY),
            contacts: Default::default(),
            contact_seconds: Histogram::new(LATENCY),
            triage_seconds: Histogram::new(MICRO),
            login_failures: Counter::default(),
            sse_clients: AtomicU64::new(0),
            time_to_page: Histogram::new(LATENCY),
            time_to_ack: [Histogram::new(MINUTES), Histogram::new(MINUTES)],
            escalations: Counter::default(),
            alarms: Counter::default(),
        }
    }
}

impl Metrics {
    pub fn request(&self, status: u16, secs: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = self.http_requests.get(class) {
            c.inc();
        }
        self.http_seconds.observe(secs);
    }

    pub fn contact(&self, d: Disposition, secs: f64) {
        let i = match d {
            Disposition::Emergency => 0,
            Disposition::Urgent => 1,
            Disposition::Routine => 2,
        };
        if let Some(c) = self.contacts.get(i) {
            c.inc();
        }
        self.contact_seconds.observe(secs);
    }

    pub fn paged(&self, secs: f64) {
        self.time_to_page.observe(secs);
    }

    pub fn page_acked(&self, d: Disposition, secs: f64) {
        let h = if d == Disposition::Emergency {
            &self.time_to_ack[0]
        } else {
            &self.time_to_ack[1]
        };
        h.observe(secs);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP careline_http_requests_total HTTP requests by status class.\n# TYPE careline_http_requests_total counter\n");
        for (i, c) in self.http_requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "careline_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.get()
            );
        }
        out.push_str("# HELP careline_http_request_duration_seconds Time to answer HTTP requests.\n# TYPE careline_http_request_duration_seconds histogram\n");
        self.http_seconds
            .render(&mut out, "careline_http_request_duration_seconds", "");
        out.push_str("# HELP careline_contacts_total Contacts (messages and call notes) recorded, by triage disposition.\n# TYPE careline_contacts_total counter\n");
        for (d, c) in ["emergency", "urgent", "routine"]
            .iter()
            .zip(&self.contacts)
        {
            let _ = writeln!(
                out,
                "careline_contacts_total{{disposition=\"{d}\"}} {}",
                c.get()
            );
        }
        out.push_str("# HELP careline_contact_commit_seconds From receipt to durable commit of a contact.\n# TYPE careline_contact_commit_seconds histogram\n");
        self.contact_seconds
            .render(&mut out, "careline_contact_commit_seconds", "");
        out.push_str("# HELP careline_triage_seconds Time to triage one text.\n# TYPE careline_triage_seconds histogram\n");
        self.triage_seconds
            .render(&mut out, "careline_triage_seconds", "");
        out.push_str("# HELP careline_time_to_page_seconds From receipt of a red-flag contact to its committed page.\n# TYPE careline_time_to_page_seconds histogram\n");
        self.time_to_page
            .render(&mut out, "careline_time_to_page_seconds", "");
        out.push_str("# HELP careline_time_to_ack_seconds From a red flag's commit to a clinician's acknowledgement.\n# TYPE careline_time_to_ack_seconds histogram\n");
        self.time_to_ack[0].render(
            &mut out,
            "careline_time_to_ack_seconds",
            "disposition=\"emergency\"",
        );
        self.time_to_ack[1].render(
            &mut out,
            "careline_time_to_ack_seconds",
            "disposition=\"urgent\"",
        );
        out.push_str("# HELP careline_escalations_total Pages escalated to the next rung after a missed deadline.\n# TYPE careline_escalations_total counter\n");
        let _ = writeln!(out, "careline_escalations_total {}", self.escalations.get());
        out.push_str("# HELP careline_alarms_total Organization-wide alarms raised.\n# TYPE careline_alarms_total counter\n");
        let _ = writeln!(out, "careline_alarms_total {}", self.alarms.get());
        out.push_str("# HELP careline_login_failures_total Failed logins.\n# TYPE careline_login_failures_total counter\n");
        let _ = writeln!(
            out,
            "careline_login_failures_total {}",
            self.login_failures.get()
        );
        out.push_str("# HELP careline_sse_clients Connected event-stream clients.\n# TYPE careline_sse_clients gauge\n");
        let _ = writeln!(
            out,
            "careline_sse_clients {}",
            self.sse_clients.load(Ordering::Relaxed)
        );
        out
    }
}
