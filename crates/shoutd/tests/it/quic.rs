//! `shoutd --quic` as its own process under a flood of Initial packets,
//! so that its memory (`/proc/PID/status`) can be read. Past
//! `--quic-retry-above` handshakes in progress, a new client is sent a
//! Retry and costs no state; the same flood without Retry costs a
//! handshake's state for each Initial, which shows the measurement sees it.
//! (The QUIC protocol itself is tested in crates/server.)

use crate::support::*;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{ClientConfig, Endpoint, EndpointConfig};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Initials each flood sends, a new client's each.
const FLOOD: usize = 2_000;
/// Source ports the flood comes from.
const FLOODERS: usize = 100;
/// Initials sent before the answers to them are read: few enough that
/// the server's receive buffer (208 KiB by default) never overflows.
const BATCH: usize = 50;

/// Returns `count` Initial packets to `server`, each the first datagram
/// of a new client (a connection ID and keys of its own), ALPN `shout`.
/// The clients trust no certificate: none gets past its first flight.
fn initials(server: SocketAddr, count: usize) -> Vec<Vec<u8>> {
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    crypto.alpn_protocols = vec![b"shout".to_vec()];
    let config = ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(Arc::new(crypto)).unwrap(),
    ));
    let mut endpoint = Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None);
    let now = Instant::now();
    let mut buffer = Vec::new();
    (0..count)
        .map(|_| {
            let (_, mut conn) = endpoint
                .connect(now, config.clone(), server, "localhost")
                .unwrap();
            buffer.clear();
            let transmit = conn.poll_transmit(now, 1, &mut buffer).unwrap();
            buffer[..transmit.size].to_vec()
        })
        .collect()
}

/// What the server sent back to a flood, by packet type.
#[derive(Debug, Default)]
struct Answers {
    /// Retry packets: the server kept nothing.
    retries: usize,
    /// Any other datagram (Initial, Handshake): a handshake began.
    others: usize,
}

/// Binds [`FLOODERS`] sockets on 127.0.0.1, each on a port of its own.
fn flooders() -> Vec<UdpSocket> {
    (0..FLOODERS)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            socket
        })
        .collect()
}

/// Sends `initials` to `server` from `sockets`, [`BATCH`] at a time, each
/// batch's answers read (up to 1 s) before the next is sent.
fn flood(server: SocketAddr, sockets: &[UdpSocket], initials: &[Vec<u8>]) -> Answers {
    let mut answers = Answers::default();
    let mut datagram = vec![0; 65_536];
    for (batch, initials) in initials.chunks(BATCH).enumerate() {
        for (index, initial) in initials.iter().enumerate() {
            let socket = &sockets[(batch * BATCH + index) % sockets.len()];
            socket.send_to(initial, server).unwrap();
        }
        let expected = answers.retries + answers.others + initials.len();
        let deadline = Instant::now() + Duration::from_secs(1);
        // Bounded by the deadline: a handshake's answer may be several
        // datagrams, so more than one per Initial may come.
        while answers.retries + answers.others < expected && Instant::now() < deadline {
            let mut quiet = true;
            for socket in sockets {
                while let Ok((len, _)) = socket.recv_from(&mut datagram) {
                    quiet = false;
                    // A long header (0x80) of type Retry (0x30 in QUIC v1).
                    if len > 0 && datagram[0] & 0xb0 == 0xb0 {
                        answers.retries += 1;
                    } else {
                        answers.others += 1;
                    }
                }
            }
            if quiet {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    answers
}

/// Floods a fresh `shoutd --quic` started with `extra`, after 100
/// Initials that fill its handshakes in progress; returns the answers and
/// how many KiB its resident memory grew over the flood.
fn flooded_growth(extra: &[&str]) -> (Answers, u64) {
    let mut args = vec!["--quic", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let shoutd = Shoutd::start(&args);
    let addr = shoutd.listening().addrs("quic")[0];
    let mut all = initials(addr, 100 + FLOOD);
    let flood_initials = all.split_off(100);
    // The first 100's sockets stay bound through the flood: the handshakes
    // they began send their flights again (64 handshakes sent 128 datagrams
    // in the 1.5 s after), and a flood socket the kernel gave one of their
    // ports, once freed, would count those as answers to the flood.
    let first = flooders();
    flood(addr, &first, &all);
    let before = shoutd.memory_kib("VmRSS");
    let answers = flood(addr, &flooders(), &flood_initials);
    let after = shoutd.memory_kib("VmRSS");
    (answers, after.saturating_sub(before))
}

#[test]
fn a_flood_of_initials_past_the_retry_threshold_leaves_memory_flat() {
    let _heavy = heavy_test();
    let (with_retry, retry_kib) = flooded_growth(&["--quic-retry-above", "64"]);
    let (without_retry, handshake_kib) = flooded_growth(&["--quic-retry-above", "1000000"]);
    eprintln!(
        "{FLOOD} Initials: with Retry {with_retry:?}, RSS +{retry_kib} KiB; \
         without {without_retry:?}, RSS +{handshake_kib} KiB"
    );
    // Lost on loopback only if a buffer overflowed: most are answered.
    assert!(
        with_retry.retries >= FLOOD * 9 / 10 && with_retry.others == 0,
        "past the threshold every Initial gets a Retry: {with_retry:?}"
    );
    assert!(
        without_retry.others >= FLOOD * 9 / 10 && without_retry.retries == 0,
        "without Retry every Initial begins a handshake: {without_retry:?}"
    );
    // Half a KiB per Initial would be a leak; a handshake's state is tens.
    let bound_kib = FLOOD as u64 / 2 + 1024;
    assert!(
        retry_kib < bound_kib,
        "RSS grew by {retry_kib} KiB over {FLOOD} Initials answered with Retries (bound {bound_kib} KiB)"
    );
    assert!(
        handshake_kib > 4 * retry_kib.max(256),
        "the same flood without Retry must cost handshake state: +{handshake_kib} KiB against +{retry_kib} KiB"
    );
}
