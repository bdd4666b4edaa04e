//! `cargo xtask e2e`: the real binaries as whole processes.
//!
//! The task builds `shoutd` and `shout` (release, so that the 100 MiB stream
//! is quick), then runs each scenario in turn. Every scenario starts its own
//! processes on 127.0.0.1 with port 0 (shoutd prints the ports it got) or on
//! a port just found free (the Python servers), so runs never collide with a
//! shoutd already on 12000 nor with each other. All traffic stays on
//! loopback.
//!
//! Bounds: each scenario has a deadline; past it, everything it started is
//! killed and it fails, so a hung peer cannot hang the run. Every loop in a
//! scenario is bounded in count and time, and every socket has timeouts.
//!
//! Cleanup: each started process sits in a guard that kills and reaps it
//! when dropped, on success, failure or panic alike. SIGINT, SIGTERM and
//! SIGHUP (Ctrl-C) kill every registered process before xtask exits; see
//! [`process`].
//!
//! Peers: the project's own lecture-style Python programs (`peers/`) and,
//! when present, the lecture's programs (`../shared/peers/seed-python`) as
//! additional real peers. What each scenario needs from the machine is named
//! in [`needs::NEEDS`]; a scenario whose need is missing is skipped, and
//! under `SHOUT_REQUIRE_PEERS=1` fails, naming what is missing.
//!
//! Output: one line per scenario (`PASS name (1.2 s)`, `SKIP name: why`,
//! `FAIL name: why`), then `N passed, M skipped, K failed` and one
//! `skipped: name: why` line per skip. A skip does not fail the run unless
//! `SHOUT_REQUIRE_PEERS=1`. The exit status is non-zero when any scenario
//! failed.

mod activation;
mod delay;
mod examples;
mod gate;
pub(crate) mod haproxy;
mod interop;
mod lifecycle;
mod link;
mod load;
mod metrics;
mod needs;
mod nginx;
pub(crate) mod process;
mod quic;
mod text;
mod tls;
mod websocket;

use crate::{cargo, run_inherited, show};
pub(crate) use activation::{IN_NETNS_TASK, handover_in_netns};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Options of `cargo xtask e2e`.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Scenarios to run; all when empty.
    only: Vec<String>,
    /// List the scenarios instead of running them.
    list: bool,
}

impl Options {
    /// Parses the arguments after `e2e`.
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--only" => {
                    let name = args
                        .next()
                        .ok_or("`--only` needs a scenario name (see `cargo xtask e2e --list`)")?;
                    options.only.push(name.clone());
                }
                "--list" => options.list = true,
                other => {
                    return Err(format!(
                        "unknown e2e option `{other}` (try `cargo xtask help`)"
                    ));
                }
            }
        }
        for name in &options.only {
            crate::known_name(
                "scenario",
                name,
                SCENARIOS.iter().map(|scenario| scenario.name),
            )?;
        }
        Ok(options)
    }
}

/// One end-to-end scenario.
struct Scenario {
    /// Kebab-case name, for `--only` and the report.
    name: &'static str,
    /// What passing it proves, for `--list` (docs/TESTING.md says the same).
    proves: &'static str,
    /// Past this, the scenario fails and what it started is killed.
    deadline: Duration,
    /// What it needs from the machine, by name in [`needs::NEEDS`].
    needs: &'static [&'static str],
    run: fn(&Env) -> Result<Outcome, String>,
}

/// How a scenario that did not fail ended.
pub(crate) enum Outcome {
    /// Passed; the note, if any, is shown after the time.
    Pass(Option<String>),
    /// Could not run here (a peer tool is not installed); fails the run
    /// under `SHOUT_REQUIRE_PEERS=1`.
    Skip(String),
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "shout-vs-shoutd",
        proves: "shout tcp and shout udp get the uppercase of several lines, Unicode and an empty line included",
        deadline: Duration::from_secs(30),
        needs: &[],
        run: interop::shout_vs_shoutd,
    },
    Scenario {
        name: "python-clients-vs-shoutd",
        proves: "the project's lecture-style Python TCP and UDP clients (peers/) work against shoutd",
        deadline: Duration::from_secs(30),
        needs: &["python3"],
        run: interop::python_clients_vs_shoutd,
    },
    Scenario {
        name: "shout-vs-python-servers",
        proves: "shout works against the project's lecture-style Python servers (peers/), and reports a crashed UDP server cleanly",
        deadline: Duration::from_secs(60),
        needs: &["python3"],
        run: interop::shout_vs_python_servers,
    },
    Scenario {
        name: "lecture-clients-vs-shoutd",
        proves: "the lecture's own Python TCP and UDP clients work unchanged against shoutd",
        deadline: Duration::from_secs(30),
        needs: &["python3", "lecture peers"],
        run: interop::lecture_clients_vs_shoutd,
    },
    Scenario {
        name: "shout-vs-lecture-servers",
        proves: "shout works against the lecture's own Python servers, and reports a crashed UDP server cleanly",
        deadline: Duration::from_secs(60),
        needs: &["python3", "lecture peers"],
        run: interop::shout_vs_lecture_servers,
    },
    Scenario {
        name: "stream-100mib",
        proves: "100 MiB of Unicode text piped through shout tcp comes back uppercased, byte for byte",
        deadline: Duration::from_secs(180),
        needs: &[],
        run: load::stream_100mib,
    },
    Scenario {
        name: "concurrent-500",
        proves: "500 clients at once each get their own answer",
        deadline: Duration::from_secs(60),
        needs: &[],
        run: load::concurrent_500,
    },
    Scenario {
        name: "nc",
        proves: "nc (OpenBSD, ncat or traditional flavour) talks to shoutd over TCP and UDP",
        deadline: Duration::from_secs(30),
        needs: &["nc"],
        run: interop::nc,
    },
    Scenario {
        name: "ncat",
        proves: "ncat talks to shoutd over TCP and UDP",
        deadline: Duration::from_secs(30),
        needs: &["ncat"],
        run: interop::ncat,
    },
    Scenario {
        name: "socat",
        proves: "socat talks to shoutd over TCP and UDP",
        deadline: Duration::from_secs(30),
        needs: &["socat"],
        run: interop::socat,
    },
    Scenario {
        name: "bench-echo",
        proves: "shout bench --expect echo measures socat's echo server with every reply checked, and the default --expect upper fails against it",
        deadline: Duration::from_secs(60),
        needs: &["socat"],
        run: interop::bench_echo,
    },
    Scenario {
        name: "tls-openssl",
        proves: "openssl s_client verifies shoutd --tls's self-signed certificate and gets the uppercase, over TLS 1.3 by default and TLS 1.2 with -tls1_2",
        deadline: Duration::from_secs(30),
        needs: &["openssl"],
        run: tls::openssl,
    },
    Scenario {
        name: "tls-ncat",
        proves: "ncat --ssl --ssl-verify gets the uppercase from shoutd --tls",
        deadline: Duration::from_secs(30),
        needs: &["ncat"],
        run: tls::ncat,
    },
    Scenario {
        name: "tls-socat",
        proves: "socat OPENSSL with verify=1 gets the uppercase from shoutd --tls",
        deadline: Duration::from_secs(30),
        needs: &["socat"],
        run: tls::socat,
    },
    Scenario {
        name: "tls-python",
        proves: "Python's ssl module verifies shoutd --tls and gets the uppercase over TLS 1.3",
        deadline: Duration::from_secs(30),
        needs: &["python3"],
        run: tls::python,
    },
    Scenario {
        name: "shout-vs-tls-servers",
        proves: "shout tcp --tls gets the uppercase from ncat --ssl -l running tr, and exits 7 with \"unknown issuer\" on a certificate not given as --ca",
        deadline: Duration::from_secs(30),
        needs: &["openssl", "ncat"],
        run: tls::shout_vs_tls_servers,
    },
    Scenario {
        name: "tls-plaintext",
        proves: "a plaintext client on shoutd's TLS port gets an alert or a close within the handshake deadline, and a TLS client is served after it",
        deadline: Duration::from_secs(30),
        needs: &[],
        run: tls::plaintext_on_tls,
    },
    Scenario {
        name: "restart",
        proves: "after kill -9 under load, shoutd restarts on the same port at once and clients recover",
        deadline: Duration::from_secs(60),
        needs: &[],
        run: lifecycle::restart,
    },
    Scenario {
        name: "graceful-stop",
        proves: "on SIGTERM, 50 streaming clients get every byte they sent answered and shoutd exits 0 in time",
        deadline: Duration::from_secs(60),
        needs: &[],
        run: lifecycle::graceful_stop,
    },
    Scenario {
        name: "port-in-use",
        proves: "a second shoutd on a taken port exits 2 with a clear message, the first one serves on",
        deadline: Duration::from_secs(30),
        needs: &[],
        run: lifecycle::port_in_use,
    },
    Scenario {
        name: "socket-activation",
        proves: "under systemd-socket-activate, shoutd serves the passed TCP and UDP sockets, says so, and answers what started it",
        deadline: Duration::from_secs(30),
        needs: &["systemd-socket-activate"],
        run: activation::socket_activation,
    },
    Scenario {
        name: "activation-restart",
        proves: "replacing shoutd on a held socket loses no connection under load; the SO_REUSEPORT hand-over's failures are counted, and are none with net.ipv4.tcp_migrate_req=1 (in a network namespace of its own)",
        deadline: Duration::from_secs(150),
        needs: &[],
        run: activation::activation_restart,
    },
    Scenario {
        name: "link-rtt",
        proves: "shout ping across shout link --rtt 50ms reports 50 ms ± 10% over TCP and UDP, nothing is left behind, and the link's own cost at --rtt 0 is measured",
        deadline: Duration::from_secs(90),
        needs: &["root", "ip", "tun"],
        run: link::link_rtt,
    },
    Scenario {
        name: "link-rate",
        proves: "4 MB through shout tcp and shoutd across shout link --rate 10mbit flows at 10 Mbit/s ± 10%",
        deadline: Duration::from_secs(60),
        needs: &["root", "ip", "tun"],
        run: link::link_rate,
    },
    Scenario {
        name: "link-loss",
        proves: "shout link --loss 10% drops 10% ± 3 of the packets each way over 2,000 UDP probes, about 19% of round trips",
        deadline: Duration::from_secs(90),
        needs: &["root", "ip", "tun"],
        run: link::link_loss,
    },
    Scenario {
        name: "delay-predictions",
        proves: "across shout link --rtt 40ms --rate 20mbit, shout delay's non-persistent fetch of 10 objects of 10 KB is within 15% of the lecture's prediction, and pipelined is at least 3x faster",
        deadline: Duration::from_secs(90),
        needs: &["root", "ip", "tun"],
        run: delay::delay_predictions,
    },
    Scenario {
        name: "delay-tls",
        proves: "across the same link, TLS 1.3 adds one round trip (± 25%) to each new connection, and non-persistent over TLS is within 15% of its prediction",
        deadline: Duration::from_secs(90),
        needs: &["root", "ip", "tun"],
        run: delay::delay_tls,
    },
    Scenario {
        name: "delay-udp-loss",
        proves: "across shout link --loss 20%, shout udp gets all 50 lines answered with retries, and shout ping --udp loses 36% ± 5 points of 1,000 round trips",
        deadline: Duration::from_secs(120),
        needs: &["root", "ip", "tun"],
        run: delay::delay_udp_loss,
    },
    Scenario {
        name: "link-cleanup",
        proves: "on SIGTERM shout link exits 143 and leaves no process or namespace behind; as nobody it exits 2 with one line",
        deadline: Duration::from_secs(60),
        needs: &["root", "ip", "tun", "setpriv"],
        run: link::link_cleanup,
    },
    Scenario {
        name: "nginx",
        proves: "UDP through nginx's stream module to two shoutd: every datagram answered, both backends used",
        deadline: Duration::from_secs(60),
        needs: &["nginx"],
        run: nginx::nginx,
    },
    Scenario {
        name: "haproxy",
        proves: "TCP through HAProxy (send-proxy-v2, health checks) to three shoutd --proxy-protocol: exact answers, the client's real address in the -v log, SIGKILL and SIGTERM of a backend lose no completed answer",
        deadline: Duration::from_secs(90),
        needs: &["haproxy"],
        run: haproxy::haproxy,
    },
    Scenario {
        name: "quic-aioquic-client",
        proves: "aioquic's client (Python, not ours) verifies shoutd --quic's self-signed certificate and gets the uppercase on three streams at once, each ended by its FIN",
        deadline: Duration::from_secs(30),
        needs: &["aioquic"],
        run: quic::aioquic_client_vs_shoutd,
    },
    Scenario {
        name: "quic-over-stream-limit",
        proves: "aioquic made to ignore shoutd's --quic-streams 4 opens 20 streams at once: shoutd closes that connection with STREAM_LIMIT_ERROR (0x4), and a well-behaved aioquic client is served after it",
        deadline: Duration::from_secs(40),
        needs: &["aioquic"],
        run: quic::aioquic_over_the_stream_limit,
    },
    Scenario {
        name: "quic-aioquic-server",
        proves: "shout tcp --quic verifies an aioquic server's certificate (--ca) and pipes 1 MiB through it and back, uppercased, byte for byte; a wrong --servername is exit status 7",
        deadline: Duration::from_secs(30),
        needs: &["aioquic", "openssl"],
        run: quic::shout_vs_aioquic_server,
    },
    Scenario {
        name: "python-websockets-vs-shoutd",
        proves: "Python's websockets package, as a client, gets text (growing when uppercased), binary, a fragmented message and 300 kB answered exactly, its ping ponged and its close answered with 1000 by shoutd --ws; a foreign Origin gets 403",
        deadline: Duration::from_secs(40),
        needs: &["python3-websockets"],
        run: websocket::python_websockets_vs_shoutd,
    },
    Scenario {
        name: "shout-ws-vs-python-server",
        proves: "shout ws against an uppercaser on Python's websockets: Unicode lines (one without a newline) and 1 MiB piped come back as their exact uppercase; a path it does not serve is exit status 6 naming the 404; wss:// on its plain port is exit status 7",
        deadline: Duration::from_secs(40),
        needs: &["python3-websockets"],
        run: websocket::shout_ws_vs_python_server,
    },
    Scenario {
        name: "python-websockets-15-vs-shoutd",
        proves: "the same client as python-websockets-vs-shoutd on websockets 15, whose asyncio API is new (Debian's is older)",
        deadline: Duration::from_secs(40),
        needs: &["websockets-15"],
        run: websocket::python_websockets_15_vs_shoutd,
    },
    Scenario {
        name: "shout-ws-vs-python-websockets-15",
        proves: "shout-ws-vs-python-server against the uppercaser on websockets 15 (its request hook takes the connection and the request, where older ones took the path and the headers)",
        deadline: Duration::from_secs(40),
        needs: &["websockets-15"],
        run: websocket::shout_ws_vs_python_websockets_15,
    },
    Scenario {
        name: "chromium-page",
        proves: "headless Chromium loads shoutd --ws's page with ?say=TEXT and shows TEXT's uppercase in #reply, the status line open; and the same over https and wss (--wss)",
        deadline: Duration::from_secs(40),
        needs: &["chromium"],
        run: websocket::chromium_page,
    },
    Scenario {
        name: "chromium-page-reconnects",
        proves: "the page in headless Chromium, its line over shoutd's --ws-max-message closed with 1009, reconnects after its backoff and is answered on the new socket (reply, status open, log and chart summary in the DOM); shoutd counts 2 upgrades and 1 close with 1009",
        deadline: Duration::from_secs(40),
        needs: &["chromium", "python3-websockets"],
        run: websocket::chromium_page_reconnects,
    },
    Scenario {
        name: "pubsub-example",
        proves: "shout-server's examples/pubsub.rs, run as its doc says, listens on 127.0.0.1 (by default and as asked), says so, passes messages to subscribers and says BYE to a client that does not answer its PINGs",
        deadline: Duration::from_secs(30),
        needs: &[],
        run: examples::pubsub_example,
    },
    Scenario {
        name: "metrics",
        proves: "shoutd --metrics serves what promtool check metrics accepts, and the values equal the TCP and UDP traffic sent",
        deadline: Duration::from_secs(30),
        needs: &["promtool"],
        run: metrics::metrics,
    },
];

/// Which set of Python peers a scenario runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peers {
    /// The project's lecture-style programs, `<workspace>/peers`.
    Project,
    /// The lecture's own programs, `<workspace>/../shared/peers/seed-python`.
    Lecture,
}

/// What scenarios need from the run: the binaries and the peers.
pub(crate) struct Env {
    shoutd: PathBuf,
    /// The client, or why it is not available (it did not build).
    shout: Result<PathBuf, String>,
    /// The project's lecture-style programs: `<workspace>/peers`.
    project_peers: PathBuf,
    /// The lecture's programs: `<workspace>/../shared/peers/seed-python`.
    lecture_peers: PathBuf,
    /// The Python with aioquic installed (`.ci/run` makes it).
    aioquic_python: PathBuf,
}

impl Env {
    /// The binaries at these paths and the lecture's programs in `peers`.
    pub(crate) fn new(shoutd: PathBuf, shout: PathBuf, peers: PathBuf) -> Self {
        Self {
            shoutd,
            shout: Ok(shout),
            project_peers: crate::workspace_root().join("peers"),
            lecture_peers: peers,
            aioquic_python: aioquic_python(),
        }
    }

    /// The path of shout-server's example `name`, built beside `shoutd`.
    pub(crate) fn example(&self, name: &str) -> PathBuf {
        self.shoutd.with_file_name("examples").join(name)
    }

    /// A command running `shoutd`.
    pub(crate) fn shoutd(&self) -> Command {
        Command::new(&self.shoutd)
    }

    /// The path of `shoutd`, for a command that runs it under another.
    pub(crate) fn shoutd_path(&self) -> &Path {
        &self.shoutd
    }

    /// The path of `shout`, if it was built, for a command line that runs it.
    pub(crate) fn shout_path(&self) -> Result<PathBuf, String> {
        self.shout.clone()
    }

    /// A command running `shout`, if it was built.
    pub(crate) fn shout(&self) -> Result<Command, String> {
        self.shout.as_ref().map(Command::new).map_err(Clone::clone)
    }

    /// A command running one of the Python programs of `peers`,
    /// unbuffered and in UTF-8 whatever the locale.
    pub(crate) fn python(&self, peers: Peers, script: &str) -> Result<Command, String> {
        let (dir, whose) = match peers {
            Peers::Project => (&self.project_peers, "the project's"),
            Peers::Lecture => (&self.lecture_peers, "the lecture's"),
        };
        let path = dir.join(script);
        if !path.is_file() {
            return Err(format!("{whose} {script} is not at {}", path.display()));
        }
        let python = find_in_path("python3").ok_or("python3 is not installed")?;
        let mut command = Command::new(python);
        command.arg("-u").arg(path).env("PYTHONIOENCODING", "utf-8");
        Ok(command)
    }
}

impl Env {
    /// A command running the project's `script` (in `<workspace>/peers`)
    /// with the Python that has aioquic, unbuffered.
    pub(crate) fn aioquic(&self, script: &str) -> Result<Command, String> {
        let path = self.project_peers.join(script);
        if !path.is_file() {
            return Err(format!(
                "the project's {script} is not at {}",
                path.display()
            ));
        }
        let mut command = Command::new(&self.aioquic_python);
        command.arg("-u").arg(path).env("PYTHONIOENCODING", "utf-8");
        Ok(command)
    }

    /// Returns whether the Python of [`aioquic`](Self::aioquic) has
    /// `websockets` 14 or later, whose asyncio API is the new one.
    pub(crate) fn has_new_websockets(&self) -> bool {
        Command::new(&self.aioquic_python)
            .args([
                "-c",
                "import sys, websockets; sys.exit(int(websockets.__version__.split('.')[0]) < 14)",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Returns whether the Python of [`aioquic`](Self::aioquic) is there
    /// and imports aioquic.
    pub(crate) fn has_aioquic(&self) -> bool {
        Command::new(&self.aioquic_python)
            .args(["-c", "import aioquic"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// The Python with aioquic: `$SHOUT_AIOQUIC_PYTHON`, or the virtual
/// environment `.ci/run` makes, `~/.cache/shout/aioquic-venv`.
fn aioquic_python() -> PathBuf {
    if let Some(python) = std::env::var_os("SHOUT_AIOQUIC_PYTHON") {
        return python.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/shout/aioquic-venv/bin/python3")
}

/// Whether `SHOUT_REQUIRE_PEERS=1` asks that nothing be skipped.
pub(crate) fn peers_required() -> bool {
    needs::required()
}

/// Builds the binaries and runs the scenarios `options` selects.
pub(crate) fn run(root: &Path, options: &Options) -> Result<(), String> {
    run_reporting_skips(root, options).map(drop)
}

/// Builds the binaries, runs the scenarios `options` selects and returns
/// the skipped ones, each as "name: why".
pub(crate) fn run_reporting_skips(root: &Path, options: &Options) -> Result<Vec<String>, String> {
    if options.list {
        for scenario in SCENARIOS {
            println!("{:<26} {}", scenario.name, scenario.proves);
        }
        return Ok(Vec::new());
    }
    process::kill_on_interrupt();
    let env = Arc::new(build(root)?);
    let require = needs::required();
    if require {
        println!(
            "e2e: {}=1, so a missing peer fails the run",
            needs::REQUIRE_VAR
        );
    }
    let mut passed = 0;
    let mut skipped = Vec::new();
    let mut failed = 0;
    for scenario in SCENARIOS.iter().filter(|scenario| {
        options.only.is_empty() || options.only.iter().any(|name| name == scenario.name)
    }) {
        let started = Instant::now();
        let seconds = || started.elapsed().as_secs_f64();
        let missing = needs::missing(&env, scenario.needs);
        let outcome = if missing.is_empty() {
            run_bounded(scenario, &env)
        } else {
            Ok(Outcome::Skip(format!("missing {}", missing.join(", "))))
        };
        match outcome {
            Ok(Outcome::Pass(None)) => {
                passed += 1;
                println!("PASS {} ({:.1} s)", scenario.name, seconds());
            }
            Ok(Outcome::Pass(Some(note))) => {
                passed += 1;
                println!("PASS {} ({:.1} s; {note})", scenario.name, seconds());
            }
            Ok(Outcome::Skip(why)) if require => {
                failed += 1;
                println!("FAIL {}: {}=1 and {why}", scenario.name, needs::REQUIRE_VAR);
            }
            Ok(Outcome::Skip(why)) => {
                println!("SKIP {}: {why}", scenario.name);
                skipped.push(format!("{}: {why}", scenario.name));
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {}: {why}", scenario.name);
            }
        }
        let _ = std::io::stdout().flush();
    }
    println!(
        "{passed} passed, {} skipped, {failed} failed",
        skipped.len()
    );
    for skip in &skipped {
        println!("skipped: {skip}");
    }
    if failed == 0 {
        Ok(skipped)
    } else {
        Err(format!("e2e: {failed} scenario(s) failed"))
    }
}

/// Runs a scenario on its own thread and gives up on it at its deadline,
/// killing what it started so that its blocked calls return.
fn run_bounded(scenario: &Scenario, env: &Arc<Env>) -> Result<Outcome, String> {
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(scenario.name.into())
        .spawn({
            let env = Arc::clone(env);
            let run = scenario.run;
            move || {
                let _ = sender.send(run(&env));
            }
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    match receiver.recv_timeout(scenario.deadline) {
        Ok(result) => {
            let _ = thread.join();
            result
        }
        Err(RecvTimeoutError::Disconnected) => Err(match thread.join() {
            Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            Ok(()) => "ended without a result".into(),
        }),
        Err(RecvTimeoutError::Timeout) => {
            process::kill_all();
            Err(format!(
                "did not finish within its {} s deadline (everything it started was killed)",
                scenario.deadline.as_secs()
            ))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Builds shoutd and shout in release mode. shoutd is required; when only
/// the client fails to build, the scenarios that need it fail and say why.
fn build(root: &Path) -> Result<Env, String> {
    let bin_dir = target_dir(root)?.join("release");
    let both = ["build", "--release", "-p", "shoutd", "-p", "shout"];
    println!("==> {}", show(cargo(root).args(both)));
    let shout = match run_inherited(cargo(root).args(both)) {
        Ok(()) => Ok(bin_dir.join("shout")),
        Err(error) => {
            println!("e2e: the client did not build ({error}); building shoutd alone");
            run_inherited(cargo(root).args(["build", "--release", "-p", "shoutd"]))?;
            Err("shout did not build (see the cargo output above)".to_owned())
        }
    };
    // A scenario runs it; one that did not build fails that scenario.
    let example = [
        "build",
        "--release",
        "-p",
        "shout-server",
        "--example",
        "pubsub",
    ];
    println!("==> {}", show(cargo(root).args(example)));
    if let Err(error) = run_inherited(cargo(root).args(example)) {
        println!("e2e: the pubsub example did not build ({error})");
    }
    Ok(Env {
        shoutd: bin_dir.join("shoutd"),
        shout,
        project_peers: root.join("peers"),
        lecture_peers: peers_dir(root),
        aioquic_python: aioquic_python(),
    })
}

/// Where the lecture's programs are: `<workspace>/../shared/peers/seed-python`.
pub(crate) fn peers_dir(root: &Path) -> PathBuf {
    root.join("..")
        .join("shared")
        .join("peers")
        .join("seed-python")
}

/// Cargo's target directory, as `cargo metadata` reports it (this honours
/// `CARGO_TARGET_DIR` and `build.target-dir`).
pub(crate) fn target_dir(root: &Path) -> Result<PathBuf, String> {
    let mut command = cargo(root);
    command
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit());
    let Output { status, stdout, .. } = command
        .output()
        .map_err(|error| format!("cannot run `{}`: {error}", show(&command)))?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", show(&command)));
    }
    json_string_field(&String::from_utf8_lossy(&stdout), "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| format!("no target_directory in the output of `{}`", show(&command)))
}

/// The value of the first string field `name` in a JSON text: enough for
/// `cargo metadata`, without a JSON parser.
fn json_string_field(json: &str, name: &str) -> Option<String> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let mut value = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'u' => {
                    let code: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                }
                escaped => value.push(escaped),
            },
            c => value.push(c),
        }
    }
}

/// The first executable named `name` on `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| {
            path.metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_kebab_case() {
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            assert!(
                scenario
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                scenario.name
            );
            assert!(
                SCENARIOS[..index]
                    .iter()
                    .all(|other| other.name != scenario.name),
                "{} twice",
                scenario.name
            );
        }
    }

    #[test]
    fn testing_doc_names_every_scenario() {
        let doc = std::fs::read_to_string(crate::workspace_root().join("docs/TESTING.md"))
            .expect("docs/TESTING.md exists");
        for scenario in SCENARIOS {
            assert!(
                doc.contains(&format!("`{}`", scenario.name)),
                "docs/TESTING.md does not document `{}`",
                scenario.name
            );
        }
    }

    #[test]
    fn only_accepts_known_names() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        let options = Options::parse(&args(&["--only", "restart"])).unwrap();
        assert_eq!(options.only, ["restart"]);
        assert!(Options::parse(&args(&["--only", "nope"])).is_err());
        assert!(Options::parse(&args(&["--only"])).is_err());
        assert!(Options::parse(&args(&["--fast"])).is_err());
    }

    /// The pid of the child the hung scenario below started.
    static HUNG_CHILD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    /// A scenario that hangs: it reads a child's output that never ends.
    fn hangs(_: &Env) -> Result<Outcome, String> {
        use std::io::Read;
        let mut command = Command::new("sleep");
        command
            .arg("60")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = process::Spawned::start("sleep", &mut command)?;
        HUNG_CHILD.store(child.id(), std::sync::atomic::Ordering::SeqCst);
        let mut output = Vec::new();
        let _ = child.take_stdout().unwrap().read_to_end(&mut output);
        Ok(Outcome::Pass(None))
    }

    #[test]
    fn a_scenario_past_its_deadline_fails_and_its_processes_are_killed() {
        let _children = process::CHILDREN_TEST_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scenario = Scenario {
            name: "hangs",
            proves: "nothing",
            deadline: Duration::from_millis(300),
            needs: &[],
            run: hangs,
        };
        let env = Arc::new(Env::new("shoutd".into(), "shout".into(), "peers".into()));
        let started = Instant::now();
        let error = match run_bounded(&scenario, &env) {
            Err(error) => error,
            Ok(_) => panic!("a hung scenario passed"),
        };
        assert!(error.contains("deadline"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = HUNG_CHILD.load(std::sync::atomic::Ordering::SeqCst);
        assert_ne!(pid, 0, "the scenario started its child");
        let proc_entry = PathBuf::from(format!("/proc/{pid}"));
        let gone_by = Instant::now() + Duration::from_secs(5);
        while proc_entry.exists() && Instant::now() < gone_by {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !proc_entry.exists(),
            "the hung scenario's child {pid} still runs"
        );
    }

    #[test]
    fn every_need_is_in_the_table_and_used() {
        for scenario in SCENARIOS {
            for name in scenario.needs {
                assert!(
                    needs::NEEDS.iter().any(|need| need.name == *name),
                    "{}: `{name}` is not in needs::NEEDS",
                    scenario.name
                );
            }
        }
        for need in needs::NEEDS {
            assert!(
                SCENARIOS
                    .iter()
                    .any(|scenario| scenario.needs.contains(&need.name))
                    || activation::MIGRATION_NEEDS.contains(&need.name),
                "no scenario needs `{}`",
                need.name
            );
        }
    }

    #[test]
    fn reads_a_string_field_of_cargo_metadata() {
        let json = r#"{"packages":[],"target_directory":"/w/a \"b\"\\c","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some(r#"/w/a "b"\c"#)
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }
}
