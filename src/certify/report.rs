//! Human reports of a certification run: Markdown, and a standalone HTML page with latency
//! histograms as inline SVG (plotters; no JavaScript, no external files). An interrupted run
//! gets the same reports, marked INCOMPLETE, and no certificate.
//!
//! Histogram bar heights are plain counts; the only floats are pixel positions.

use plotters::prelude::*;
use sit_core::certificate::stats::Hist;
use sit_core::certificate::stats::Percentiles;
use sit_core::certificate::{EndpointInfo, Figures};
use sit_core::observation::Observation;

/// Whether the report belongs to a certificate or to an interrupted run.
pub enum Status<'a> {
    Certified { key_id: &'a str, file: &'a str },
    Incomplete { done: usize, planned: usize },
}

fn ms(us: u64) -> String {
    format!("{}.{:01}", us / 1000, (us % 1000) / 100)
}

fn pct(v: sit_core::fixed::Fixed) -> String {
    format!("{}%", sit_core::fixed::Fixed(v.0 * 100).round_dp(1))
}

fn row(p: &Percentiles) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        p.count,
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.max)
    )
}

/// The Markdown report. `seeding` says how the probes' master seed was chosen (self-seeded,
/// or drawn from the oracle's challenge), in a sentence.
pub fn markdown(
    ep: &EndpointInfo,
    f: &Figures,
    window: (&str, &str),
    status: &Status,
    seeding: &str,
) -> String {
    let mut s = String::new();
    match status {
        Status::Certified { key_id, file } => s.push_str(&format!(
            "# SIT certification report: `{}`\n\nCertificate: `{file}`, signed by `{key_id}`; check it with `sit verify-cert {file} --key PUBKEY`.\n\n",
            ep.id
        )),
        Status::Incomplete { done, planned } => s.push_str(&format!(
            "# INCOMPLETE — SIT certification run of `{}` interrupted\n\n**This run was interrupted after {done} of {planned} attempts. No certificate was issued; the figures below cover only the attempts made and prove nothing.**\n\n",
            ep.id
        )),
    }
    let models: Vec<String> = ep
        .models_returned
        .iter()
        .map(|(m, n)| format!("`{m}` ({n})"))
        .collect();
    s.push_str(&format!(
        "- Endpoint: `{}` ({}), {} dialect, model requested `{}`, returned {}\n- Window: {} to {}\n- Attempts: {}\n- Seeding: {}\n\n",
        ep.base_url,
        ep.provider,
        ep.dialect,
        ep.model_requested,
        if models.is_empty() { "none".into() } else { models.join(", ") },
        window.0,
        window.1,
        f.attempts,
        seeding
    ));
    s.push_str("## Verdict per tier\n\n| tier | verdict | pass rate | 95% lower bound | threshold | availability | p90 TTFT | p90 end-to-end |\n|---|---|---|---|---|---|---|---|\n");
    for t in &f.tiers {
        s.push_str(&format!(
            "| {} | **{}** | {} ({}/{}) | {} | {} | {} | {} ms (SLA {}) | {} ms (SLA {}) |\n",
            t.tier,
            if t.verdict.pass {
                "MEETS"
            } else {
                "DOES NOT MEET"
            },
            pct(t.pass_rate),
            t.correct,
            t.answered,
            pct(t.pass_rate_lower95),
            pct(t.pass_threshold),
            pct(t.availability),
            ms(t.latency.ttft_us.p90),
            t.sla_ttft_ms,
            ms(t.latency.e2e_us.p90),
            t.sla_e2e_ms
        ));
    }
    for t in &f.tiers {
        s.push_str(&format!("\n### {}\n\n", t.tier));
        for c in &t.verdict.checks {
            s.push_str(&format!(
                "- {} `{}`: {}\n",
                if c.ok { "pass" } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        if let Some(n) = t.verdict.attempts_needed {
            s.push_str(&format!(
                "- At the observed pass rate, {n} attempts would be needed for the bound to reach the threshold.\n"
            ));
        }
        s.push_str("\n| family | attempts | answered | correct | pass rate | 95% lower bound |\n|---|---|---|---|---|---|\n");
        for x in &t.families {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                x.family,
                x.attempts,
                x.answered,
                x.correct,
                pct(x.pass_rate),
                pct(x.pass_rate_lower95)
            ));
        }
        let l = &t.latency;
        s.push_str(&format!(
            "\n| latency (ms) | count | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n| time to first byte | {} |\n| time to first token | {} |\n| end to end | {} |\n\nOutput speed after the first token: p50 {} tokens/s, p90 {} tokens/s. Within both SLA limits: {} of {} answers.\n",
            row(&l.ttfb_us),
            row(&l.ttft_us),
            row(&l.e2e_us),
            l.output_speed_milli_tps.p50 / 1000,
            l.output_speed_milli_tps.p90 / 1000,
            t.within_sla,
            t.answered
        ));
    }
    s.push_str("\n## Failures\n\n");
    if f.failures.is_empty() {
        s.push_str("None.\n");
    }
    for (k, v) in &f.failures {
        s.push_str(&format!("- `{k}`: {v}\n"));
    }
    let tk = &f.tokens;
    let r = |x: Option<sit_core::fixed::Fixed>| x.map(|v| v.round_dp(3)).unwrap_or("n/a".into());
    s.push_str(&format!(
        "\n## Token accounting\n\n- All attempts: {} reported usage, {} input and {} output tokens in total\n- Answers with usage: {} of {}\n- Input: reported {}, reference {} (ratio {})\n- Output: reported {} of which reasoning {}, reference {} (ratio without reasoning {})\n- Answers with reasoning tokens: {}; with cached tokens: {} ({} tokens)\n",
        tk.attempts_with_usage,
        tk.reported_input_all,
        tk.reported_output_all,
        tk.answered_with_usage,
        tk.answered,
        tk.reported_input,
        tk.reference_input,
        r(tk.input_ratio),
        tk.reported_output,
        tk.reported_reasoning,
        tk.reference_output,
        r(tk.output_ratio),
        tk.answers_with_reasoning,
        tk.answers_with_cached,
        tk.reported_cached
    ));
    let c = &f.conformance;
    s.push_str(&format!(
        "\n## Streaming conformance\n\n- Streams: {}; with a usage chunk: {}; without the end marker: {}; content before the role: {}\n",
        c.streams, c.usage_chunk, c.missing_end_marker, c.content_before_role
    ));
    s.push_str("\n## Flags\n\n");
    if f.flags.is_empty() {
        s.push_str("None.\n");
    }
    for x in &f.flags {
        s.push_str(&format!("- **{}**: {}\n", x.code, x.detail));
    }
    s
}

/// An SVG histogram of one tier's time to first token and end-to-end times (ms).
fn histogram_svg(title: &str, obs: &[&Observation], sla_ttft_ms: u64) -> String {
    let mut h = Hist::default();
    for o in obs {
        if let Some(v) = o.timings.first_token_ns {
            h.record(v / 1_000_000);
        }
    }
    let bins = h.bins(20);
    if bins.is_empty() {
        return String::new();
    }
    let width = if bins.len() > 1 {
        bins[1].0 - bins[0].0
    } else {
        1
    };
    let x1 = (bins.last().unwrap().0 + width).max(sla_ttft_ms + width);
    let y1 = bins.iter().map(|b| b.1).max().unwrap_or(1) + 1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 260)).into_drawing_area();
        let r = (|| -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut ch = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(44)
                .build_cartesian_2d(0u64..x1, 0u64..y1)?;
            ch.configure_mesh()
                .x_desc("time to first token (ms)")
                .y_desc("attempts")
                .light_line_style(RGBColor(240, 240, 240))
                .draw()?;
            ch.draw_series(bins.iter().map(|(lo, n)| {
                Rectangle::new(
                    [(*lo, 0), (lo + width, *n)],
                    RGBColor(31, 119, 180).filled(),
                )
            }))?;
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(sla_ttft_ms, 0), (sla_ttft_ms, y1)],
                RED.stroke_width(2),
            )))?
            .label("SLA")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
            ch.configure_series_labels().border_style(BLACK).draw()?;
            root.present()?;
            Ok(())
        })();
        if r.is_err() {
            return String::new();
        }
    }
    svg
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The standalone HTML page: the Markdown's content plus a histogram per tier.
pub fn html(
    ep: &EndpointInfo,
    f: &Figures,
    window: (&str, &str),
    status: &Status,
    seeding: &str,
    obs: &[Observation],
) -> String {
    let md = markdown(ep, f, window, status, seeding);
    let mut charts = String::new();
    for t in &f.tiers {
        let these: Vec<&Observation> = obs
            .iter()
            .filter(|o| o.tier == t.tier && o.failure.is_none())
            .collect();
        charts.push_str(&histogram_svg(
            &format!("{}: time to first token", t.tier),
            &these,
            t.sla_ttft_ms,
        ));
    }
    let banner = match status {
        Status::Incomplete { .. } => {
            "<p style=\"background:#fde;padding:.6em;font-weight:700\">INCOMPLETE: interrupted run, no certificate issued.</p>"
        }
        Status::Certified { .. } => "",
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SIT certification: {id}</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}} pre{{white-space:pre-wrap;background:#f7f7f7;padding:1em}}</style></head><body>\n{banner}<h1>SIT certification: {id}</h1>\n{charts}\n<pre>{md}</pre>\n</body></html>\n",
        id = esc(&ep.id),
        md = esc(&md),
    )
}
