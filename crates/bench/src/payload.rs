//! What the load generator sends, and how it checks what comes back.
//!
//! Requests are lowercase ASCII, so their reply is known without running the
//! transform: the same bytes in upper case from a shout server, the same
//! bytes from an echo server ([`Expect`]). Message `n` is the alphabet
//! cycled from letter `n mod 26`, so consecutive messages differ and a reply
//! lost, repeated or swapped on a stream shows as a mismatch. Both the
//! requests and their replies are slices of two precomputed buffers: sending
//! and checking cost a copy and a comparison, no allocation.
//!
//! A datagram may be lost or reordered, so over UDP the first bytes of each
//! request (up to [`TAG_LEN`]) spell its sequence number in base 26, and a
//! reply names the request it answers.

use crate::Expect;

/// Bytes of a datagram that carry its sequence number (26⁶ ≈ 3 × 10⁸
/// numbers before they repeat).
pub(crate) const TAG_LEN: usize = 6;

/// The requests and replies of one size.
#[derive(Debug, Clone)]
pub(crate) struct Payload {
    size: usize,
    /// The alphabet cycled over `size + 26` bytes, in lowercase.
    lower: Vec<u8>,
    /// The same, as the server is expected to answer it.
    replies: Vec<u8>,
    /// The letter that answers `a`: the first letter of the replies'
    /// alphabet.
    reply_a: u8,
}

impl Payload {
    /// Messages of `size` bytes, answered as `expect` says.
    pub(crate) fn new(size: usize, expect: Expect) -> Self {
        let lower: Vec<u8> = (0..size + 26).map(|i| b'a' + (i % 26) as u8).collect();
        let (replies, reply_a) = match expect {
            Expect::Upper => (lower.to_ascii_uppercase(), b'A'),
            Expect::Echo => (lower.clone(), b'a'),
        };
        Self {
            size,
            lower,
            replies,
            reply_a,
        }
    }

    /// The size of every request and of its reply.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Request number `n` over a stream.
    pub(crate) fn request(&self, n: u64) -> &[u8] {
        let phase = (n % 26) as usize;
        &self.lower[phase..phase + self.size]
    }

    /// The reply to request `n`, from byte `from` on.
    pub(crate) fn reply_from(&self, n: u64, from: usize) -> &[u8] {
        let phase = (n % 26) as usize;
        &self.replies[phase + from..phase + self.size]
    }

    /// How many sequence numbers a datagram tells apart before they repeat.
    pub(crate) fn tag_space(&self) -> u64 {
        26u64.pow(self.tag_len() as u32)
    }

    fn tag_len(&self) -> usize {
        self.size.min(TAG_LEN)
    }

    /// Datagram number `seq` into `out` (cleared first): its tag, then the
    /// alphabet.
    pub(crate) fn datagram(&self, seq: u64, out: &mut Vec<u8>) {
        out.clear();
        let tag_len = self.tag_len();
        let mut rest = seq % self.tag_space();
        for _ in 0..tag_len {
            out.push(b'a' + (rest % 26) as u8);
            rest /= 26;
        }
        out.extend_from_slice(&self.request(seq)[tag_len..]);
    }

    /// Checks a datagram reply; returns the tag it carries (the sequence
    /// number modulo [`Self::tag_space`]), or `None` when it is not the reply
    /// to any request this payload makes.
    pub(crate) fn check_datagram_reply(&self, reply: &[u8]) -> Option<u64> {
        if reply.len() != self.size {
            return None;
        }
        let tag_len = self.tag_len();
        let mut tag = 0;
        for &byte in reply[..tag_len].iter().rev() {
            let letter = byte
                .checked_sub(self.reply_a)
                .filter(|&letter| letter < 26)?;
            tag = tag * 26 + u64::from(letter);
        }
        (reply[tag_len..] == self.reply_from(tag, tag_len)[..]).then_some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_the_uppercase_of_requests() {
        let payload = Payload::new(40, Expect::Upper);
        for n in [0, 1, 25, 26, 1_000_003] {
            let request = payload.request(n);
            assert_eq!(request.len(), 40);
            assert!(request.iter().all(u8::is_ascii_lowercase));
            let mut reply = Vec::new();
            shout_protocol::uppercase(request, &mut reply);
            assert_eq!(reply, payload.reply_from(n, 0));
            assert_eq!(&reply[7..], payload.reply_from(n, 7));
        }
        assert_ne!(payload.request(0), payload.request(1));
        assert_eq!(payload.request(0), payload.request(26));
    }

    #[test]
    fn an_echo_is_expected_to_be_the_request_itself() {
        let payload = Payload::new(40, Expect::Echo);
        for n in [0, 1, 25, 26] {
            assert_eq!(payload.reply_from(n, 0), payload.request(n));
            assert_eq!(payload.reply_from(n, 7), &payload.request(n)[7..]);
        }
        let mut datagram = Vec::new();
        for seq in [0, 1, 12_345] {
            payload.datagram(seq, &mut datagram);
            assert_eq!(payload.check_datagram_reply(&datagram), Some(seq));
            // The uppercase is no echo.
            let upper = datagram.to_ascii_uppercase();
            assert_eq!(payload.check_datagram_reply(&upper), None);
        }
    }

    #[test]
    fn datagram_replies_name_their_request() {
        for size in [1, 3, 6, 64, 4096] {
            let payload = Payload::new(size, Expect::Upper);
            let mut datagram = Vec::new();
            for seq in [0, 1, 25, 26, 12_345, payload.tag_space() + 7] {
                payload.datagram(seq, &mut datagram);
                assert_eq!(datagram.len(), size);
                assert!(datagram.iter().all(u8::is_ascii_lowercase));
                let mut reply = Vec::new();
                shout_protocol::uppercase(&datagram, &mut reply);
                assert_eq!(
                    payload.check_datagram_reply(&reply),
                    Some(seq % payload.tag_space()),
                    "size {size}, seq {seq}"
                );
                // The request itself, a cut reply or a changed byte is no reply.
                assert_eq!(payload.check_datagram_reply(&datagram), None);
                assert_eq!(payload.check_datagram_reply(&reply[1..]), None);
                let last = reply.len() - 1;
                reply[last] = b'?';
                assert_eq!(payload.check_datagram_reply(&reply), None);
            }
        }
    }
}
