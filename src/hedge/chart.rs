//! SVG charts of the hedge analytics (plotters, SVG backend): one document per report, no
//! JavaScript, readable as a file or embedded in a page.

use super::analysis::Report;
use super::simulate::Outcome;
use plotters::prelude::*;

const BLUE: RGBColor = RGBColor(5, 80, 174);
const ORANGE: RGBColor = RGBColor(179, 89, 0);
const GREEN: RGBColor = RGBColor(26, 127, 55);
const GREY: RGBColor = RGBColor(150, 150, 150);

type Drawn<'a> = Result<(), Box<dyn std::error::Error + 'a>>;

/// A legend box at `pos`, drawn the same way on every chart.
fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    pos: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(pos)
        .draw()
}

/// A line swatch for a legend entry.
fn swatch(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
}

fn range(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = v.clone().fold(f64::INFINITY, f64::min);
    let hi = v.fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-6).max(1e-12);
    (lo - pad, hi + pad)
}

/// `sit hedge`: the buyer's cost per unit and the index over time (two scales), then the
/// cumulative cost change unhedged and hedged with h*.
pub fn analysis_svg(r: &Report, tier: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 760)).into_drawing_area();
        let drawn = (|| -> Drawn<'_> {
            root.fill(&WHITE)?;
            let (top, bottom) = root.split_vertically(380);
            let n = r.aligned.len() as i32;
            let dates: Vec<String> = r.aligned.iter().map(|a| a.0.clone()).collect();
            let label = |x: &i32| dates.get(*x as usize).cloned().unwrap_or_default();
            let (s0, s1) = range(r.aligned.iter().map(|a| a.1));
            let (f0, f1) = range(r.aligned.iter().map(|a| a.2));
            let mut c = ChartBuilder::on(&top)
                .caption(
                    format!(
                        "Cost per unit of work and the {tier} index (h* = {:.4})",
                        r.h
                    ),
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(80)
                .right_y_label_area_size(80)
                .build_cartesian_2d(0..n.max(2) - 1, s0..s1)?
                .set_secondary_coord(0..n.max(2) - 1, f0..f1);
            c.configure_mesh()
                .x_labels(6)
                .x_label_formatter(&label)
                .y_desc("cost per unit (USD)")
                .label_style(("sans-serif", 13))
                .light_line_style(RGBColor(244, 244, 244))
                .draw()?;
            c.configure_secondary_axes()
                .y_desc("index (USD per 1M SIT)")
                .label_style(("sans-serif", 13))
                .draw()?;
            c.draw_series(LineSeries::new(
                r.aligned.iter().enumerate().map(|(i, a)| (i as i32, a.1)),
                BLUE.stroke_width(2),
            ))?
            .label("cost per unit (left)")
            .legend(swatch(BLUE));
            c.draw_secondary_series(LineSeries::new(
                r.aligned.iter().enumerate().map(|(i, a)| (i as i32, a.2)),
                ORANGE.stroke_width(2),
            ))?
            .label("index (right)")
            .legend(swatch(ORANGE));
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
            let (p0, p1) = range(r.pnl.iter().flat_map(|p| [p.1, p.2]));
            let mut c = ChartBuilder::on(&bottom)
                .caption(
                    format!(
                        "Cumulative change in cost per unit: effectiveness {:.1}% (Ederington)",
                        100.0 * r.effectiveness
                    ),
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(80)
                .right_y_label_area_size(80)
                .build_cartesian_2d(0..n.max(2) - 1, p0..p1)?;
            c.configure_mesh()
                .x_labels(6)
                .x_label_formatter(&label)
                .y_desc("USD per unit since the first date")
                .label_style(("sans-serif", 13))
                .light_line_style(RGBColor(244, 244, 244))
                .draw()?;
            c.draw_series(LineSeries::new(
                r.pnl.iter().enumerate().map(|(i, p)| (i as i32, p.1)),
                GREY.stroke_width(2),
            ))?
            .label("unhedged")
            .legend(swatch(GREY));
            c.draw_series(LineSeries::new(
                r.pnl.iter().enumerate().map(|(i, p)| (i as i32, p.2)),
                GREEN.stroke_width(2),
            ))?
            .label("hedged with h*")
            .legend(swatch(GREEN));
            legend(&mut c, SeriesLabelPosition::UpperLeft)?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">chart failed: {e}</text></svg>");
        }
    }
    svg
}

/// `sit hedge simulate`: a fan chart of the monthly average spot price (5-95% and 25-75%
/// bands, median, sample paths), and the distribution of the horizon's total cost, unhedged
/// and hedged.
pub fn simulate_svg(o: &Outcome) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 500)).into_drawing_area();
        let drawn = (|| -> Drawn<'_> {
            root.fill(&WHITE)?;
            let (left, right) = root.split_horizontally(600);
            let months = o.months as f64;
            let hi = o
                .fan
                .iter()
                .map(|f| f.p95)
                .chain(o.sample_paths.iter().flatten().copied())
                .fold(0.0f64, f64::max)
                * 1.05;
            let mut c = ChartBuilder::on(&left)
                .caption(
                    format!("Spot SIT price, monthly average ({} paths)", o.paths),
                    ("sans-serif", 17),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(70)
                .build_cartesian_2d(1f64..months.max(2.0), 0f64..hi.max(1e-9))?;
            c.configure_mesh()
                .x_desc("month")
                .y_desc("USD per 1M SIT")
                .label_style(("sans-serif", 13))
                .light_line_style(RGBColor(244, 244, 244))
                .draw()?;
            let band = |lo: &dyn Fn(&super::simulate::Fan) -> f64,
                        hi: &dyn Fn(&super::simulate::Fan) -> f64| {
                let mut pts: Vec<(f64, f64)> =
                    o.fan.iter().map(|f| (f.month as f64, hi(f))).collect();
                pts.extend(o.fan.iter().rev().map(|f| (f.month as f64, lo(f))));
                pts
            };
            c.draw_series(std::iter::once(Polygon::new(
                band(&|f| f.p05, &|f| f.p95),
                BLUE.mix(0.15).filled(),
            )))?
            .label("5-95%")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.15).filled())
            });
            c.draw_series(std::iter::once(Polygon::new(
                band(&|f| f.p25, &|f| f.p75),
                BLUE.mix(0.3).filled(),
            )))?
            .label("25-75%")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.3).filled()));
            for p in &o.sample_paths {
                c.draw_series(LineSeries::new(
                    p.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)),
                    GREY.mix(0.6).stroke_width(1),
                ))?;
            }
            c.draw_series(LineSeries::new(
                o.fan.iter().map(|f| (f.month as f64, f.p50)),
                BLUE.stroke_width(2),
            ))?
            .label("median")
            .legend(swatch(BLUE));
            legend(&mut c, SeriesLabelPosition::UpperLeft)?;
            // histograms of the total cost over the horizon
            let (lo, hi) = super::chart::range(o.totals.iter().flat_map(|t| [t.0, t.1]));
            let bins = 40usize;
            let w = (hi - lo) / bins as f64;
            let count = |sel: &dyn Fn(&(f64, f64)) -> f64| {
                let mut h = vec![0usize; bins];
                for t in &o.totals {
                    let i = (((sel(t) - lo) / w) as usize).min(bins - 1);
                    h[i] += 1;
                }
                h
            };
            let (hu, hh) = (count(&|t| t.0), count(&|t| t.1));
            let top = *hu.iter().chain(&hh).max().unwrap_or(&1) as f64 * 1.1;
            let mut c = ChartBuilder::on(&right)
                .caption(
                    format!(
                        "Total cost over {} months: volatility -{:.1}% (95% CI {:.1}-{:.1}%)",
                        o.months,
                        100.0 * o.reduction,
                        100.0 * o.reduction_ci95.0,
                        100.0 * o.reduction_ci95.1
                    ),
                    ("sans-serif", 15),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(lo..hi, 0f64..top)?;
            c.configure_mesh()
                .x_desc("USD")
                .y_desc("paths")
                .x_label_formatter(&|x| format!("{:.2e}", x))
                .label_style(("sans-serif", 12))
                .light_line_style(RGBColor(244, 244, 244))
                .draw()?;
            for (h, colour, name) in [(&hu, GREY, "unhedged"), (&hh, GREEN, "hedged")] {
                c.draw_series(h.iter().enumerate().map(|(i, n)| {
                    let x0 = lo + i as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, *n as f64)], colour.mix(0.45).filled())
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 20, y + 5)], colour.mix(0.45).filled())
                });
            }
            legend(&mut c, SeriesLabelPosition::UpperRight)?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">chart failed: {e}</text></svg>");
        }
    }
    svg
}
