//! Line charts of figures over days, as SVG (plotters). Display only: the fixed-point values
//! are converted to f64 to place points, and the exact figures are in the report's tables.

use plotters::prelude::*;
use sit_core::time::Date;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

/// One named series: (day, value) points.
pub type Series = (String, Vec<(Date, f64)>);

/// An SVG line chart of `series` (empty string when there is no point). `dashed[i]` draws
/// series `i` thinner, for a reference line.
pub fn lines(title: &str, y_desc: &str, series: &[Series], dashed: &[bool]) -> String {
    let all: Vec<&(Date, f64)> = series.iter().flat_map(|s| s.1.iter()).collect();
    if all.is_empty() {
        return String::new();
    }
    let x0 = all.iter().map(|p| p.0 .0).min().unwrap_or(0) - 1;
    let x1 = all.iter().map(|p| p.0 .0).max().unwrap_or(0) + 1;
    let y1 = all.iter().map(|p| p.1).fold(0.0f64, f64::max) * 1.15 + 1e-9;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .margin_right(40)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(x0..x1, 0f64..y1)?;
            chart
                .configure_mesh()
                .x_labels(8)
                .x_label_formatter(&|x| Date(*x).to_string())
                .y_label_formatter(&|y| format!("{y:.3}"))
                .y_desc(y_desc)
                .light_line_style(RGBColor(244, 244, 244))
                .draw()?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let c = COLOURS[i % COLOURS.len()];
                let w = if dashed.get(i).copied().unwrap_or(false) {
                    1
                } else {
                    2
                };
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0 .0, p.1)),
                        c.stroke_width(w),
                    ))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(w))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
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
