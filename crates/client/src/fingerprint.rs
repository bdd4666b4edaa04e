//! The SHA-256 fingerprint of a certificate: what `--pin` names, in the
//! form shoutd prints for its generated certificate and
//! `openssl x509 -fingerprint -sha256` prints for any.

use std::fmt;
use std::str::FromStr;

/// The SHA-256 of a certificate's DER encoding.
///
/// It parses from 32 hex pairs, separated by colons (`AB:CD:…`, as shoutd
/// and openssl print them) or not at all (`abcd…`), in either case. It
/// displays as uppercase pairs separated by colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Returns the fingerprint of the certificate `der`.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Returns the 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// Why a text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0}: a SHA-256 fingerprint is 32 hex pairs, with colons (AB:CD:…, as shoutd and `openssl x509 -fingerprint -sha256` print it) or without"
)]
pub struct FingerprintError(&'static str);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        // openssl prints `sha256 Fingerprint=AB:CD:…`; take it pasted whole.
        let text = text
            .rsplit_once('=')
            .map_or(text, |(_, fingerprint)| fingerprint);
        let digits: Vec<u8> = if text.contains(':') {
            let pairs: Vec<&str> = text.split(':').collect();
            if pairs.iter().any(|pair| pair.len() != 2) {
                return Err(FingerprintError("colons must separate pairs of hex digits"));
            }
            pairs.concat().into_bytes()
        } else {
            text.as_bytes().to_vec()
        };
        if digits.len() != 64 {
            return Err(FingerprintError("not 64 hex digits"));
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| FingerprintError("not hex"))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| FingerprintError("not hex"))?;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-256 of nothing, as openssl prints a fingerprint.
    const EMPTY: &str = "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55";

    #[test]
    fn a_fingerprint_reads_as_it_is_printed() {
        let fingerprint = Fingerprint::of(b"");
        assert_eq!(fingerprint.to_string(), EMPTY);
        assert_eq!(EMPTY.parse(), Ok(fingerprint));
    }

    #[test]
    fn colons_case_and_openssl_prefix_do_not_matter() {
        let expected = Fingerprint::of(b"");
        let bare = EMPTY.replace(':', "");
        for text in [
            EMPTY.to_lowercase(),
            bare.clone(),
            bare.to_lowercase(),
            format!("  {EMPTY}\n"),
            format!("sha256 Fingerprint={EMPTY}"),
        ] {
            assert_eq!(text.parse(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn malformed_fingerprints_are_refused() {
        let bare = EMPTY.replace(':', "");
        for text in [
            String::new(),
            bare[..62].to_owned(),
            format!("{bare}00"),
            bare.replace('E', "G"),
            EMPTY.replacen(':', "", 1),
            format!("{EMPTY}:"),
            EMPTY.replace(':', "-"),
            bare.replacen("E3", "é", 1),
        ] {
            assert!(text.parse::<Fingerprint>().is_err(), "{text:?}");
        }
    }
}
