//! The lecture's delay arithmetic, checked across `shout link`: `shout
//! delay` against shoutd over `--rtt 40ms --rate 20mbit`, plain and over
//! TLS 1.3, and `shout udp` and `shout ping --udp` across `--loss 20%`.
//!
//! Like the link's own scenarios these need root, `ip` and /dev/net/tun;
//! the runner skips them, naming what is missing, and fails on the skip
//! under `SHOUT_REQUIRE_PEERS=1`.

use super::link::{LinkRun, path_of, run_link, shoutd_line_with};
use super::process::TempDir;
use super::{Env, Outcome};
use serde_json::Value;
use std::time::Duration;

/// The link the lecture's examples are checked on.
const LINK: [&str; 4] = ["--rtt", "40ms", "--rate", "20mbit"];

/// What `shout delay` fetches: 10 objects of 10 KB.
const DELAY: &str = "delay -n 10 -s 10000 --rate 20mbit --json";

/// The `shout delay --json` document in a run's output: the line that
/// starts with `{` (the server's `listening` lines come first).
fn delay_json(run: &LinkRun) -> Result<Value, String> {
    let line = run
        .stdout
        .lines()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| format!("no JSON in shout delay's output: {}", run.stdout))?;
    serde_json::from_str(line).map_err(|error| format!("shout delay's JSON: {error}: {line}"))
}

/// A number in the JSON, by path.
fn number(json: &Value, path: &[&str]) -> Result<f64, String> {
    path.iter()
        .try_fold(json, |value, key| value.get(key))
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("no number at {} in shout delay's JSON", path.join(".")))
}

/// The mean of one phase over a way's objects.
fn mean_phase(json: &Value, way: &str, phase: &str) -> Result<f64, String> {
    let objects = json
        .get(way)
        .and_then(|way| way.get("objects"))
        .and_then(Value::as_array)
        .filter(|objects| !objects.is_empty())
        .ok_or_else(|| format!("no objects for {way} in shout delay's JSON"))?;
    let sum = objects
        .iter()
        .map(|object| {
            object
                .get(phase)
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN)
        })
        .sum::<f64>();
    Ok(sum / objects.len() as f64)
}

/// Non-persistent one at a time within 15% of the lecture's prediction,
/// and pipelined at least 3× faster than it, over 10 objects of 10 KB
/// across `--rtt 40ms --rate 20mbit`.
pub(crate) fn delay_predictions(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("delay-predictions")?;
    let shout = path_of(&env.shout_path()?);
    let run = run_link(
        env,
        &LINK,
        &shoutd_line_with(env, &dir.0.join("server.pid"), "--tcp 198.18.0.1:12000"),
        &format!("{shout} {DELAY} $SHOUT_LINK_SERVER:12000"),
        Duration::from_secs(60),
    )?;
    run.check("shout delay across --rtt 40ms --rate 20mbit")?;
    let json = delay_json(&run)?;
    let total = number(&json, &["non_persistent", "total_ms"])?;
    let predicted = number(&json, &["non_persistent", "predicted_ms"])?;
    let pipelined = number(&json, &["pipelined", "total_ms"])?;
    let ratio = total / predicted;
    let note = format!(
        "RTT {:.1} ms; non-persistent {total:.0} ms against {predicted:.0} predicted ({ratio:.2}×); \
         pipelined {pipelined:.0} ms, {:.1}× faster",
        number(&json, &["rtt_ms"])?,
        total / pipelined
    );
    if !(0.85..=1.15).contains(&ratio) {
        return Err(format!(
            "non-persistent not within 15% of its prediction: {note}"
        ));
    }
    if pipelined * 3.0 > total {
        return Err(format!(
            "pipelined not 3× faster than non-persistent: {note}"
        ));
    }
    Ok(Outcome::Pass(Some(note)))
}

/// TLS 1.3 adds one round trip to each new connection: the TLS phase of a
/// non-persistent object is 1 RTT (± 25%), and the way's total stays
/// within 15% of its prediction.
pub(crate) fn delay_tls(env: &Env) -> Result<Outcome, String> {
    let dir = TempDir::new("delay-tls")?;
    let cert = dir.0.join("cert.pem");
    let shout = path_of(&env.shout_path()?);
    let run = run_link(
        env,
        &LINK,
        &shoutd_line_with(
            env,
            &dir.0.join("server.pid"),
            &format!("--tls 198.18.0.1:12443 --cert-out {}", path_of(&cert)),
        ),
        // The generated certificate names localhost, not the link's address.
        &format!(
            "{shout} {DELAY} --tls --ca {} --servername localhost $SHOUT_LINK_SERVER:12443",
            path_of(&cert)
        ),
        Duration::from_secs(60),
    )?;
    run.check("shout delay --tls across --rtt 40ms --rate 20mbit")?;
    let json = delay_json(&run)?;
    let rtt = number(&json, &["rtt_ms"])?;
    let tls = mean_phase(&json, "non_persistent", "tls_ms")?;
    let total = number(&json, &["non_persistent", "total_ms"])?;
    let predicted = number(&json, &["non_persistent", "predicted_ms"])?;
    let note = format!(
        "RTT {rtt:.1} ms; TLS handshake {tls:.1} ms per connection ({:.2} RTT); non-persistent \
         {total:.0} ms against {predicted:.0} predicted ({:.2}×)",
        tls / rtt,
        total / predicted
    );
    if !(0.75..=1.25).contains(&(tls / rtt)) {
        return Err(format!("the TLS handshake is not one round trip: {note}"));
    }
    if !(0.85..=1.15).contains(&(total / predicted)) {
        return Err(format!(
            "non-persistent over TLS not within 15% of its prediction: {note}"
        ));
    }
    Ok(Outcome::Pass(Some(note)))
}

/// Across `--loss 20%`: `shout udp` gets every line answered with enough
/// retries, and `shout ping --udp` loses 36% ± 5 points of its round trips
/// (20% each way: 1 − 0.8²).
pub(crate) fn delay_udp_loss(env: &Env) -> Result<Outcome, String> {
    const LINES: usize = 50;
    const PROBES: u32 = 1_000;
    let dir = TempDir::new("delay-udp-loss")?;
    let shout = path_of(&env.shout_path()?);
    let input = dir.0.join("lines.txt");
    let text: String = (0..LINES)
        .map(|n| format!("line {n} across a lossy link\n"))
        .collect();
    std::fs::write(&input, &text).map_err(|error| format!("cannot write {input:?}: {error}"))?;
    // 20 tries of 50 ms: a line goes unanswered with probability 0.36^20.
    let client = format!(
        "{shout} udp --timeout 0.05 --retries 19 $SHOUT_LINK_SERVER:12000 < {} && \
         {shout} ping --udp -c {PROBES} -i 1 --timeout 0.02 $SHOUT_LINK_SERVER:12000",
        path_of(&input)
    );
    let run = run_link(
        env,
        &["--loss", "20%"],
        &shoutd_line_with(env, &dir.0.join("server.pid"), "--udp 198.18.0.1:12000"),
        &client,
        Duration::from_secs(90),
    )?;
    run.check("shout udp and shout ping --udp across --loss 20%")?;
    let answered: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.starts_with("LINE "))
        .collect();
    let expected: Vec<String> = text.to_uppercase().lines().map(str::to_owned).collect();
    if answered != expected {
        return Err(format!(
            "shout udp across --loss 20%: {} of {LINES} lines answered in order; output: {}",
            answered.len(),
            super::process::one_line_tail(&run.stdout, 400)
        ));
    }
    let ping = super::link::parse_ping(&run.stdout).ok_or("no ping summary")?;
    let lost = 100.0 - f64::from(ping.received) * 100.0 / f64::from(ping.sent);
    let note = format!(
        "{LINES} lines answered; {lost:.1}% of {} round trips lost",
        ping.sent
    );
    if ping.sent != PROBES || !(31.0..=41.0).contains(&lost) {
        return Err(format!("not 36% ± 5 of round trips lost: {note}"));
    }
    Ok(Outcome::Pass(Some(note)))
}
