//! The waterfall: one bar per object, coloured by phase, the four ways one
//! under another on one time axis, each way's prediction a dashed line.
//!
//! Plain SVG written by hand: a few dozen lines of markup do not need a
//! plotting library in the client.

use super::{DelayReport, Phases, RateSource, Way};
use crate::Transport;
use std::fmt::Write;
use std::time::Duration;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
/// The height of a bar, and the room a bar's row takes.
const BAR: f64 = 10.0;
const ROW: f64 = 14.0;
/// Above each way's bars: its title.
const SECTION_HEAD: f64 = 26.0;
const SECTION_GAP: f64 = 14.0;
/// The phases' colours, in [`Phases::NAMES`]' order (Okabe and Ito's
/// palette, told apart with most colour blindness).
const COLOURS: [&str; 5] = ["#CC79A7", "#E69F00", "#D55E00", "#56B4E9", "#0072B2"];

impl DelayReport {
    /// Returns the waterfall as an SVG document. Each object has one
    /// `<rect class="phase NAME">` per phase of [`Phases::NAMES`] (an
    /// empty phase is a rect of width 0), with a `<title>` a viewer shows
    /// on hover.
    pub fn to_svg(&self) -> String {
        let n = self.options.objects.get() as f64;
        let section = SECTION_HEAD + n * ROW + SECTION_GAP;
        let top = 96.0;
        let axis = top + section * self.ways.len() as f64;
        let height = axis + 44.0;
        let plot = WIDTH - LEFT - RIGHT;
        let longest = self
            .ways
            .iter()
            .flat_map(|way| [way.total, way.prediction.predicted])
            .max()
            .unwrap_or_default();
        let (step, ticks) = ticks(ms(longest));
        let span = step * ticks as f64;
        let x = |time: Duration| LEFT + ms(time) / span * plot;

        let mut svg = String::new();
        let out = &mut svg;
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            out,
            r#"<rect class="background" width="{WIDTH}" height="{height}" fill="white"/>"#
        );
        let over = self.over().to_uppercase();
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">shout delay {}: {} objects of {} bytes over {over}</text>"#,
            escape(&self.target.to_string()),
            self.options.objects,
            self.options.size
        );
        let rate = match self.rate_source {
            RateSource::Given => format!("R {} (given)", self.rate),
            RateSource::Measured { .. } => format!("R {} (measured)", self.rate),
        };
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="44">RTT {:.3} ms, {rate}, {} connections in parallel; dashed: the lecture's prediction</text>"#,
            ms(self.rtt),
            self.options.parallel
        );
        // The legend.
        let connect = match (self.options.transport, self.options.quic) {
            (Transport::Udp, _) => "socket opened",
            (Transport::Tcp, false) => "TCP handshake",
            (Transport::Tcp, true) => "QUIC handshake (TLS inside)",
        };
        let labels = [
            "name lookup",
            connect,
            "TLS handshake",
            "request to first byte",
            "rest of the answer",
        ];
        let mut legend_x = LEFT;
        // TLS has a phase of its own only over TCP: QUIC's is in `connect`.
        let tls = self.options.tls.is_some() && !self.options.quic;
        let shown = labels
            .iter()
            .zip(COLOURS)
            .enumerate()
            .filter(|&(phase, _)| tls || phase != 2)
            .map(|(_, shown)| shown);
        for (label, colour) in shown {
            let _ = writeln!(
                out,
                r#"<rect class="legend" x="{legend_x}" y="58" width="12" height="12" fill="{colour}"/><text x="{}" y="68">{label}</text>"#,
                legend_x + 16.0
            );
            legend_x += 16.0 + label.chars().count() as f64 * 6.6 + 18.0;
        }
        // The grid, under the bars.
        for tick in 0..=ticks {
            let tx = LEFT + plot * tick as f64 / ticks as f64;
            let _ = writeln!(
                out,
                r##"<line class="grid" x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{axis}" stroke="#e4e4e4"/>"##
            );
        }
        for (position, way) in self.ways.iter().enumerate() {
            let y0 = top + section * position as f64;
            let _ = writeln!(
                out,
                r#"<text class="way" x="{LEFT}" y="{}" font-weight="bold">{}: {:.3} ms, predicted {:.3} ms ({:.2}×){}</text>"#,
                y0 + 16.0,
                way_title(way.way),
                ms(way.total),
                ms(way.prediction.predicted),
                way.ratio(),
                match way.retries() {
                    0 => String::new(),
                    resent => format!(", {resent} datagrams sent again"),
                }
            );
            for (row, object) in way.objects.iter().enumerate() {
                let y = y0 + SECTION_HEAD + row as f64 * ROW;
                let _ = writeln!(
                    out,
                    r##"<text x="{}" y="{}" text-anchor="end" font-size="10" fill="#555">{}</text>"##,
                    LEFT - 6.0,
                    y + BAR - 1.0,
                    object.index + 1
                );
                let mut start = object.start;
                for ((name, phase), colour) in
                    Phases::NAMES.iter().zip(object.phases.each()).zip(COLOURS)
                {
                    let _ = writeln!(
                        out,
                        r#"<rect class="phase {name}" x="{:.2}" y="{y}" width="{:.2}" height="{BAR}" fill="{colour}"><title>{} object {}: {name} {:.3} ms</title></rect>"#,
                        x(start),
                        x(start + phase) - x(start),
                        way.way,
                        object.index + 1,
                        ms(phase)
                    );
                    start += phase;
                }
            }
            let px = x(way.prediction.predicted);
            let _ = writeln!(
                out,
                r#"<line class="prediction" x1="{px:.2}" y1="{}" x2="{px:.2}" y2="{}" stroke="black" stroke-dasharray="4 3"/>"#,
                y0 + SECTION_HEAD - 4.0,
                y0 + SECTION_HEAD + n * ROW
            );
        }
        // The time axis.
        let _ = writeln!(
            out,
            r#"<line class="axis" x1="{LEFT}" y1="{axis}" x2="{}" y2="{axis}" stroke="black"/>"#,
            LEFT + plot
        );
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10().floor()) as usize
        };
        for tick in 0..=ticks {
            let tx = LEFT + plot * tick as f64 / ticks as f64;
            let _ = writeln!(
                out,
                r#"<line x1="{tx:.1}" y1="{axis}" x2="{tx:.1}" y2="{}" stroke="black"/><text x="{tx:.1}" y="{}" text-anchor="middle">{:.decimals$}</text>"#,
                axis + 5.0,
                axis + 18.0,
                step * tick as f64
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">time since the way started (ms)</text>"#,
            LEFT + plot / 2.0,
            axis + 36.0
        );
        svg.push_str("</svg>\n");
        svg
    }
}

/// The way's name, as the waterfall's section title.
fn way_title(way: Way) -> &'static str {
    match way {
        Way::NonPersistent => "Non-persistent, one at a time",
        Way::Parallel => "Non-persistent, in parallel",
        Way::Persistent => "Persistent, one request at a time",
        Way::Pipelined => "Persistent, pipelined",
    }
}

/// Returns a round step (1, 2 or 5 times a power of ten) and how many
/// steps cover `longest` milliseconds, about eight.
fn ticks(longest: f64) -> (f64, u32) {
    let longest = if longest > 0.0 { longest } else { 1.0 };
    let raw = longest / 8.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power);
    (step, (longest / step).ceil().max(1.0) as u32)
}

/// Escapes text for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_longest() {
        assert_eq!(ticks(840.0), (200.0, 5));
        assert_eq!(ticks(100.0), (20.0, 5));
        assert_eq!(ticks(0.3), (0.05, 6));
        assert_eq!(ticks(0.0), (0.2, 5));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
