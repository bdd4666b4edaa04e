//! Telling a TLS server's answer from a shout reply on a plain TCP
//! connection.
//!
//! A plain client that reaches a TLS port gets a TLS record back: an alert
//! (content type 0x15) or a handshake (0x16), then the version's major
//! byte 0x03 and a minor byte of at most 0x04. A shout server answers with
//! the uppercase of what it got, and uppercasing maps those three bytes to
//! themselves and no other byte to them (they are ASCII control
//! characters). So a reply that starts with such a header is a TLS
//! server's unless the request starts with the same three bytes.

/// How many bytes a TLS record header needs to be told apart.
pub(crate) const TLS_HEAD: usize = 3;

/// What the first bytes of a plain TCP reply say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// They could still begin a TLS record header: wait for more.
    Undecided,
    /// They are a TLS record header that the request does not start with.
    Tls,
    /// They are not a TLS server's answer.
    Plain,
}

/// Judges the first bytes of a reply, given the first bytes of the request
/// (at least [`TLS_HEAD`] of them when the request has that many).
pub(crate) fn judge(reply: &[u8], request: &[u8]) -> Verdict {
    let fits = |at: usize, byte: u8| match at {
        0 => matches!(byte, 0x15 | 0x16),
        1 => byte == 0x03,
        _ => byte <= 0x04,
    };
    let head = &reply[..reply.len().min(TLS_HEAD)];
    if !head.iter().enumerate().all(|(at, &byte)| fits(at, byte)) {
        return Verdict::Plain;
    }
    if head.len() < TLS_HEAD {
        return Verdict::Undecided;
    }
    if request.starts_with(head) {
        Verdict::Plain
    } else {
        Verdict::Tls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_or_a_handshake_header_is_tls_unless_the_request_has_it() {
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        assert_eq!(judge(&alert, b"hi\n"), Verdict::Tls);
        assert_eq!(judge(&[0x16, 0x03, 0x01], b"GET /"), Verdict::Tls);
        // The uppercase of a request that starts with the header starts
        // with it too.
        assert_eq!(judge(&alert, &alert), Verdict::Plain);
        assert_eq!(judge(b"HI\n", b"hi\n"), Verdict::Plain);
        assert_eq!(judge(&[0x15, 0x03, 0x05], b"x"), Verdict::Plain);
        assert_eq!(judge(&[0x15, 0x04], b"x"), Verdict::Plain);
        assert_eq!(judge(&[0x16, 0x03], b"x"), Verdict::Undecided);
        assert_eq!(judge(&[0x15], b"x"), Verdict::Undecided);
        assert_eq!(judge(&[], b"x"), Verdict::Undecided);
    }
}
