//! Scenarios where shout's programs meet other programs: each other, the
//! project's lecture-style Python peers, the lecture's own Python clients
//! and servers, and the standard tools nc, ncat and socat.

use super::process::{
    Shoutd, Spawned, Transport, exchange_line, free_port, one_line_tail, quote, run_with_input,
    start_python_server_of,
};
use super::{Env, Outcome, Peers};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Time a client process gets to answer a few lines.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The prompt the lecture's clients print before reading their line.
const PYTHON_PROMPT: &str = "Input lowercase sentence:";

/// `shout udp ADDR` with bounded waiting: at most `(retries + 1) * timeout`.
fn shout_udp(
    env: &Env,
    addr: SocketAddr,
    timeout_secs: u32,
    retries: u32,
) -> Result<Command, String> {
    let mut command = env.shout()?;
    command.args([
        "udp".to_owned(),
        addr.to_string(),
        "--timeout".to_owned(),
        timeout_secs.to_string(),
        "--retries".to_owned(),
        retries.to_string(),
    ]);
    Ok(command)
}

/// `shout tcp ADDR`.
fn shout_tcp(env: &Env, addr: SocketAddr) -> Result<Command, String> {
    let mut command = env.shout()?;
    command.arg("tcp").arg(addr.to_string());
    Ok(command)
}

/// shout tcp and shout udp against shoutd: several lines, Unicode, an empty line.
pub(crate) fn shout_vs_shoutd(env: &Env) -> Result<Outcome, String> {
    let shoutd = Shoutd::start(env)?;

    // TCP is a byte stream: the last line has no newline on purpose, its
    // answer must not gain one.
    let input = "hello, world\nstraße — ﬁne ǆ ΐ 日本語 🎉\n\nlast line, no newline";
    run_with_input(
        "shout tcp",
        &mut shout_tcp(env, shoutd.tcp)?,
        input.as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect("shout tcp", input.to_uppercase().as_bytes())?;

    // UDP: one datagram per line (the empty one too), one reply line each.
    let input = "hello, udp\nçà ÿ σίσυφος ŉ ᾳ\n\nend\n";
    run_with_input(
        "shout udp",
        &mut shout_udp(env, shoutd.udp, 2, 2)?,
        input.as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect("shout udp", input.to_uppercase().as_bytes())?;
    Ok(Outcome::Pass(None))
}

/// The project's lecture-style tcp_client.py and udp_client.py against shoutd.
pub(crate) fn python_clients_vs_shoutd(env: &Env) -> Result<Outcome, String> {
    clients_vs_shoutd(env, Peers::Project)
}

/// The lecture's own tcp_client.py and udp_client.py against shoutd.
pub(crate) fn lecture_clients_vs_shoutd(env: &Env) -> Result<Outcome, String> {
    clients_vs_shoutd(env, Peers::Lecture)
}

/// The Python clients of `peers` against shoutd.
fn clients_vs_shoutd(env: &Env, peers: Peers) -> Result<Outcome, String> {
    let shoutd = Shoutd::start(env)?;
    let line = "hello from python — straße ﬁ";
    let expected = format!("From Server: {}", line.to_uppercase());
    python_client(
        env,
        peers,
        "tcp_client.py",
        shoutd.tcp.port(),
        line,
        &expected,
    )?;
    let line = "hello over udp — çà ÿ";
    python_client(
        env,
        peers,
        "udp_client.py",
        shoutd.udp.port(),
        line,
        &line.to_uppercase(),
    )?;
    Ok(Outcome::Pass(None))
}

/// Runs one of the Python clients of `peers` against 127.0.0.1:`port` with
/// `line` as its input, and checks it printed `expected` after its prompt.
fn python_client(
    env: &Env,
    peers: Peers,
    script: &str,
    port: u16,
    line: &str,
    expected: &str,
) -> Result<(), String> {
    let mut client = env.python(peers, script)?;
    client.args(["127.0.0.1".to_owned(), port.to_string()]);
    run_with_input(
        script,
        &mut client,
        format!("{line}\n").as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect(script, format!("{PYTHON_PROMPT}{expected}\n").as_bytes())
}

/// shout against the project's lecture-style Python servers.
pub(crate) fn shout_vs_python_servers(env: &Env) -> Result<Outcome, String> {
    shout_vs_servers(env, Peers::Project)
}

/// shout against the lecture's own Python servers.
pub(crate) fn shout_vs_lecture_servers(env: &Env) -> Result<Outcome, String> {
    shout_vs_servers(env, Peers::Lecture)
}

/// shout against the tcp_server.py and udp_server.py of `peers`, quirks
/// included: the TCP server answers one recv(1024) and closes, so one short
/// line is sent; the UDP server dies on invalid UTF-8, and shout's retry then
/// meets a closed port, which it must report as refused (exit 4), promptly.
fn shout_vs_servers(env: &Env, peers: Peers) -> Result<Outcome, String> {
    let localhost = |port| SocketAddr::from(([127, 0, 0, 1], port));

    let (_tcp_server, port) = start_python_server_of(env, peers, "tcp_server.py", Transport::Tcp)?;
    let line = "hello lecture — straße\n";
    run_with_input(
        "shout tcp",
        &mut shout_tcp(env, localhost(port))?,
        line.as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect("shout tcp vs tcp_server.py", line.to_uppercase().as_bytes())?;

    let (mut udp_server, port) =
        start_python_server_of(env, peers, "udp_server.py", Transport::Udp)?;
    let line = "hello lecture over udp — ÿ\n";
    run_with_input(
        "shout udp",
        &mut shout_udp(env, localhost(port), 1, 1)?,
        line.as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect("shout udp vs udp_server.py", line.to_uppercase().as_bytes())?;

    // 1 s timeout, 1 retry: shout should give up after about 2 s.
    let finished = run_with_input(
        "shout udp",
        &mut shout_udp(env, localhost(port), 1, 1)?,
        b"\xff\xfe not utf-8\n",
        Duration::from_secs(15),
    )?;
    // The server died on the first datagram, so the retry meets a closed
    // port: ICMP port unreachable, which shout reports as refused (exit 4).
    let refused = finished.status.code() == Some(4)
        && finished.stderr.contains("refused the datagram")
        && finished.stdout.is_empty();
    if !refused {
        return Err(format!(
            "shout udp with invalid UTF-8 to udp_server.py: expected no output, \"refused the \
             datagram\" on stderr and exit 4, got {} with stdout {} and stderr: {}",
            finished.status,
            quote(&finished.stdout),
            one_line_tail(&finished.stderr, 300)
        ));
    }
    if udp_server.wait_timeout(Duration::from_secs(2)).is_err() {
        return Err("udp_server.py was refused a datagram but did not crash".to_owned());
    }
    Ok(Outcome::Pass(Some(format!(
        "crash reported as refused in {:.1} s: {}",
        finished.elapsed.as_secs_f64(),
        one_line_tail(&finished.stderr, 120),
    ))))
}

/// nc sends a line over TCP and a datagram over UDP.
pub(crate) fn nc(env: &Env) -> Result<Outcome, String> {
    standard_tool(env, "nc")
}

/// ncat sends a line over TCP and a datagram over UDP.
pub(crate) fn ncat(env: &Env) -> Result<Outcome, String> {
    standard_tool(env, "ncat")
}

/// socat sends a line over TCP and a datagram over UDP.
pub(crate) fn socat(env: &Env) -> Result<Outcome, String> {
    standard_tool(env, "socat")
}

/// `tool` (nc, ncat or socat) sends a line over TCP and a datagram over UDP
/// to shoutd and reads the uppercase answers.
fn standard_tool(env: &Env, tool: &str) -> Result<Outcome, String> {
    let shoutd = Shoutd::start(env)?;
    let (host, tcp_port, udp_port) = (
        shoutd.tcp.ip().to_string(),
        shoutd.tcp.port().to_string(),
        shoutd.udp.port().to_string(),
    );
    let flavor = if tool == "nc" {
        nc_flavor()?
    } else {
        NcFlavor::Ncat
    };
    let mut tcp = Command::new(tool);
    let mut udp = Command::new(tool);
    match (tool, flavor) {
        // OpenBSD nc keeps the socket open after EOF unless told -N.
        ("nc", NcFlavor::OpenBsd) => tcp.arg("-N").args([&host, &tcp_port]),
        // Traditional netcat: quit a second after EOF.
        ("nc", NcFlavor::Traditional) => tcp.args(["-q", "1"]).args([&host, &tcp_port]),
        // ncat half-closes on EOF by default.
        ("socat", _) => tcp.args(["-t", "5", "-", &format!("TCP:{host}:{tcp_port}")]),
        _ => tcp.args([&host, &tcp_port]),
    };
    match tool {
        "socat" => udp.args(["-".to_owned(), format!("UDP:{host}:{udp_port}")]),
        _ => udp.args(["-u", &host, &udp_port]),
    };

    let line = format!("hello from {tool} — straße\n");
    run_with_input(tool, &mut tcp, line.as_bytes(), CLIENT_TIMEOUT)?
        .expect(&format!("{tool} over TCP"), line.to_uppercase().as_bytes())?;

    let line = format!("{tool} datagram — ÿ\n");
    let (reply, _) = exchange_line(tool, &mut udp, &line, Duration::from_secs(5))?;
    if reply != line.to_uppercase() {
        return Err(format!(
            "{tool} over UDP: expected {}, got {}",
            quote(line.to_uppercase().as_bytes()),
            quote(reply.as_bytes())
        ));
    }
    Ok(Outcome::Pass(
        (tool == "nc").then(|| format!("{flavor:?} flavour")),
    ))
}

/// `shout bench --expect echo` measures an echo server no one here wrote
/// (socat with `cat` behind each connection), every reply checked byte for
/// byte; the default, `--expect upper`, fails against it.
pub(crate) fn bench_echo(env: &Env) -> Result<Outcome, String> {
    let port = free_port(Transport::Tcp)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new("socat");
    command
        .args([
            format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
            "EXEC:cat".to_owned(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let socat = Spawned::start("socat", &mut command)?;
    // socat says nothing when it listens: connect until it does (bounded).
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if started.elapsed() > Duration::from_secs(5) {
            return Err(format!(
                "socat did not listen on {addr} in 5 s: {}",
                socat.stderr_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let bench = |expect: &str| -> Result<super::process::Finished, String> {
        let mut command = env.shout()?;
        command.args([
            "bench", "--expect", expect, "-c", "4", "-d", "4", "-s", "64", "-n", "2000",
        ]);
        command.arg(addr.to_string());
        run_with_input("shout bench", &mut command, b"", CLIENT_TIMEOUT)
    };
    let echo = bench("echo")?;
    if !echo.status.success() {
        return Err(format!(
            "shout bench --expect echo against socat: exited with {}; stderr: {}",
            echo.status,
            one_line_tail(&echo.stderr, 400)
        ));
    }
    let upper = bench("upper")?;
    if upper.status.code() != Some(1) || !upper.stderr.contains("wrong reply") {
        return Err(format!(
            "shout bench --expect upper against an echo server: expected exit 1 and \
             \"wrong reply\", got {}; stderr: {}",
            upper.status,
            one_line_tail(&upper.stderr, 400)
        ));
    }
    let summary = String::from_utf8_lossy(&echo.stdout);
    Ok(Outcome::Pass(Some(one_line_tail(&summary, 160))))
}

#[derive(Debug, Clone, Copy)]
enum NcFlavor {
    OpenBsd,
    Ncat,
    Traditional,
}

/// Which netcat `nc` is: they differ in how to end after EOF.
fn nc_flavor() -> Result<NcFlavor, String> {
    let help = run_with_input(
        "nc -h",
        Command::new("nc").arg("-h"),
        b"",
        Duration::from_secs(5),
    )?;
    let text = format!("{}{}", String::from_utf8_lossy(&help.stdout), help.stderr);
    Ok(
        if text.contains("OpenBSD") || text.contains("-N\t") || text.contains("[-46CDdFhklNn") {
            NcFlavor::OpenBsd
        } else if text.contains("Ncat") {
            NcFlavor::Ncat
        } else {
            NcFlavor::Traditional
        },
    )
}
