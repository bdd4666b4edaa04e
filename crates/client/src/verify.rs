//! The certificate verifiers beyond rustls's own: a `--ca` file that lists
//! the server's own certificate, a pinned fingerprint, and `--insecure`;
//! and a wrapper that keeps the last refusal of any of them, for QUIC,
//! which reports a refused certificate only as a TLS alert.
//!
//! Each checks only the certificate. The handshake's signature is always
//! checked by the provider's algorithms, so a server must hold the key of
//! the certificate it presents, whatever trusted that certificate.

use crate::fingerprint::Fingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use std::sync::{Arc, Mutex};

/// Trusts what rustls's WebPki verifier trusts with the `--ca` roots, and
/// also a server certificate that is, byte for byte, one of those roots,
/// once its name and validity period are checked.
///
/// `openssl req -x509` marks the certificates it makes `CA:TRUE`, and
/// webpki refuses a CA certificate as a server's own ("unknown issuer", or
/// CaUsedAsEndEntity). OpenSSL, curl, ncat and Python accept it when it is
/// in the CA file, and so does this verifier: the user named that very
/// certificate.
#[derive(Debug)]
pub(crate) struct CaFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    listed: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl CaFileVerifier {
    /// Wraps `webpki`, built from `listed`, the certificates of the file.
    pub(crate) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        listed: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            webpki,
            listed,
            provider,
        }
    }
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        let listed = self
            .listed
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref());
        if !(listed && refuses_the_issuer(&refused)) {
            return Err(refused);
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        check_validity(end_entity, now)?;
        log::debug!(
            "the server's certificate is one of the --ca certificates: trusted as itself ({refused})"
        );
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.provider)
    }
}

/// Whether webpki refused a certificate for its issuer or for being a CA,
/// not for its name, its dates or its encoding, which a certificate named
/// in the CA file must pass all the same.
fn refuses_the_issuer(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => true,
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.to_string().contains("CaUsedAsEndEntity")
        }
        _ => false,
    }
}

/// Checks that `now` lies in the validity period of the certificate `der`.
fn check_validity(der: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
    let (not_before, not_after) = validity(der).ok_or(rustls::Error::InvalidCertificate(
        CertificateError::BadEncoding,
    ))?;
    let now = now.as_secs();
    if now < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
            not_before: unix_time(not_before),
        }
        .into());
    }
    if now > not_after {
        return Err(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
            not_after: unix_time(not_after),
        }
        .into());
    }
    Ok(())
}

fn unix_time(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
}

/// Returns the validity period of the certificate `der`, in seconds since
/// the Unix epoch: notBefore and notAfter.
///
/// webpki keeps the period to itself, and the fields before it are few:
/// Certificate = SEQUENCE { tbsCertificate = SEQUENCE { [0] version
/// (optional), serialNumber, signature, issuer, validity, … }, … }.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (_, certificate, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(certificate)?;
    if tbs.first() == Some(&0xA0) {
        tbs = tlv(tbs)?.2;
    }
    // The serial number, the signature algorithm, the issuer.
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (tag, period, _) = tlv(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (first_tag, first, rest) = tlv(period)?;
    let (second_tag, second, _) = tlv(rest)?;
    Some((time(first_tag, first)?, time(second_tag, second)?))
}

/// Splits one DER element off `input`: its tag, its contents and what
/// follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &byte| len << 8 | usize::from(byte));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Reads a UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or a GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18) as seconds since the Unix epoch.
fn time(tag: u8, text: &[u8]) -> Option<u64> {
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let field = text.get(range)?;
        field.iter().try_fold(0u64, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u64::from(byte - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        // RFC 5280, 4.1.2.5.1: YY of 50 or more is 19YY, less is 20YY.
        (0x17, 13) => {
            let yy = digits(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 15) => (digits(0..4)?, 4),
        _ => return None,
    };
    if text.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(rest..rest + 2)?;
    let day = digits(rest + 2..rest + 4)?;
    let hour = digits(rest + 4..rest + 6)?;
    let minute = digits(rest + 6..rest + 8)?;
    let second = digits(rest + 8..rest + 10)?;
    // A second of 60 is a leap second.
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Returns the days from 1970-01-01 to the given date of the proleptic
/// Gregorian calendar (Howard Hinnant's `days_from_civil`), or `None`
/// before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

/// Trusts the one certificate whose SHA-256 is the pin, with no other
/// check: its name, its dates and its issuer do not matter, as with ssh's
/// known hosts or curl's `--pinnedpubkey`.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    pub(crate) fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        Self { pin, provider }
    }
}

/// A certificate whose fingerprint is not the pin.
#[derive(Debug, thiserror::Error)]
#[error("its SHA-256 fingerprint is {presented}, not the pinned {expected}")]
pub(crate) struct PinMismatch {
    pub(crate) expected: Fingerprint,
    pub(crate) presented: Fingerprint,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        if presented != self.pin {
            return Err(CertificateError::Other(OtherError(Arc::new(PinMismatch {
                expected: self.pin,
                presented,
            })))
            .into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.provider)
    }
}

/// The last certificate refusal of a [`RecordingVerifier`], shared with
/// whoever reports the failure; clones share it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Refusal(Arc<Mutex<Option<rustls::Error>>>);

impl Refusal {
    /// Keeps `error` as the last refusal.
    fn keep(&self, error: &rustls::Error) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
    }

    /// Takes the last refusal, if any.
    pub(crate) fn take(&self) -> Option<rustls::Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Checks certificates with the verifier it wraps, and keeps the last
/// refusal. Over TCP rustls hands the refusal back as it is; over QUIC,
/// quinn-proto reports it only as an alert number and a string, so the
/// QUIC client takes the refusal from here to name it in words.
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    refusal: Refusal,
}

impl RecordingVerifier {
    /// Wraps `inner`, keeping its refusals in `refusal`.
    pub(crate) fn new(inner: Arc<dyn ServerCertVerifier>, refusal: Refusal) -> Self {
        Self { inner, refusal }
    }

    fn keep<T>(&self, outcome: Result<T, rustls::Error>) -> Result<T, rustls::Error> {
        if let Err(error) = &outcome {
            self.refusal.keep(error);
        }
        outcome
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.keep(self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.keep(self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.keep(self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// Accepts every certificate (`--insecure`), but still checks that the
/// handshake is signed by the key in the certificate, so the encryption is
/// real even though the peer is not authenticated.
#[derive(Debug)]
pub(crate) struct AnyCertificate {
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.provider)
    }
}

fn verify_tls12(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn verify_tls13(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider
        .signature_verification_algorithms
        .supported_schemes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_time_forms_read_as_unix_seconds() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"000301000000Z"), Some(951_868_800));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(time(0x18, b"99991231235959Z"), Some(253_402_300_799));
        // 1950 to 1969 is before the epoch: no certificate here is.
        assert_eq!(time(0x17, b"500101000000Z"), None);
        for bad in [
            &b"70010100000Z"[..],
            b"700101000000",
            b"701301000000Z",
            b"70010100000aZ",
            b"700101000061Z",
        ] {
            assert_eq!(time(0x17, bad), None, "{bad:?}");
        }
        assert_eq!(time(0x18, b"700101000000Z"), None);
        assert_eq!(time(0x18, b"00000101000000Z"), None);
    }

    #[test]
    fn the_validity_of_a_certificate_is_found() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2061, 4, 5);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(validity(cert.der()), Some((981_158_400, 2_879_884_800)));
        assert_eq!(validity(&cert.der()[..100]), None);
        let inside = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_000_000_000));
        assert!(check_validity(cert.der(), inside).is_ok());
        let before = UnixTime::since_unix_epoch(std::time::Duration::from_secs(981_158_399));
        assert!(check_validity(cert.der(), before).is_err());
        let after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(2_879_884_801));
        assert!(check_validity(cert.der(), after).is_err());
    }
}
