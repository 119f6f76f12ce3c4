//! The human page at `/`: the latest value per tier, its status, and an SVG chart of the
//! history (plotters), as plain HTML that needs no JavaScript.
//!
//! The chart converts fixed-point values to f64 to place points on screen. That is the only
//! floating point near the index, it is display only, and the exact values are in the table.

use super::snapshot::Snapshot;
use plotters::prelude::*;
use sit_core::index::Methodology;
use sit_core::probes::Suite;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// One tier's points: (day number, value for display, carried?).
type Series = (String, Vec<(i32, f64, bool)>);

/// The history chart as an SVG document (empty string when nothing is published).
pub fn chart_svg(snap: &Snapshot, suite: &Suite) -> String {
    let series: Vec<Series> = suite
        .tiers
        .iter()
        .map(|t| {
            let pts = snap
                .records
                .get(&t.id)
                .into_iter()
                .flat_map(|d| d.values())
                .filter_map(|v| v.last())
                .filter_map(|s| {
                    let v = s.entry.value?;
                    Some((
                        s.entry.date.0,
                        v.0 as f64 / 1e9,
                        // hollow: not a settlement value (a carried value, or a chain's anchor)
                        !s.entry.status.settles(),
                    ))
                })
                .collect();
            (format!("{} {}", t.id, t.name), pts)
        })
        .collect();
    let all: Vec<&(i32, f64, bool)> = series.iter().flat_map(|s| s.1.iter()).collect();
    if all.is_empty() {
        return String::new();
    }
    let x0 = all.iter().map(|p| p.0).min().unwrap_or(0) - 1;
    let x1 = all.iter().map(|p| p.0).max().unwrap_or(0) + 1;
    let y1 = all.iter().map(|p| p.1).fold(0.0f64, f64::max) * 1.15 + 1e-9;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "SIT index by tier (USD per 1,000,000 SIT)",
                    ("sans-serif", 20),
                )
                .margin(12)
                .margin_right(48)
                .x_label_area_size(44)
                .y_label_area_size(80)
                .build_cartesian_2d(x0..x1, 0f64..y1)?;
            chart
                .configure_mesh()
                .x_labels(8)
                .x_label_formatter(&|x| sit_core::time::Date(*x).to_string())
                .y_label_formatter(&|y| format!("{y:.3}"))
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 15))
                .light_line_style(RGBColor(244, 244, 244))
                .bold_line_style(RGBColor(215, 215, 215))
                .y_desc("USD per 1M SIT")
                .draw()?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let c = COLOURS[i % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, p.1)),
                        c.stroke_width(2),
                    ))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
                // FINAL days filled, CONTINGENCY (carried) days hollow.
                chart.draw_series(pts.iter().map(|p| {
                    let style = if p.2 { c.stroke_width(2) } else { c.filled() };
                    Circle::new((p.0, p.1), 4, style)
                }))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(SeriesLabelPosition::LowerRight)
                .draw()?;
            root.present()?;
            Ok(())
        })();
        if drawn.is_err() {
            return String::new();
        }
    }
    svg
}

/// One row per contract with a settlement record: its period to date (INDICATIVE) and its
/// last FINAL values, each linked to the signed record.
/// Under a period's final time: what its FINAL record still waits for (a contract's
/// `min_attestations`), if anything.
fn waiting_note(r: &sit_core::settlement::SettlementRecord) -> String {
    match r.attestations.as_ref().filter(|w| !w.waiting_for.is_empty()) {
        Some(w) => format!(
            "<br><small class=\"CONTINGENCY\">FINAL waits for attestations: {} days have fewer than {} (<a href=\"/v1/attestations/{}/{}\">the first</a>)</small>",
            w.waiting_for.len(),
            w.required,
            esc(&r.contract.tier),
            w.waiting_for[0]
        ),
        None => String::new(),
    }
}

fn futures_rows(snap: &Snapshot, suite: &Suite) -> String {
    use sit_core::settlement::Cycle;
    let link = |a: &crate::archive::settlements::Archived| {
        let r = &a.record;
        let q = match r.contract.cycle {
            Cycle::Monthly => String::new(),
            Cycle::Quarterly => format!("?contract={}", r.contract.id),
        };
        format!("/v1/settlement/{}/{}{q}", r.contract.tier, a.label)
    };
    let mut rows = String::new();
    for t in &suite.tiers {
        let Some(o) = snap.settlements.get(&t.id) else {
            continue;
        };
        let mut ids: Vec<&str> = o
            .to_date
            .iter()
            .chain(&o.finals)
            .map(|a| a.record.contract.id.as_str())
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let mtd = match o.to_date.iter().find(|a| a.record.contract.id == id) {
                Some(a) => format!(
                    "<td><a href=\"{}\">{}</a> <span class=\"st\">INDICATIVE</span></td><td class=num>{}</td><td>{} of {}</td><td>{}{}</td>",
                    link(a),
                    esc(&a.label),
                    a.record.value.round_dp(a.record.contract.scale),
                    a.record.days.len(),
                    a.record.period.days().count(),
                    esc(&a.record.final_settlement_time),
                    waiting_note(&a.record)
                ),
                None => "<td colspan=4>—</td>".into(),
            };
            let finals: Vec<String> = o
                .finals
                .iter()
                .filter(|a| a.record.contract.id == id)
                .map(|a| {
                    format!(
                        "<a href=\"{}\">{}</a> <span class=\"st FINAL\">{}</span>",
                        link(a),
                        esc(&a.label),
                        a.record.value.round_dp(a.record.contract.scale)
                    )
                })
                .collect();
            rows.push_str(&format!(
                "<tr><th>{}</th>{mtd}<td>{}</td></tr>\n",
                esc(id),
                if finals.is_empty() {
                    "none yet".into()
                } else {
                    finals.join("<br>")
                }
            ));
        }
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=6>No settlement value yet: <code>sit run</code> settles the listed contracts after each publication.</td></tr>\n".into();
    }
    rows
}

/// The whole page.
/// One row per published notice, the latest first; an emergency is flagged.
fn notice_rows(snap: &Snapshot) -> String {
    if snap.notices.is_empty() {
        return "<tr><td colspan=\"6\"><small>No notices in this data folder (one made before notices existed).</small></td></tr>\n".to_string();
    }
    let mut out = String::new();
    for n in snap.notices.iter().rev() {
        let class = n.class.name();
        let changes: Vec<String> = n.changes.iter().map(|c| esc(&c.describe())).collect();
        out.push_str(&format!(
            "<tr><td><a href=\"/v1/notices/{id}\">{id}</a></td><td class=\"{class}\">{class}</td><td>{p}</td><td>{e}</td><td><small>{c}</small></td><td><small>{r}</small></td></tr>\n",
            id = esc(&n.id),
            p = esc(&n.published_at),
            e = esc(&n.effective_at),
            c = changes.join("<br>"),
            r = esc(&n.reason),
        ));
    }
    out
}

/// A banner when a tier's latest value is signed by a demo key: simulated data.
fn demo_banner(snap: &Snapshot, suite: &Suite) -> String {
    let demo = suite.tiers.iter().any(|t| {
        snap.latest(&t.id)
            .is_some_and(|s| snap.demo_keys.contains(&s.publication.key_id))
    });
    if demo {
        "<p class=\"banner\"><strong>Simulated data.</strong> These values are signed by a demo key (<code>sit demo</code>, on the embedded simulated market): they are not settlement values.</p>".into()
    } else {
        String::new()
    }
}

/// A banner when the latest publication is older than `stale_after_ms` by the wall clock at
/// `now_ms` (added to the page per request: the page itself is rendered once per publication,
/// and staleness grows while nothing is published).
pub fn stale_banner(snap: &Snapshot, now_ms: i64, stale_after_ms: i64) -> Option<String> {
    let latest = snap
        .records
        .values()
        .filter_map(|days| days.values().next_back()?.last())
        .filter_map(|s| sit_core::time::parse_utc_ms(&s.publication.published_at).ok())
        .max()?;
    let age = now_ms - latest;
    (age > stale_after_ms).then(|| {
        format!(
            "<p class=\"banner\"><strong>Stale.</strong> The latest value was published at {}, {} hours ago by this server's clock.</p>",
            sit_core::time::format_utc_ms(latest),
            age / sit_core::time::HOUR_MS
        )
    })
}

/// One row per open dispute, the oldest first.
fn dispute_rows(snap: &Snapshot) -> String {
    if snap.open_disputes.is_empty() {
        return "<tr><td colspan=\"4\"><small>No open disputes.</small></td></tr>\n".to_string();
    }
    snap.open_disputes
        .iter()
        .map(|(id, about, received, due)| {
            format!(
                "<tr><td><a href=\"/v1/disputes/{id}\">{id}</a></td><td><small>{about}</small></td><td>{received}</td><td>{due}</td></tr>\n",
                id = esc(id),
                about = esc(about),
                received = esc(received),
                due = esc(due),
            )
        })
        .collect()
}

/// A record's signed 95% interval as text (`low – high`), when its bundle states one and a
/// resample was set from data.
fn interval_text(snap: &Snapshot, s: &super::snapshot::Served) -> Option<String> {
    let e = &s.entry;
    let i = snap.intervals.get(&(e.tier.clone(), e.date, e.version))?;
    Some(format!(
        "{} – {}",
        i.low.as_ref()?.round_dp(6),
        i.high.as_ref()?.round_dp(6)
    ))
}

/// [`interval_text`] under a value in the tiers table.
fn interval_note(snap: &Snapshot, s: &super::snapshot::Served) -> String {
    interval_text(snap, s)
        .map(|t| format!("<br><small title=\"95% interval (bootstrap over the day's probes)\">95%: {t}</small>"))
        .unwrap_or_default()
}

pub fn render(snap: &Snapshot, suite: &Suite) -> String {
    let m = Methodology::default();
    let mut rows = String::new();
    for t in &suite.tiers {
        let cells = match snap.latest(&t.id) {
            Some(s) => {
                let d = &s.publication.determination;
                let note = d
                    .contingency
                    .as_ref()
                    .map(|c| format!("<br><small>{}</small>", esc(&c.reason)))
                    .unwrap_or_default();
                let f = sit_core::verify::finality(d, sit_core::versions::Registry::embedded());
                // the change from the tier's previous day in force, and when it was published
                let change = snap
                    .records
                    .get(&t.id)
                    .and_then(|days| days.range(..d.date).next_back())
                    .and_then(|(pd, vs)| {
                        let prev = vs.last()?.publication.determination.value?;
                        let now = d.value?;
                        (prev.0 != 0).then(|| {
                            let bp = (now.0 - prev.0) * 1_000_000 / prev.0;
                            format!(
                                "<br><small title=\"change from the value of {pd}\">{}{}.{:02}% vs {pd}</small>",
                                if bp < 0 { "−" } else { "+" },
                                bp.abs() / 10_000,
                                (bp.abs() % 10_000) / 100
                            )
                        })
                    })
                    .unwrap_or_default();
                let published = &s.publication.published_at;
                format!(
                    "<td>{}<br><small>published {} {} UTC</small></td><td class=num>{}{}{change}</td><td class=\"st {st}\">{st}{note}</td><td>{settles}<br><small>final at {final_at}</small></td><td>{}</td><td>{} / {}</td><td>{}</td><td><a href=\"/v1/index/{}/{}\">record</a></td>",
                    d.date,
                    esc(published.get(..10).unwrap_or("")),
                    esc(published.get(11..16).unwrap_or("")),
                    d.value.map(|v| v.round_dp(6)).unwrap_or_else(|| "—".into()),
                    interval_note(snap, s),
                    s.entry.version,
                    d.counts.valid_partitions,
                    d.counts.partitions,
                    d.counts.endpoints_eligible,
                    t.id,
                    d.date,
                    st = d.status.as_str(),
                    settles = if f.settles { "yes" } else { "no" },
                    // for people: minutes are the precision of a cutoff
                    final_at = f
                        .final_at
                        .as_deref()
                        .map(|t| format!("{} {} UTC", &t[..10], &t[11..16]))
                        .unwrap_or_else(|| "unknown".into()),
                )
            }
            None => "<td colspan=8>not yet published</td>".to_string(),
        };
        rows.push_str(&format!(
            "<tr><th>{} <small>{}</small></th>{cells}</tr>\n",
            esc(&t.id),
            esc(&t.name)
        ));
    }
    let mut history = String::new();
    let mut recent: Vec<_> = snap
        .records
        .values()
        .flat_map(|d| d.values())
        .filter_map(|v| v.last())
        .collect();
    recent.sort_by(|a, b| (b.entry.date, &a.entry.tier).cmp(&(a.entry.date, &b.entry.tier)));
    for s in recent.iter().take(45) {
        let e = &s.entry;
        history.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=num>{}</td><td class=num><small>{}</small></td><td class=\"st {st}\">{st}</td><td>{}</td><td>{}</td></tr>\n",
            e.date,
            esc(&e.tier),
            e.value.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
            interval_text(snap, s).unwrap_or_else(|| "—".into()),
            e.version,
            e.sequence,
            st = e.status.as_str(),
        ));
    }
    let notices = notice_rows(snap);
    let futures = futures_rows(snap, suite);
    let svg = chart_svg(snap, suite);
    let chart = if svg.is_empty() {
        "<p>Nothing has been published yet. Run <code>sit publish</code>.</p>".to_string()
    } else {
        format!("<figure>{svg}<figcaption>Filled points: FINAL or RESTATED (settlement values); hollow: BASE (where a chain starts: its anchor, not a settlement value) or CONTINGENCY (the last value carried forward).</figcaption></figure>")
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SIT index</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border-bottom:1px solid #ddd;padding:.35em .55em;text-align:left;vertical-align:top;white-space:nowrap}} small{{white-space:normal}}
.num{{font-variant-numeric:tabular-nums;text-align:right}} .st{{font-weight:600}}
.FINAL{{color:#1a7f37}} .CONTINGENCY{{color:#b35900}} .RESTATED{{color:#0550ae}} .SUSPENDED{{color:#a40e26}} .BASE{{color:#555}} .emergency{{color:#a40e26;font-weight:600}}
.banner{{background:#fff4e5;border:1px solid #b35900;padding:.5em .8em}} figure{{margin:1em 0}} figcaption,footer{{color:#555;font-size:.9em}} code{{background:#f4f4f4;padding:0 .2em}}
</style></head><body>
<h1>Standard Inference Token (SIT) index</h1>
{demo}
<p>Daily settlement values in {unit}. Every value is a signed determination; fetch it from the API and check it with <code>sit verify</code>. Under a value, its 95% interval: a deterministic bootstrap over the day's probes, signed in the day's audit bundle (<code>intervals.json</code>; <code>sit audit replay</code> recomputes it).</p>
<table><thead><tr><th>Tier</th><th>Date (UTC)</th><th>Value</th><th>Status</th><th>Settlement value</th><th>Version</th><th>Valid hours</th><th>Endpoints</th><th></th></tr></thead>
<tbody>
{rows}</tbody></table>
{chart}
<h2>Futures settlement</h2>
<p>Each contract settles on the arithmetic mean of its period's daily values (contracts.toml; the API: <code>/v1/settlement/{{tier}}/{{period}}</code>, e.g. <a href="/v1/settlement/t1/latest">/v1/settlement/t1/latest</a>, described in <a href="/v1/openapi.json">/v1/openapi.json</a>). Until the final settlement time the value is INDICATIVE, the period to date: never a final value.</p>
<table><thead><tr><th>Contract</th><th>Period to date</th><th>Value</th><th>Days</th><th>Final at</th><th>Last final values</th></tr></thead><tbody>
{futures}</tbody></table>
<h2>What each status means</h2>
<table><thead><tr><th>Status</th><th>What it is</th><th>A daily settlement value?</th><th>In a contract period</th></tr></thead><tbody>
<tr><td class="st FINAL">FINAL</td><td><small>determined from the day's own data</small></td><td>yes</td><td>counts with its value</td></tr>
<tr><td class="st RESTATED">RESTATED</td><td><small>a later version of a day, recomputed FINAL before its restatement cutoff</small></td><td>yes</td><td>counts with its value</td></tr>
<tr><td class="st CONTINGENCY">CONTINGENCY</td><td><small>too little valid data: carries the last value set from data</small></td><td>no</td><td>counts with the value it carries</td></tr>
<tr><td class="st SUSPENDED">SUSPENDED</td><td><small>no value of its own for longer than the contingency limit</small></td><td>no</td><td>the contract's fallback (carry or exclude)</td></tr>
<tr><td class="st BASE">BASE</td><td><small>the anchor where a chain starts: a level, not a price change</small></td><td>no</td><td>refused: the period cannot settle</td></tr>
</tbody></table>
<p><small>A day's record is final at its restatement cutoff: 00:00 UTC two days after its date. Methodology: index-methodology.md, section 8.</small></p>
<h2>Notices</h2>
<p>Changes to the methodology, the probe suite, the panel, the contracts and the signing keys are announced before they take effect (<a href="/v1/notices">/v1/notices</a>, signed).</p>
<table><thead><tr><th>Notice</th><th>Class</th><th>Published</th><th>Effective</th><th>What changes</th><th>Reason</th></tr></thead><tbody>
{notices}</tbody></table>
<h2>Disputes</h2>
<p>Registered providers, exchanges and auditors challenge an observation, a determination, a certificate or a settlement record with a signed submission (<code>sit submit</code>); the administrator resolves each by its deadline, and an upheld dispute about a day inside its restatement window restates it (<a href="/v1/disputes">/v1/disputes</a>). {resolved} resolved so far.</p>
<table><thead><tr><th>Dispute</th><th>About</th><th>Received</th><th>Respond by</th></tr></thead><tbody>
{disputes}</tbody></table>
<h2>Recent determinations</h2>
<table><thead><tr><th>Date</th><th>Tier</th><th>Value</th><th>95% interval</th><th>Status</th><th>Version</th><th>Sequence</th></tr></thead><tbody>
{history}</tbody></table>
<footer><p>Methodology {mv} (hash <code>{mh}</code>); probe suite {sv} (hash <code>{sh}</code>). {n} records, loaded {loaded}.
API: <a href="/v1/tiers">/v1/tiers</a>, <a href="/v1/methodology">/v1/methodology</a>, <a href="/v1/keys">/v1/keys</a>, <a href="/v1/notices">/v1/notices</a>, <a href="/v1/openapi.json">/v1/openapi.json</a>.</p></footer>
</body></html>
"#,
        unit = esc(&m.unit),
        mv = esc(&m.version),
        mh = &m.hash()[..16],
        sv = esc(&suite.version),
        sh = &suite.hash[..16.min(suite.hash.len())],
        n = snap.count,
        loaded = snap.loaded_at,
        resolved = snap.resolved_disputes,
        demo = demo_banner(snap, suite),
        disputes = dispute_rows(snap),
    )
}
