//! Charts with plotters: grouped bars (with optional min–max error bars and a reference
//! line). Every chart is written twice, as SVG and PNG, with axis labels, units, a legend and
//! a title naming the machine and date.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::{FontFamily, register_font};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Register the shipped font once (ab_glyph reads no system fonts).
pub fn init_fonts() {
    // Registering twice is harmless; ignore "already registered" results.
    let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    let _ = register_font("sans-serif", FontStyle::Bold, FONT);
}

pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Compact axis numbers: 0.5, 12, 1500, 1e-5.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').to_string()
    }
}

/// A chart that can draw itself on any plotters backend (SVG and PNG alike).
pub trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

thread_local! {
    static SAVED: std::cell::RefCell<Vec<std::path::PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The stems written by [`save_svg_png`] on this thread since the last call, in order.
pub fn take_saved() -> Vec<std::path::PathBuf> {
    SAVED.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Write `<stem>.svg` and `<stem>.png` of `chart` at `size` pixels.
pub fn save_svg_png(chart: &impl Draw, stem: &Path, size: (u32, u32)) -> Result<()> {
    SAVED.with(|s| s.borrow_mut().push(stem.to_path_buf()));
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

/// One bar: value and an optional (min, max) error bar.
#[derive(Clone, Copy, Debug)]
pub struct Bar {
    pub value: f64,
    pub err: Option<(f64, f64)>,
}

/// A grouped bar chart: `groups` along x, one bar per series inside each group.
pub struct Grouped {
    pub title: String,
    pub subtitle: String,
    pub y_label: String,
    pub groups: Vec<String>,
    pub series: Vec<String>,
    /// `values[series][group]`; `None` leaves a gap.
    pub values: Vec<Vec<Option<Bar>>>,
    /// Horizontal reference lines: (value, label).
    pub lines: Vec<(f64, String)>,
    pub log_y: bool,
}

impl Grouped {
    /// Write `<stem>.svg` and `<stem>.png`.
    pub fn save(&self, stem: &Path) -> Result<()> {
        save_svg_png(self, stem, (1100, 620))
    }

    fn mesh_and_bars<'a, DB: DrawingBackend + 'a, Y>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
        base: f64,
        ng: usize,
        ns: usize,
        label_font: &FontDesc,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let groups = self.groups.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(ng * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 1e-6 && i < groups.len() {
                    groups[i].clone()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v: &f64| fmt_num(*v))
            .y_desc(self.y_label.clone())
            .axis_desc_style(label_font.clone())
            .label_style((FontFamily::SansSerif, 13))
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
        let width = 0.8 / ns as f64;
        for (si, name) in self.series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            let bars: Vec<(usize, Bar)> = self.values[si]
                .iter()
                .enumerate()
                .filter_map(|(g, b)| b.map(|b| (g, b)))
                .collect();
            let x0 = |g: usize| g as f64 + 0.1 + si as f64 * width;
            chart
                .draw_series(bars.iter().map(|&(g, b)| {
                    Rectangle::new(
                        [(x0(g), base), (x0(g) + width * 0.92, b.value)],
                        color.filled(),
                    )
                }))
                .map_err(|e| anyhow!("{e:?}"))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
            chart
                .draw_series(bars.iter().filter_map(|&(g, b)| {
                    b.err.map(|(lo, hi)| {
                        let xm = x0(g) + width * 0.46;
                        PathElement::new(vec![(xm, lo), (xm, hi)], BLACK.stroke_width(2))
                    })
                }))
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        for (li, (v, label)) in self.lines.iter().enumerate() {
            let style = ShapeStyle::from(&RGBColor(60, 60, 60)).stroke_width(2);
            let _ = li;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, *v), (ng as f64, *v)],
                    8,
                    5,
                    style,
                ))
                .map_err(|e| anyhow!("{e:?}"))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FontFamily::SansSerif, 13))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
        Ok(())
    }
}

impl Draw for Grouped {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let (top, body) = root.split_vertically(64);
        top.draw(&Text::new(
            self.title.clone(),
            (20, 10),
            (FontFamily::SansSerif, 22)
                .into_font()
                .style(FontStyle::Bold),
        ))
        .map_err(|e| anyhow!("{e:?}"))?;
        top.draw(&Text::new(
            self.subtitle.clone(),
            (20, 40),
            (FontFamily::SansSerif, 14)
                .into_font()
                .color(&RGBColor(90, 90, 90)),
        ))
        .map_err(|e| anyhow!("{e:?}"))?;
        let ng = self.groups.len().max(1);
        let ns = self.series.len().max(1);
        let mut ymax = 0f64;
        let mut ymin = f64::INFINITY;
        for s in &self.values {
            for b in s.iter().flatten() {
                ymax = ymax.max(b.err.map_or(b.value, |e| e.1.max(b.value)));
                ymin = ymin.min(b.err.map_or(b.value, |e| e.0.min(b.value)));
            }
        }
        for (v, _) in &self.lines {
            ymax = ymax.max(*v);
            ymin = ymin.min(*v);
        }
        if !ymax.is_finite() || ymax <= 0.0 {
            ymax = 1.0;
        }
        let x_range = 0f64..ng as f64;
        let label_font = (FontFamily::SansSerif, 15).into_font();
        if self.log_y {
            let lo = (ymin.max(1e-9) / 2.0).max(ymax / 1e6);
            let mut chart = ChartBuilder::on(&body)
                .margin(16)
                .x_label_area_size(70)
                .y_label_area_size(80)
                .build_cartesian_2d(x_range, (lo..ymax * 2.0).log_scale())
                .map_err(|e| anyhow!("{e:?}"))?;
            self.mesh_and_bars(&mut chart, lo, ng, ns, &label_font)?;
        } else {
            let mut chart = ChartBuilder::on(&body)
                .margin(16)
                .x_label_area_size(70)
                .y_label_area_size(80)
                .build_cartesian_2d(x_range, (ymin.min(0.0) * 1.15)..ymax * 1.15)
                .map_err(|e| anyhow!("{e:?}"))?;
            self.mesh_and_bars(&mut chart, 0.0, ng, ns, &label_font)?;
        }
        Ok(())
    }
}

/// A line chart: x numeric, one line per series.
pub struct Lines {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub log_y: bool,
}

impl Lines {
    pub fn save(&self, stem: &Path) -> Result<()> {
        save_svg_png(self, stem, (1100, 620))
    }
}

impl Draw for Lines {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let (top, body) = root.split_vertically(64);
        top.draw(&Text::new(
            self.title.clone(),
            (20, 10),
            (FontFamily::SansSerif, 22)
                .into_font()
                .style(FontStyle::Bold),
        ))
        .map_err(|e| anyhow!("{e:?}"))?;
        top.draw(&Text::new(
            self.subtitle.clone(),
            (20, 40),
            (FontFamily::SansSerif, 14)
                .into_font()
                .color(&RGBColor(90, 90, 90)),
        ))
        .map_err(|e| anyhow!("{e:?}"))?;
        let pts = self.series.iter().flat_map(|s| s.1.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let label_font = (FontFamily::SansSerif, 15).into_font();
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .y_label_formatter(&|v: &f64| fmt_num(*v))
                    .x_desc(self.x_label.clone())
                    .y_desc(self.y_label.clone())
                    .axis_desc_style(label_font.clone())
                    .label_style((FontFamily::SansSerif, 13))
                    .draw()
                    .map_err(|e| anyhow!("{e:?}"))?;
                for (i, (name, pts)) in self.series.iter().enumerate() {
                    let color = PALETTE[i % PALETTE.len()];
                    chart
                        .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                        .map_err(|e| anyhow!("{e:?}"))?
                        .label(name.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font((FontFamily::SansSerif, 13))
                    .draw()
                    .map_err(|e| anyhow!("{e:?}"))?;
            }};
        }
        if self.log_y {
            let lo = y0.max(1e-9) / 1.5;
            body!(
                ChartBuilder::on(&body)
                    .margin(16)
                    .x_label_area_size(50)
                    .y_label_area_size(80)
                    .build_cartesian_2d(x0..x1, (lo..y1 * 1.5).log_scale())
                    .map_err(|e| anyhow!("{e:?}"))?
            );
        } else {
            let lo = if y0 >= 0.0 { 0.0 } else { y0 * 1.1 };
            body!(
                ChartBuilder::on(&body)
                    .margin(16)
                    .x_label_area_size(50)
                    .y_label_area_size(80)
                    .build_cartesian_2d(x0..x1, lo..y1 * 1.1)
                    .map_err(|e| anyhow!("{e:?}"))?
            );
        }
        Ok(())
    }
}
