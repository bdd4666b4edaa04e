//! The link's quantities as people type them: durations (`50ms`), rates
//! (`10mbit`) and loss (`1%`), each with an error that says what was wrong.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a quantity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

/// Parses a duration: a number and a unit among `s`, `ms`, `us` (or `µs`)
/// and `ns`, such as `50ms`, `1.5s` or `250us`. A bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, unit) = split_number(trimmed);
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        _ => {
            return Err(UnitError(format!(
                "{text:?} is not a duration: write a number and a unit, like 50ms, 1s or 250us"
            )));
        }
    };
    let value = parse_number(number, text, "duration")?;
    // A link's delay beyond an hour is a typo, and would overflow the
    // clock's arithmetic far sooner than `Duration` does.
    match Duration::try_from_secs_f64(value * scale) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        _ => Err(UnitError(format!(
            "{text:?} is too long a duration: at most an hour"
        ))),
    }
}

/// The longest duration a link takes: an hour.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A link's rate, in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(u64);

impl Rate {
    /// Returns the rate of `bits_per_second`, or `None` for zero.
    pub fn from_bits_per_second(bits_per_second: u64) -> Option<Self> {
        (bits_per_second > 0).then_some(Self(bits_per_second))
    }

    /// Returns the rate in bits per second (never zero).
    pub fn bits_per_second(self) -> u64 {
        self.0
    }

    /// Returns how long `bytes` bytes occupy a link of this rate, rounded up
    /// to the nanosecond.
    pub fn serialization(self, bytes: usize) -> Duration {
        let bits = bytes as u128 * 8;
        let nanos = (bits * 1_000_000_000).div_ceil(u128::from(self.0));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    /// Parses `10mbit`, `1gbit`, `500kbit` or `9600bit` (powers of 1,000,
    /// as tc and network people count), or the same in bytes per second with
    /// `bps`: `kbps`, `mbps`, `gbps` (`1mbps` is 8 Mbit/s).
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let (number, unit) = split_number(text.trim());
        let unit = unit.to_ascii_lowercase();
        let scale = match unit.as_str() {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            "bps" => 8.0,
            "kbps" => 8e3,
            "mbps" => 8e6,
            "gbps" => 8e9,
            _ => {
                return Err(UnitError(format!(
                    "{text:?} is not a rate: write a number and a unit, like 10mbit, 500kbit or 1gbit"
                )));
            }
        };
        let bits = parse_number(number, text, "rate")? * scale;
        if !(1.0..=1e12).contains(&bits) {
            return Err(UnitError(format!(
                "{text:?} is out of range: a rate is from 1bit to 1000gbit"
            )));
        }
        Ok(Self(bits.round() as u64))
    }
}

impl fmt::Display for Rate {
    /// Writes the rate in the largest unit that keeps it a plain number:
    /// `10 Mbit/s`, `1.5 Gbit/s`, `64 kbit/s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0 as f64;
        let (value, unit) = if bits >= 1e9 {
            (bits / 1e9, "Gbit/s")
        } else if bits >= 1e6 {
            (bits / 1e6, "Mbit/s")
        } else if bits >= 1e3 {
            (bits / 1e3, "kbit/s")
        } else {
            (bits, "bit/s")
        };
        write!(f, "{} {unit}", trim_number(value))
    }
}

/// A probability that each packet is lost, typed as a percentage.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Loss(f64);

impl Loss {
    /// Returns the loss of `fraction` (0 to 1), or `None` outside that range.
    pub fn from_fraction(fraction: f64) -> Option<Self> {
        (0.0..=1.0).contains(&fraction).then_some(Self(fraction))
    }

    /// Returns the probability that a packet is lost, from 0 to 1.
    pub fn fraction(self) -> f64 {
        self.0
    }
}

impl FromStr for Loss {
    type Err = UnitError;

    /// Parses a percentage from `0%` to `100%`: `1%`, `0.5%`.
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let Some(number) = text.trim().strip_suffix('%') else {
            return Err(UnitError(format!(
                "{text:?} is not a percentage: write it with %, like 1% or 0.5%"
            )));
        };
        let percent = parse_number(number.trim(), text, "percentage")?;
        Self::from_fraction(percent / 100.0)
            .ok_or_else(|| UnitError(format!("{text:?} is not from 0% to 100%")))
    }
}

impl fmt::Display for Loss {
    /// Writes the loss as a percentage: `1%`, `0.5%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", trim_number(self.0 * 100.0))
    }
}

/// Writes a duration in the unit a person would pick: `50 ms`, `250 µs`,
/// `1.5 s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if duration.is_zero() {
        "0 ms".into()
    } else if secs >= 1.0 {
        format!("{} s", trim_number(secs))
    } else if secs >= 1e-3 {
        format!("{} ms", trim_number(secs * 1e3))
    } else {
        format!("{} µs", trim_number(secs * 1e6))
    }
}

/// Splits `50ms` into `50` and `ms`.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

/// Parses the number part of `whole`, which must be finite and not negative.
fn parse_number(number: &str, whole: &str, what: &str) -> Result<f64, UnitError> {
    match number.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(UnitError(format!(
            "{whole:?} is not a {what}: it does not start with a number"
        ))),
    }
}

/// Writes a number with at most three decimals and no trailing zeros.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_each_unit() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_a_unit_or_a_number_are_refused() {
        for bad in ["50", "ms", "-5ms", "5 minutes", "", "1e3ms"] {
            let error = parse_duration(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn durations_past_an_hour_are_refused() {
        assert_eq!(parse_duration("3600s"), Ok(Duration::from_secs(3600)));
        for bad in ["3601s", "10000000000000000000s"] {
            let error = parse_duration(bad).unwrap_err().to_string();
            assert!(error.contains("at most an hour"), "{bad}: {error}");
        }
    }

    #[test]
    fn rates_in_bits_and_bytes() {
        let bits = |text: &str| text.parse::<Rate>().map(Rate::bits_per_second);
        assert_eq!(bits("10mbit"), Ok(10_000_000));
        assert_eq!(bits("1gbit"), Ok(1_000_000_000));
        assert_eq!(bits("500kbit"), Ok(500_000));
        assert_eq!(bits("2.5Mbit"), Ok(2_500_000));
        assert_eq!(bits("1mbps"), Ok(8_000_000));
        assert!(
            "10".parse::<Rate>()
                .unwrap_err()
                .to_string()
                .contains("10mbit")
        );
        assert!("0mbit".parse::<Rate>().is_err());
        assert!("10 mbits".parse::<Rate>().is_err());
    }

    #[test]
    fn a_packet_occupies_the_link_for_its_bits_over_the_rate() {
        let rate: Rate = "10mbit".parse().unwrap();
        assert_eq!(rate.serialization(1500), Duration::from_micros(1200));
        assert_eq!(rate.serialization(0), Duration::ZERO);
        let slow = Rate::from_bits_per_second(3).unwrap();
        assert_eq!(slow.serialization(1), Duration::from_nanos(2_666_666_667));
    }

    #[test]
    fn rates_and_losses_display_as_typed() {
        assert_eq!("10mbit".parse::<Rate>().unwrap().to_string(), "10 Mbit/s");
        assert_eq!("1.5gbit".parse::<Rate>().unwrap().to_string(), "1.5 Gbit/s");
        assert_eq!("1%".parse::<Loss>().unwrap().to_string(), "1%");
        assert_eq!(format_duration(Duration::from_millis(50)), "50 ms");
        assert_eq!(format_duration(Duration::from_micros(250)), "250 µs");
    }

    #[test]
    fn losses_are_percentages() {
        assert_eq!("1%".parse::<Loss>().map(Loss::fraction), Ok(0.01));
        assert_eq!("0.5 %".parse::<Loss>().map(Loss::fraction), Ok(0.005));
        assert_eq!("100%".parse::<Loss>().map(Loss::fraction), Ok(1.0));
        assert!(
            "0.01"
                .parse::<Loss>()
                .unwrap_err()
                .to_string()
                .contains('%')
        );
        assert!("101%".parse::<Loss>().is_err());
        assert!("-1%".parse::<Loss>().is_err());
    }
}
