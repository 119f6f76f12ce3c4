//! `sit observations`: what the store holds, without exporting an audit bundle.
//!
//! A table for people (one line per attempt: when, where, what, how it ended, tokens, cost,
//! delivered SIT) or JSON lines for tools (each record as stored, evidence left out unless
//! asked for: the raw exchanges are most of a store's bytes).

use super::{parse_date, Command, Paths};
use crate::cli::error::{Error, Result};
use crate::store::Store;
use sit_core::observation::Observation;
use sit_core::time::{format_utc_ms, DAY_MS};
use std::io::Write;

/// Which records to list.
struct Filter {
    from_ms: i64,
    to_ms: i64,
    endpoint: Option<String>,
    tier: Option<String>,
    failed: bool,
}

impl Filter {
    fn keeps(&self, o: &Observation) -> bool {
        self.endpoint.as_ref().is_none_or(|e| *e == o.endpoint)
            && self.tier.as_ref().is_none_or(|t| *t == o.tier)
            && (!self.failed || o.failure.is_some())
    }
}

pub(super) fn run(cli: &Paths, command: Command) -> Result<()> {
    let Command::Observations {
        date,
        endpoint,
        tier,
        failed,
        json,
        evidence,
    } = command
    else {
        unreachable!("dispatched by cli::run")
    };
    super::check_tier(tier.as_deref())?;
    super::existing_store(&cli.data)?;
    let (from_ms, to_ms) = match date.as_deref().map(parse_date).transpose()? {
        Some(d) => (d.start_ms(), d.start_ms() + DAY_MS),
        None => (i64::MIN / 2, i64::MAX / 2),
    };
    let filter = Filter {
        from_ms,
        to_ms,
        endpoint,
        tier,
        failed,
    };
    let store = Store::open(&cli.data)?;
    match list(&store, &filter, json, evidence) {
        // `sit observations | head` closes the pipe early: not an error
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn list(store: &Store, filter: &Filter, json: bool, evidence: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut shown = 0u64;
    if !json {
        writeln!(
            out,
            "{:>7} {:<24} {:<24} {:<4} {:<18} {:>2} {:>4} {:<20} {:<3} {:>7} {:>7} {:>16} {:>6}",
            "seq",
            "sent (UTC)",
            "endpoint",
            "tier",
            "family",
            "try",
            "http",
            "outcome",
            "ok",
            "in",
            "out",
            "cost USD",
            "SIT"
        )?;
    }
    for r in store.scan(filter.from_ms, filter.to_ms) {
        let mut s = r?;
        if !filter.keeps(&s.obs) {
            continue;
        }
        shown += 1;
        if json {
            if !evidence {
                s.obs.evidence = None;
            }
            serde_json::to_writer(&mut out, &s.obs).map_err(std::io::Error::other)?;
            writeln!(out)?;
        } else {
            let o = &s.obs;
            let t = &o.tokens;
            writeln!(
                out,
                "{:>7} {:<24} {:<24} {:<4} {:<18} {:>2} {:>4} {:<20} {:<3} {:>7} {:>7} {:>16} {:>6}",
                o.seq,
                format_utc_ms(o.at_ms),
                o.endpoint,
                o.tier,
                o.family,
                o.retry,
                o.http_status.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                o.failure.as_ref().map(|f| f.class.as_str()).unwrap_or("ok"),
                match (o.correct, o.within_sla) {
                    (true, true) => "yes",
                    (true, false) => "late",
                    _ => "no",
                },
                t.billed_input,
                t.billed_output,
                o.cost.to_string(),
                o.delivered_sit
            )?;
        }
    }
    if !json {
        writeln!(out, "{shown} observations")?;
    }
    out.flush()?;
    Ok(())
}
