//! Scenarios about shoutd's life: a crash and an immediate restart, a
//! graceful stop under load, and a start on a port already taken.

use super::gate::Gate;
use super::load::{check_answer, connect, exchange};
use super::process::{Shoutd, join_within, one_line_tail, quote, run_with_input};
use super::text::TextSource;
use super::{Env, Outcome};
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Clients that keep shoutd busy while it is killed.
const RESTART_CLIENTS: usize = 8;
/// Answers each client must get before the kill, and again after the restart.
const ROUNDS: u64 = 50;

/// The shared state of the restart scenario's clients.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// Set once the new shoutd listens: from then on every request must succeed.
    restarted: AtomicBool,
    before: [AtomicU64; RESTART_CLIENTS],
    after: [AtomicU64; RESTART_CLIENTS],
    /// Requests the kill cut short (an error, or a truncated answer).
    interrupted: AtomicU64,
    /// Wrong answers, and failures after the restart.
    errors: Mutex<Vec<String>>,
}

/// kill -9 shoutd while clients talk to it, start it again on the same port
/// at once (SO_REUSEADDR makes that possible), and check the clients get
/// correct answers again; no answer may ever be wrong, only cut short.
pub(crate) fn restart(env: &Env) -> Result<Outcome, String> {
    let mut shoutd = Shoutd::start(env)?;
    let (tcp, udp) = (shoutd.tcp, shoutd.udp);
    let load = Arc::new(Load::default());
    let clients: Vec<JoinHandle<()>> = (0..RESTART_CLIENTS)
        .map(|id| {
            let load = Arc::clone(&load);
            std::thread::spawn(move || keep_asking(id, tcp, &load))
        })
        .collect();

    let result: Result<(Shoutd, Duration), String> = (|| {
        wait_until(Duration::from_secs(15), || all_reached(&load.before)).map_err(|()| {
            format!(
                "the clients got no answers before the kill; {}",
                shoutd.process.stderr_tail()
            )
        })?;
        shoutd.process.kill();
        let killed = Instant::now();
        let restarted = Shoutd::start_on(env, &tcp.to_string(), &udp.to_string(), &[])
            .map_err(|error| format!("restart on the same ports failed: {error}"))?;
        let downtime = killed.elapsed();
        load.restarted.store(true, Ordering::SeqCst);
        wait_until(Duration::from_secs(20), || all_reached(&load.after)).map_err(|()| {
            format!(
                "the clients did not recover; {}",
                restarted.process.stderr_tail()
            )
        })?;
        udp_roundtrip(restarted.udp)?;
        Ok((restarted, downtime))
    })();
    load.stop.store(true, Ordering::SeqCst);
    for client in clients {
        let _ = join_within(client, Duration::from_secs(15));
    }
    let (_restarted, downtime) = result?;
    let errors = load.errors.lock().expect("not poisoned");
    if !errors.is_empty() {
        return Err(format!(
            "{} bad answers, e.g. {}",
            errors.len(),
            errors[..errors.len().min(3)].join("; ")
        ));
    }
    Ok(Outcome::Pass(Some(format!(
        "down {:.0} ms; {} requests cut by the kill, all later ones answered",
        downtime.as_secs_f64() * 1000.0,
        load.interrupted.load(Ordering::SeqCst)
    ))))
}

/// Whether every client got [`ROUNDS`] answers.
fn all_reached(counts: &[AtomicU64; RESTART_CLIENTS]) -> bool {
    counts
        .iter()
        .all(|count| count.load(Ordering::SeqCst) >= ROUNDS)
}

/// One client of the restart scenario: a request per connection, in a loop
/// bounded in rounds and time.
fn keep_asking(id: usize, addr: SocketAddr, load: &Load) {
    let deadline = Instant::now() + Duration::from_secs(50);
    for round in 0..100_000 {
        if load.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return;
        }
        let restarted = load.restarted.load(Ordering::SeqCst);
        let text = format!("client {id} round {round}: straße ﬁ ǆ 🎉\n");
        let expected = text.to_uppercase();
        let fail = |error: String| {
            load.errors
                .lock()
                .expect("not poisoned")
                .push(format!("client {id} round {round}: {error}"));
        };
        match connect(addr).and_then(|stream| exchange(stream, text.as_bytes())) {
            Ok(answer) if answer == expected.as_bytes() => {
                let counts = if restarted { &load.after } else { &load.before };
                counts[id].fetch_add(1, Ordering::SeqCst);
            }
            Ok(answer) if !expected.as_bytes().starts_with(&answer) => {
                fail(format!(
                    "expected {}, got {}",
                    quote(expected.as_bytes()),
                    quote(&answer)
                ));
            }
            // Cut short, or refused while shoutd was down.
            Ok(_) | Err(_) if !restarted => {
                load.interrupted.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(answer) => fail(format!(
                "truncated answer after the restart: {}",
                quote(&answer)
            )),
            Err(error) => fail(format!("after the restart: {error}")),
        }
    }
}

/// One datagram through the restarted shoutd, with a few tries.
fn udp_roundtrip(addr: SocketAddr) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| {
            socket
                .set_read_timeout(Some(Duration::from_secs(1)))
                .map(|()| socket)
        })
        .map_err(|error| format!("udp socket: {error}"))?;
    let request = "udp after the restart — straße";
    let mut reply = [0; 1024];
    for _ in 0..3 {
        socket
            .send_to(request.as_bytes(), addr)
            .map_err(|error| format!("udp send to {addr}: {error}"))?;
        if let Ok((len, _)) = socket.recv_from(&mut reply) {
            return if reply[..len] == *request.to_uppercase().as_bytes() {
                Ok(())
            } else {
                Err(format!(
                    "udp after the restart: got {}",
                    quote(&reply[..len])
                ))
            };
        }
    }
    Err(format!(
        "udp after the restart: no reply from {addr} in 3 tries"
    ))
}

/// Polls `done` every few milliseconds until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Clients streaming when SIGTERM comes.
const STREAMERS: usize = 50;
/// What each streamer sends before the signal; small enough to sit in the
/// socket buffers whole, so every byte has reached shoutd's side when the
/// client's write returns.
const STREAM_TEXT: usize = 32 * 1024;
/// shoutd's --drain-timeout in this scenario.
const DRAIN_SECS: u64 = 10;

/// SIGTERM while 50 clients stream. Each client writes its whole text and
/// waits for the first bytes of its answer; then the signal is sent, while
/// most answers are still unread. Every client must receive the uppercase
/// of all it sent, and shoutd must exit 0 within its drain timeout.
pub(crate) fn graceful_stop(env: &Env) -> Result<Outcome, String> {
    let drain = DRAIN_SECS.to_string();
    let mut shoutd = Shoutd::start_on(
        env,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--drain-timeout", &drain],
    )?;
    let signalled = Arc::new(Gate::default());
    let settled = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(STREAMERS);
    for id in 0..STREAMERS {
        let (gate, settled, ready, addr) = (
            Arc::clone(&signalled),
            Arc::clone(&settled),
            Arc::clone(&ready),
            shoutd.tcp,
        );
        let text = format!(
            "streamer {id}\n{}",
            TextSource::new(1000 + id as u64).text(STREAM_TEXT)
        );
        let spawned = std::thread::Builder::new()
            .name(format!("streamer-{id}"))
            .stack_size(256 * 1024)
            .spawn(move || -> Result<(), String> {
                let first = (|| {
                    let mut stream = connect(addr)?;
                    std::io::Write::write_all(&mut stream, text.as_bytes())
                        .map_err(|error| format!("write: {error}"))?;
                    let mut answer = vec![0; 4096];
                    let read = stream
                        .read(&mut answer)
                        .map_err(|error| format!("first read: {error}"))?;
                    if read == 0 {
                        return Err("closed before answering".to_owned());
                    }
                    answer.truncate(read);
                    Ok((stream, answer))
                })();
                if first.is_ok() {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                settled.fetch_add(1, Ordering::SeqCst);
                let (mut stream, mut answer) =
                    first.map_err(|error| format!("streamer {id}: {error}"))?;
                if !gate.wait(Duration::from_secs(40)) {
                    return Err(format!("streamer {id}: the signal never came"));
                }
                stream
                    .read_to_end(&mut answer)
                    .map_err(|error| format!("streamer {id}: read after the signal: {error}"))?;
                check_answer(&text, &answer).map_err(|error| format!("streamer {id}: {error}"))
            });
        match spawned {
            Ok(client) => clients.push(client),
            Err(error) => {
                signalled.open();
                return Err(format!("cannot start streamer thread {id}: {error}"));
            }
        }
    }
    let all_settled = wait_until(Duration::from_secs(20), || {
        settled.load(Ordering::SeqCst) == STREAMERS
    });
    let streaming = ready.load(Ordering::SeqCst);
    let signal = if all_settled.is_ok() && streaming == STREAMERS {
        shoutd.process.signal(libc::SIGTERM)
    } else {
        Err(format!(
            "only {streaming} of {STREAMERS} clients were streaming"
        ))
    };
    let signalled_at = Instant::now();
    signalled.open();
    let exit = shoutd
        .process
        .wait_timeout(Duration::from_secs(DRAIN_SECS + 5));
    let stopped_in = signalled_at.elapsed();
    let failures: Vec<String> = clients
        .into_iter()
        .filter_map(
            |client| match join_within(client, Duration::from_secs(45)) {
                Some(Ok(())) => None,
                Some(Err(error)) => Some(error),
                None => Some("a streamer did not finish".into()),
            },
        )
        .collect();
    signal?;
    if !failures.is_empty() {
        return Err(format!(
            "{} of {STREAMERS} streamers failed, e.g. {}; {}",
            failures.len(),
            failures[..failures.len().min(3)].join("; "),
            shoutd.process.stderr_tail()
        ));
    }
    let status =
        exit.map_err(|error| format!("after SIGTERM: {error}; {}", shoutd.process.stderr_tail()))?;
    if status.code() != Some(0) {
        return Err(format!(
            "after SIGTERM shoutd exited with {status}, expected 0; {}",
            shoutd.process.stderr_tail()
        ));
    }
    if stopped_in > Duration::from_secs(DRAIN_SECS) {
        return Err(format!(
            "shoutd took {:.1} s to stop, over its {DRAIN_SECS} s drain timeout",
            stopped_in.as_secs_f64()
        ));
    }
    Ok(Outcome::Pass(Some(format!(
        "{STREAMERS} × {} KiB answered in full; exit 0 {:.0} ms after SIGTERM",
        STREAM_TEXT / 1024,
        stopped_in.as_secs_f64() * 1000.0
    ))))
}

/// A second shoutd on the TCP port, then on the UDP port, of a running one:
/// each must exit 2 at once, saying the address is in use, while the first
/// one serves on.
pub(crate) fn port_in_use(env: &Env) -> Result<Outcome, String> {
    let mut first = Shoutd::start(env)?;
    let mut message = String::new();
    for (option, addr) in [("--tcp", first.tcp), ("--udp", first.udp)] {
        let addr = addr.to_string();
        let mut second = env.shoutd();
        second.args([option, &addr]);
        let finished = run_with_input("second shoutd", &mut second, b"", Duration::from_secs(10))?;
        let stdout = String::from_utf8_lossy(&finished.stdout);
        if finished.status.code() != Some(2)
            || !finished.stderr.contains("already in use")
            || !finished.stderr.contains(&addr)
            || stdout.contains("listening")
        {
            return Err(format!(
                "shoutd {option} {addr} (taken): expected exit 2 and a message naming {addr} \
                 \"already in use\", got {} with stdout {} and stderr: {}",
                finished.status,
                quote(&finished.stdout),
                one_line_tail(&finished.stderr, 300)
            ));
        }
        if message.is_empty() {
            message = finished.stderr.trim().to_owned();
        }
    }
    if let Ok(Some(status)) = first.process.try_wait() {
        return Err(format!(
            "the first shoutd exited ({status}); {}",
            first.process.stderr_tail()
        ));
    }
    let text = "still serving — straße\n";
    let answer = exchange(connect(first.tcp)?, text.as_bytes())?;
    check_answer(text, &answer).map_err(|error| format!("the first shoutd: {error}"))?;
    Ok(Outcome::Pass(Some(format!("said: {message}"))))
}
