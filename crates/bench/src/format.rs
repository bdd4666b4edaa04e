//! How the load generator's figures read to a person: counts with
//! thousands separators, latencies in the unit that suits them. Public so
//! that reports built on the JSON summary (`cargo xtask bench`) read the
//! same as `shout bench`.

use std::fmt::{self, Write as _};
use std::time::Duration;

/// Displays a count with thousands separators: `1,234,567`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index) % 3 == 0 {
                f.write_char(',')?;
            }
            f.write_char(digit)?;
        }
        Ok(())
    }
}

/// Displays a latency in the unit that suits it: `12.3 µs`, `4.56 ms`,
/// `1.20 s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency(pub Duration);

impl Latency {
    /// Returns the latency of `micros` microseconds; `None` for a negative
    /// or non-finite figure.
    pub fn from_micros_f64(micros: f64) -> Option<Self> {
        Duration::try_from_secs_f64(micros / 1e6).ok().map(Self)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_secs_f64() * 1e6;
        if micros < 1_000.0 {
            write!(f, "{micros:.1} µs")
        } else if micros < 1_000_000.0 {
            write!(f, "{:.2} ms", micros / 1e3)
        } else {
            write!(f, "{:.2} s", micros / 1e6)
        }
    }
}

/// Displays seconds to the millisecond: `2.004 s`.
pub(crate) struct Secs(pub(crate) Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} s", self.0.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latencies_read_well() {
        assert_eq!(Count(0).to_string(), "0");
        assert_eq!(Count(999).to_string(), "999");
        assert_eq!(Count(1_000).to_string(), "1,000");
        assert_eq!(Count(1_234_567).to_string(), "1,234,567");
        assert_eq!(Latency(Duration::from_nanos(12_345)).to_string(), "12.3 µs");
        assert_eq!(Latency(Duration::from_micros(4_560)).to_string(), "4.56 ms");
        assert_eq!(Latency(Duration::from_millis(1_200)).to_string(), "1.20 s");
        assert_eq!(
            Latency::from_micros_f64(16.04).map(|l| l.to_string()),
            Some("16.0 µs".into())
        );
        assert_eq!(Latency::from_micros_f64(f64::NAN), None);
        assert_eq!(Latency::from_micros_f64(-1.0), None);
        assert_eq!(Secs(Duration::from_millis(2_004)).to_string(), "2.004 s");
    }
}
