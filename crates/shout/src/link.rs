//! `shout link`: the arguments of the emulated link, and its run turned
//! into a summary on standard error and an exit status.

use clap::Args;
use shout_link::{
    ClientCommand, Counters, DEFAULT_QUEUE, LinkConfig, Loss, Plan, Rate, Report, format_duration,
    parse_duration,
};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub(crate) const LINK_AFTER_HELP: &str = "\
The server command runs in a network namespace whose only interface is a TUN
device with address 198.18.0.1; the client command runs in another with
198.18.0.2. shout link forwards each IP packet between the two devices after
the link's delay, at its rate, through its queue and its loss. The kernel
stacks on both sides are real: TCP's handshake, slow start and
retransmissions happen as over a real link. Addresses are from
198.18.0.0/15, reserved for benchmarking; nothing outside the two
namespaces is reachable.

Both commands get SHOUT_LINK_SERVER=198.18.0.1 and SHOUT_LINK_CLIENT=198.18.0.2
in their environment. A CLIENT_COMMAND of one argument runs through `sh -c`,
so quote it in single quotes and $SHOUT_LINK_SERVER expands inside it;
several arguments run as a program and its arguments, with the variables in
its environment only. The server command always runs through `sh -c`.

The client starts once something listens in the server's namespace (a TCP
listener or a UDP socket), at most 5 s after the server started. When the
client ends, the server gets SIGTERM (SIGKILL 2 s later), each command with
the processes it started, and shout link exits with the client's status. On
SIGINT or SIGTERM the client is stopped the same way first. A summary goes
to standard error: packets passed each way, lost, dropped by the full queue.
The namespaces have no name and vanish with their last process: nothing is
left behind.

Examples:
  shout link --rtt 40ms --rate 20mbit --server 'shoutd' -- 'shout ping -c 10 $SHOUT_LINK_SERVER:12000'
                                       ping shoutd across 40 ms and 20 Mbit/s
  shout link --rtt 100ms --loss 5% --server 'shoutd' -- 'shout udp $SHOUT_LINK_SERVER:12000'
                                       type lines; watch the retries
  shout link --rtt 50ms --jitter 5ms --server 'shoutd --tcp 198.18.0.1:12000' -- \\
      sh -c 'shout ping --new-connection $SHOUT_LINK_SERVER:12000'
                                       the handshake's round trip, with jitter

Limits: Linux only, and root (it makes network namespaces and TUN devices).
The link never reorders packets, even with jitter. One-way delay is half the
RTT, the same both ways; rate, loss and queue apply to each direction apart.

Exit status: the client command's (128 + N when signal N ended it); 2 for a
usage error or when the system does not allow the link (not root, no TUN);
127 when the client program does not exist; 1 for other failures.";

/// `shout link`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// The round-trip time the link adds: half of it each way (50ms, 1s,
    /// 250us; 0 for none).
    #[arg(long, value_name = "TIME", default_value = "0", value_parser = duration)]
    rtt: Duration,
    /// Each direction's rate (10mbit, 500kbit, 1gbit; kbps, mbps for bytes
    /// per second). A packet of N bytes occupies the link N × 8 / RATE
    /// seconds. Unlimited when not given.
    #[arg(long, value_name = "RATE")]
    rate: Option<Rate>,
    /// The share of packets each direction drops at random, each packet on
    /// its own draw (1%, 0.5%).
    #[arg(long, value_name = "PERCENT", default_value = "0%")]
    loss: Loss,
    /// Each packet's one-way delay varies uniformly within ± this. Packets
    /// are never reordered: one that would overtake leaves right after the
    /// one ahead.
    #[arg(long, value_name = "TIME", default_value = "0", value_parser = duration)]
    jitter: Duration,
    /// The most packets each direction holds waiting for the wire (drop
    /// tail). Only a link with --rate queues.
    #[arg(long, value_name = "PACKETS", default_value_t = DEFAULT_QUEUE as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    queue: u32,
    /// The seed of the loss and jitter draws, to replay a run (the summary
    /// prints the one used). Random when not given.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// The server command, run through `sh -c` in the server's namespace.
    #[arg(long, value_name = "COMMAND")]
    server: String,
    /// The client command, run in the client's namespace: one argument runs
    /// through `sh -c`, several run as a program and its arguments.
    #[arg(last = true, required = true, value_name = "CLIENT_COMMAND")]
    client: Vec<OsString>,
}

/// Parses a `--rtt` or `--jitter` value.
fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|error| error.to_string())
}

/// Runs the link and returns the client's status as the exit code.
pub(crate) fn run(args: LinkArgs, quiet: bool) -> ExitCode {
    let seed = args.seed.unwrap_or_else(random_seed);
    let link = LinkConfig {
        delay: args.rtt / 2,
        jitter: args.jitter,
        rate: args.rate,
        loss: args.loss,
        queue: args.queue as usize,
        seed,
    };
    let client = match <[OsString; 1]>::try_from(args.client) {
        Ok([line]) => match line.into_string() {
            Ok(line) => ClientCommand::Shell(line),
            Err(line) => ClientCommand::Exec(vec![line]),
        },
        Err(argv) => ClientCommand::Exec(argv),
    };
    let settings = format!(
        "rtt {}, rate {}, loss {}, jitter ±{}, queue {} packets, seed {seed}",
        format_duration(args.rtt),
        args.rate
            .map_or_else(|| "unlimited".to_owned(), |rate| rate.to_string()),
        args.loss,
        format_duration(args.jitter),
        args.queue,
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("shout link: cannot handle signal {signal}: {error}");
            return ExitCode::from(1);
        }
    }
    let plan = Plan {
        link,
        server: args.server,
        client,
    };
    match shout_link::run(&plan, &stop) {
        Ok(report) => {
            if !quiet {
                eprintln!("shout link: {settings}");
                summarize(&report);
            }
            ExitCode::from(status_code(report.client))
        }
        Err(error) => {
            eprintln!("shout link: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Prints how the run ended, one line per direction.
fn summarize(report: &Report) {
    if let Some(status) = report.server_ended {
        eprintln!("shout link: the server command ended before the client ({status})");
    }
    if report.stopped {
        eprintln!("shout link: stopped by a signal");
    }
    eprintln!(
        "shout link: client to server: {}",
        direction(&report.client_to_server)
    );
    eprintln!(
        "shout link: server to client: {}",
        direction(&report.server_to_client)
    );
}

/// `1804 packets passed (2612 KB), 196 lost (9.8%), 0 dropped by the full queue`.
fn direction(counters: &Counters) -> String {
    let arrived = counters.arrived().max(1) as f64;
    format!(
        "{} packets passed ({} KB), {} lost ({:.1}%), {} dropped by the full queue ({:.1}%)",
        counters.passed,
        counters.passed_bytes.div_ceil(1000),
        counters.lost,
        counters.lost as f64 * 100.0 / arrived,
        counters.queue_dropped,
        counters.queue_dropped as f64 * 100.0 / arrived,
    )
}

/// The shell's convention: the exit code, or 128 + the signal.
fn status_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

/// A seed from the clock and the process id: different for each run,
/// printed so that a run can be replayed.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direction_reads_as_counts_and_shares() {
        let counters = Counters {
            passed: 1_800,
            passed_bytes: 180_000,
            lost: 200,
            queue_dropped: 0,
        };
        assert_eq!(
            direction(&counters),
            "1800 packets passed (180 KB), 200 lost (10.0%), 0 dropped by the full queue (0.0%)"
        );
    }
}
