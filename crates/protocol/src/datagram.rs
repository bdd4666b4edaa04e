//! The UDP rule: one datagram in, one uppercased datagram out.
//!
//! A datagram's payload is transformed as a whole stream (an unfinished
//! character at its end is invalid UTF-8 and passes through). When the request
//! or its uppercase does not fit in one datagram, nothing is sent: a reply is
//! never truncated, because a truncated reply would be a wrong answer that
//! looks right. Clients can check beforehand with [`crate::uppercased_len`].

use crate::transform::uppercase;

/// The largest UDP payload over IPv4: 65,535 minus the 20-byte IP header and
/// the 8-byte UDP header. shout uses it for IPv6 too, so that both families
/// behave the same.
pub const MAX_DATAGRAM_PAYLOAD: usize = 65_507;

/// Why a datagram gets no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// The request is larger than [`MAX_DATAGRAM_PAYLOAD`].
    #[error("request of {len} bytes exceeds the {MAX_DATAGRAM_PAYLOAD}-byte datagram limit")]
    RequestTooLarge {
        /// The request's length in bytes.
        len: usize,
    },
    /// The uppercase of the request is larger than [`MAX_DATAGRAM_PAYLOAD`]
    /// (uppercasing can triple the size of some characters).
    #[error(
        "reply would be {len} bytes, over the {MAX_DATAGRAM_PAYLOAD}-byte datagram limit, so none is sent"
    )]
    ReplyTooLarge {
        /// The length the reply would have had.
        len: usize,
    },
}

/// Builds the reply to one datagram in `reply` (cleared first).
///
/// On error `reply` is left empty and the caller sends nothing.
pub fn uppercase_datagram(request: &[u8], reply: &mut Vec<u8>) -> Result<(), DatagramError> {
    reply.clear();
    if request.len() > MAX_DATAGRAM_PAYLOAD {
        return Err(DatagramError::RequestTooLarge { len: request.len() });
    }
    uppercase(request, reply);
    if reply.len() > MAX_DATAGRAM_PAYLOAD {
        let len = reply.len();
        reply.clear();
        return Err(DatagramError::ReplyTooLarge { len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_datagram_gets_an_empty_reply() {
        let mut reply = vec![1, 2, 3];
        assert_eq!(uppercase_datagram(b"", &mut reply), Ok(()));
        assert!(reply.is_empty());
    }

    #[test]
    fn largest_payload_is_answered_whole() {
        let request = vec![b'x'; MAX_DATAGRAM_PAYLOAD];
        let mut reply = Vec::new();
        assert_eq!(uppercase_datagram(&request, &mut reply), Ok(()));
        assert_eq!(reply, vec![b'X'; MAX_DATAGRAM_PAYLOAD]);
    }

    #[test]
    fn oversize_request_is_refused() {
        let request = vec![b'x'; MAX_DATAGRAM_PAYLOAD + 1];
        let mut reply = Vec::new();
        assert_eq!(
            uppercase_datagram(&request, &mut reply),
            Err(DatagramError::RequestTooLarge {
                len: MAX_DATAGRAM_PAYLOAD + 1
            })
        );
        assert!(reply.is_empty());
    }

    #[test]
    fn reply_that_would_not_fit_is_not_sent_truncated() {
        // `ß` is 2 bytes and becomes `SS`, still 2; `ΐ` is 2 bytes and becomes 6.
        let request = "ΐ".repeat(MAX_DATAGRAM_PAYLOAD / 2);
        let mut reply = Vec::new();
        let error = uppercase_datagram(request.as_bytes(), &mut reply).unwrap_err();
        assert_eq!(
            error,
            DatagramError::ReplyTooLarge {
                len: request.len() * 3
            }
        );
        assert!(reply.is_empty());
        assert!(error.to_string().contains("none is sent"));
    }

    #[test]
    fn one_third_of_the_limit_always_fits() {
        let request = "ΐ".repeat(MAX_DATAGRAM_PAYLOAD / 6);
        let mut reply = Vec::new();
        assert_eq!(uppercase_datagram(request.as_bytes(), &mut reply), Ok(()));
        assert_eq!(reply, request.to_uppercase().as_bytes());
    }
}
