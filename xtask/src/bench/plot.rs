//! docs/benchmarks.svg: for each workload, throughput (top), p99 latency
//! (middle) and the server's CPU time per message (bottom) per server, as
//! bars; for the idle connections, memory per connection and the time to
//! accept them all. The TLS workloads are panels like the others, their
//! servers in darker shades of their plain kin's colours. Drawn with `plotters`'
//! SVG backend only, so xtask stays light (no font or image crates: the
//! SVG names its fonts and the viewer draws the text).

use super::report::{Results, count, cpu_time, latency};
use super::servers::Server;
use super::workloads::{Figure, Kind, Measurement, WORKLOADS};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const PANEL_WIDTH: u32 = 210;
const HEIGHT: u32 = 860;
const HEADER: u32 = 70;

/// One panel: a workload's figure per server.
struct Panel {
    caption: String,
    unit: &'static str,
    bars: Vec<(Server, f64)>,
    label: fn(f64) -> String,
}

/// Draws the plot of `results` (medians over `runs` runs) to `path`.
pub(crate) fn draw(path: &Path, results: &Results, runs: usize) -> Result<(), String> {
    let workloads = results.workloads();
    if workloads.is_empty() {
        return Err("nothing was measured".into());
    }
    let mut top = Vec::new();
    let mut middle = Vec::new();
    let mut bottom = Vec::new();
    for index in workloads {
        let workload = &WORKLOADS[index];
        let figure = |figure: Figure| {
            workload
                .servers
                .iter()
                .filter_map(|&server| Some((server, results.median(index, server, figure)?)))
                .collect::<Vec<_>>()
        };
        match workload.kind {
            Kind::Tcp | Kind::Udp => {
                top.push(Panel {
                    caption: workload.name.into(),
                    unit: "msgs/s",
                    bars: figure(Measurement::msgs_per_sec),
                    label: count,
                });
                middle.push(Panel {
                    caption: String::new(),
                    unit: "p99 latency, µs",
                    bars: figure(Measurement::p99_us),
                    label: latency,
                });
                bottom.push(Panel {
                    caption: String::new(),
                    unit: "server CPU per message, µs",
                    bars: figure(Measurement::server_us_per_msg),
                    label: cpu_time,
                });
            }
            Kind::Hold(_) => {
                top.push(Panel {
                    caption: workload.name.into(),
                    unit: "server RSS per connection, B",
                    bars: figure(Measurement::rss_per_conn),
                    label: count,
                });
                middle.push(Panel {
                    caption: String::new(),
                    unit: "all accepted after, ms",
                    bars: figure(Measurement::accept_s)
                        .into_iter()
                        .map(|(server, seconds)| (server, seconds * 1e3))
                        .collect(),
                    label: count,
                });
                bottom.push(Panel {
                    caption: String::new(),
                    unit: "then one request each: p99, µs",
                    bars: figure(Measurement::p99_us),
                    label: latency,
                });
            }
        }
    }
    let width = PANEL_WIDTH * top.len() as u32 + 20;
    let root = SVGBackend::new(path, (width, HEIGHT)).into_drawing_area();
    let failed = |error: DrawingAreaErrorKind<_>| format!("drawing {}: {error}", path.display());
    root.fill(&WHITE).map_err(failed)?;
    let (header, body) = root.split_vertically(HEADER);
    header
        .draw_text(
            &format!(
                "shout benchmarks: throughput, p99 latency, server CPU per message; median of {runs} run{}",
                if runs == 1 { "" } else { "s" }
            ),
            &("sans-serif", 18).into_font().color(&BLACK),
            (12, 10),
        )
        .map_err(failed)?;
    for (slot, server) in super::servers::ALL.iter().enumerate() {
        let x = 12 + 130 * slot as i32;
        header
            .draw(&Rectangle::new(
                [(x, 42), (x + 14, 56)],
                color(*server).filled(),
            ))
            .map_err(failed)?;
        header
            .draw_text(
                server.name(),
                &("sans-serif", 13).into_font().color(&BLACK),
                (x + 20, 42),
            )
            .map_err(failed)?;
    }
    let cells = body.split_evenly((3, top.len()));
    let panels = top.iter().chain(&middle).chain(&bottom);
    for (area, panel) in cells.iter().zip(panels) {
        draw_panel(area, panel).map_err(failed)?;
    }
    root.present().map_err(failed)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let max = panel
        .bars
        .iter()
        .map(|&(_, value)| value)
        .fold(0.0, f64::max);
    let top = if max > 0.0 { max * 1.2 } else { 1.0 };
    let slots = panel.bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(18)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..slots, 0.0..top)?;
    let label = panel.label;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(panel.unit)
        .y_labels(5)
        .y_label_formatter(&|value| short(*value))
        .label_style(("sans-serif", 10))
        .axis_desc_style(("sans-serif", 11))
        .draw()?;
    chart.draw_series(
        panel
            .bars
            .iter()
            .enumerate()
            .map(|(slot, &(server, value))| {
                let x = slot as f64;
                Rectangle::new([(x + 0.12, 0.0), (x + 0.88, value)], color(server).filled())
            }),
    )?;
    chart.draw_series(panel.bars.iter().enumerate().map(|(slot, &(_, value))| {
        Text::new(
            label(value),
            (slot as f64 + 0.5, value + top * 0.02),
            ("sans-serif", 9)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    Ok(())
}

/// Axis numbers: `1.2M`, `850k`, `12`.
fn short(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn color(server: Server) -> RGBColor {
    match server {
        Server::Shoutd1 => RGBColor(31, 119, 180),
        Server::ShoutdBase => RGBColor(148, 103, 189),
        Server::ShoutdBusy => RGBColor(140, 86, 75),
        Server::Shoutd2 => RGBColor(23, 190, 207),
        Server::Tokio1 => RGBColor(214, 39, 40),
        Server::TokioMt => RGBColor(255, 127, 14),
        Server::Ceiling1 => RGBColor(190, 190, 190),
        Server::Ceiling2 => RGBColor(130, 130, 130),
        Server::Python => RGBColor(44, 160, 44),
        // The TLS servers: the hue of their plain kin, darker.
        Server::ShoutdTls1 => RGBColor(16, 60, 120),
        Server::TokioRustls1 => RGBColor(130, 20, 25),
        Server::TokioRustlsMt => RGBColor(170, 80, 5),
        // The QUIC servers: the same hues, lighter.
        Server::ShoutdQuic1 => RGBColor(120, 170, 230),
        Server::Quinn1 => RGBColor(240, 120, 120),
        // The WebSocket servers: the same hues, paler still.
        Server::ShoutdWs1 => RGBColor(170, 200, 240),
        Server::TokioWs1 => RGBColor(250, 170, 170),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_and_server_is_drawn_tls_included() {
        let json = r#"{"transport":"tcp","target":"127.0.0.1:1","mode":"closed-loop","connections":1,"depth":1,"size":64,"rate":null,"seconds":1.0,"messages":0,"msgs_per_sec":1000.0,"mib_per_sec":0.0,"p50_us":0.0,"p90_us":0.0,"p99_us":50.0,"p999_us":0.0,"max_us":0.0,"mean_us":0.0,"errors":0,"lost":0,"late":0,"held":null,"open_seconds":null,"first_error":null}"#;
        let summary = shout_bench::Summary::from_output(json).unwrap();
        let mut results = Results::default();
        for (index, workload) in WORKLOADS.iter().enumerate() {
            for &server in workload.servers {
                results.record(index, server, Ok(Measurement::of(summary.clone())));
            }
        }
        let path = std::env::temp_dir().join(format!("xtask-plot-{}.svg", std::process::id()));
        draw(&path, &results, 1).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for name in [
            "tls-pipelined",
            "tls-idle",
            "shoutd-1-tls",
            "tokio-rustls-mt",
        ] {
            assert!(svg.contains(name), "{name} is not drawn");
        }
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short(1_234_567.0), "1.2M");
        assert_eq!(short(85_000.0), "85k");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(0.5), "0.5");
    }
}
