//! Scenarios where shout's WebSocket meets WebSocket written by others:
//! Python's `websockets` package as a client of `shoutd --ws`, headless
//! Chromium loading the page with `?say=` and showing the uppercase (and
//! reconnecting once shoutd closes its socket), and `shout ws` against an
//! uppercaser on Python's `websockets`.
//!
//! Everything is on 127.0.0.1; Chromium runs with the flags that keep it
//! off the network (no sync, no component updates, no QUIC) and a fresh
//! profile in a temporary directory. This module does not test WebSocket
//! itself (crates/server's tests do, frame by frame), only that the sides
//! agree.

use super::process::{
    Shoutd, Spawned, TempDir, Transport, one_line_tail, run_with_input, start_on_free_port,
};
use super::{Env, Outcome};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Time a client process gets for its whole exchange.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Python that has the `websockets` package (Debian's
/// python3-websockets): the system's, whatever a virtualenv puts first
/// in PATH.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Starts shoutd with a WebSocket listener on 127.0.0.1 and `extra`.
fn start(env: &Env, extra: &[&str]) -> Result<(Shoutd, SocketAddr), String> {
    let mut options = vec!["--ws", "127.0.0.1:0"];
    options.extend_from_slice(extra);
    let shoutd = Shoutd::start_on(env, "127.0.0.1:0", "127.0.0.1:0", &options)?;
    let ws = shoutd.ws.ok_or("shoutd printed no `listening ws` line")?;
    Ok((shoutd, ws))
}

/// A client on Python's `websockets`: text (Unicode that grows when
/// uppercased), binary, a fragmented message, 300 kB, a ping, the close
/// handshake, and an upgrade from a foreign Origin. Prints one line each.
const PYTHON_CLIENT: &str = r#"
import asyncio, sys, websockets
url = "ws://127.0.0.1:%s/ws" % sys.argv[1]
async def main():
    out = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("hello, straße — ﬁne")
        out.append(await ws.recv())
        await ws.send(b"bytes \xff")
        out.append(repr(await ws.recv()))
        await ws.send(["frag", "mented"])
        out.append(await ws.recv())
        big = "abc " * 75000
        await ws.send(big)
        out.append("big " + str(await ws.recv() == big.upper()))
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        out.append("pong")
    out.append("close %s" % ws.close_code)
    try:
        async with websockets.connect(url, origin="http://evil.example"):
            out.append("foreign origin accepted")
    except websockets.exceptions.InvalidHandshake as error:
        status = getattr(error, "status_code", None) or error.response.status_code
        out.append("foreign origin refused %s" % int(status))
    print("\n".join(out))
asyncio.run(main())
"#;

/// Python's `websockets` client (Debian's, before version 14) gets every
/// message answered as it should.
pub(crate) fn python_websockets_vs_shoutd(env: &Env) -> Result<Outcome, String> {
    python_client_vs_shoutd(env, Path::new(PYTHON))
}

/// The same with `websockets` 14 or later, whose asyncio API is new:
/// the Python of `.ci/run`'s virtual environment.
pub(crate) fn python_websockets_15_vs_shoutd(env: &Env) -> Result<Outcome, String> {
    python_client_vs_shoutd(env, &env.aioquic_python)
}

/// [`PYTHON_CLIENT`] run by `python` against a fresh `shoutd --ws`.
fn python_client_vs_shoutd(env: &Env, python: &Path) -> Result<Outcome, String> {
    let (mut shoutd, ws) = start(env, &[])?;
    let mut client = Command::new(python);
    client
        .args(["-c", PYTHON_CLIENT, &ws.port().to_string()])
        .env("PYTHONIOENCODING", "utf-8");
    let expected = "HELLO, STRASSE — FINE\nb'BYTES \\xff'\nFRAGMENTED\nbig True\npong\n\
                    close 1000\nforeign origin refused 403\n";
    run_with_input("python3 websockets", &mut client, b"", CLIENT_TIMEOUT)?
        .expect("python3 websockets", expected.as_bytes())?;
    if let Some(status) = shoutd.process.try_wait()? {
        return Err(format!(
            "shoutd exited ({status}); {}",
            shoutd.process.stderr_tail()
        ));
    }
    Ok(Outcome::Pass(None))
}

/// Chromium, headless and off the network, with a fresh profile in
/// `profile`, doing `action` (`--dump-dom`, `--screenshot=FILE`) on `url`.
pub(crate) fn chromium(profile: &std::path::Path, action: &[&str], url: &str) -> Command {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url);
    command
}

/// Headless Chromium loads the page with `?say=` and shows the uppercase
/// in the element with id `reply`, the status line saying it is open;
/// then the same over https and wss (`--wss`, its generated certificate
/// accepted with `--ignore-certificate-errors`).
pub(crate) fn chromium_page(env: &Env) -> Result<Outcome, String> {
    let (mut shoutd, ws) = start(env, &["--wss", "127.0.0.1:0"])?;
    let wss = shoutd.wss.ok_or("shoutd printed no `listening wss` line")?;
    page_shows_reply(&format!("http://{ws}"), &format!("ws://{ws}/ws"), &[])?;
    let (https, secure) = (format!("https://{wss}"), format!("wss://{wss}/ws"));
    page_shows_reply(&https, &secure, &["--ignore-certificate-errors"])?;
    if let Some(status) = shoutd.process.try_wait()? {
        return Err(format!(
            "shoutd exited ({status}); {}",
            shoutd.process.stderr_tail()
        ));
    }
    Ok(Outcome::Pass(None))
}

/// Loads `origin`'s page with `?say=` in Chromium (with `extra` flags)
/// and checks the reply, and the status line naming `socket`.
fn page_shows_reply(origin: &str, socket: &str, extra: &[&str]) -> Result<(), String> {
    let profile = TempDir::new("chromium")?;
    let said = "hello from chromium, straße";
    let url = format!("{origin}/?say=hello%20from%20chromium%2C%20stra%C3%9Fe");
    // Virtual time runs the page's timers and waits for its socket.
    let mut action = vec!["--virtual-time-budget=10000", "--dump-dom"];
    action.extend_from_slice(extra);
    let mut browser = chromium(&profile.0, &action, &url);
    let finished = run_with_input("chromium", &mut browser, b"", CLIENT_TIMEOUT)?;
    let dom = String::from_utf8_lossy(&finished.stdout);
    let reply = format!(
        r#"<div id="reply" aria-live="polite">{}</div>"#,
        said.to_uppercase()
    );
    if !finished.status.success() || !dom.contains(&reply) {
        return Err(format!(
            "chromium on {origin} ({}) shows no {reply:?} in the DOM: {}; stderr: {}",
            finished.status,
            one_line_tail(&dom, 600),
            one_line_tail(&finished.stderr, 400)
        ));
    }
    if !dom.contains(&format!(
        r#"<div id="status" class="open">open: {socket}</div>"#
    )) {
        return Err(format!(
            "on {origin} the status line is not open: {}",
            one_line_tail(&dom, 600)
        ));
    }
    Ok(())
}

/// Watches a page in a Chromium started with `--remote-debugging-port=0`
/// through the DevTools protocol (on Python's `websockets`): finds the
/// port in `DevToolsActivePort` in the profile directory (argv 1), then
/// reads the page's reply, status, log, chart summary and whether the
/// chart has a bar drawn, every 100 ms until the reply is argv 2 and the
/// status open, or 15 s have passed.
/// Prints the last state read as JSON (`null` if none).
const PAGE_WATCHER: &str = r#"
import asyncio, json, os, sys, time, urllib.request, websockets
profile, want = sys.argv[1], sys.argv[2]
STATE = """(() => { try { const $ = (id) => document.getElementById(id); return JSON.stringify({
  reply: $("reply").textContent, status: $("status").textContent, kind: $("status").className,
  log: [...$("log").querySelectorAll("li:first-child span")].map((span) => span.textContent).join("|"),
  summary: $("summary").textContent,
  bars: Array.from($("chart").getContext("2d").getImageData(0, 0, $("chart").width, $("chart").height).data)
    .filter((value, index) => index % 4 === 3 && value > 0).length > 0 }); } catch (e) { return "null"; } })()"""
async def main():
    deadline = time.monotonic() + 15
    pages = []
    while not pages and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        try:
            port = open(os.path.join(profile, "DevToolsActivePort")).readline().strip()
            listed = json.load(urllib.request.urlopen("http://127.0.0.1:%s/json/list" % port))
            pages = [target for target in listed if target["type"] == "page"]
        except (OSError, ValueError):
            pass
    state = None
    if pages:
        async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as devtools:
            asked = 0
            while time.monotonic() < deadline:
                asked += 1
                await devtools.send(json.dumps({"id": asked, "method": "Runtime.evaluate",
                    "params": {"expression": STATE, "returnByValue": True}}))
                answer = {}
                while answer.get("id") != asked:
                    answer = json.loads(await devtools.recv())
                state = json.loads(answer.get("result", {}).get("result", {}).get("value", "null"))
                if state and state["reply"] == want and state["kind"] == "open":
                    break
                await asyncio.sleep(0.1)
    print(json.dumps(state))
asyncio.run(main())
"#;

/// The page's socket closed by the server: shoutd with a 16-byte message
/// limit, the page told to say a longer line, then `again`. shoutd closes
/// with 1009; the page must reconnect after its backoff and send `again`
/// on the new socket, so that the reply becomes `AGAIN`, the status open,
/// with the exchange in the log, the chart's summary and a bar drawn. Chromium runs in
/// real time, watched through the DevTools protocol (virtual time races
/// ahead of a socket's handshake). shoutd's stop summary must count two
/// upgrades, no refused request (the page names no icon to fetch) and
/// one close with 1009.
pub(crate) fn chromium_page_reconnects(env: &Env) -> Result<Outcome, String> {
    let (mut shoutd, ws) = start(env, &["--ws-max-message", "16"])?;
    let profile = TempDir::new("chromium-reconnect")?;
    let url = format!("http://{ws}/?say=longer%20than%20sixteen%20bytes&say=again");
    let mut command = chromium(&profile.0, &["--remote-debugging-port=0"], &url);
    command.stdin(Stdio::null()).stdout(Stdio::null());
    let mut browser = Spawned::start("chromium", &mut command)?;
    let mut watcher = Command::new(PYTHON);
    watcher
        .args(["-c", PAGE_WATCHER])
        .arg(&profile.0)
        .arg("AGAIN");
    let watched = run_with_input("the page watcher", &mut watcher, b"", CLIENT_TIMEOUT)?;
    browser.signal(libc::SIGTERM)?;
    let _ = browser.wait_timeout(Duration::from_secs(5));
    let state = String::from_utf8_lossy(&watched.stdout);
    let wanted = [
        r#""reply": "AGAIN""#.to_owned(),
        format!(r#""status": "open: ws://{ws}/ws""#),
        r#""kind": "open""#.to_owned(),
        r#""log": "again|AGAIN|"#.to_owned(),
        r#""summary": "1 message, median "#.to_owned(),
        r#""bars": true"#.to_owned(),
    ];
    if let Some(missing) = wanted
        .iter()
        .find(|wanted| !state.contains(wanted.as_str()))
    {
        return Err(format!(
            "after the 1009 close the page shows no {missing}: {} (watcher {}; stderr: {}); chromium: {}",
            state.trim(),
            watched.status,
            one_line_tail(&watched.stderr, 400),
            browser.stderr_tail()
        ));
    }
    super::activation::stop(&mut shoutd.process, "shoutd")?;
    let stderr = shoutd.process.stderr();
    // No refusal: the page names no icon for the browser to fetch.
    for counted in ["websocket: 2 upgrades, 0 refused,", ", 1 with 1009,"] {
        if !stderr.contains(counted) {
            return Err(format!(
                "shoutd's stop summary does not say {counted:?}: {}",
                one_line_tail(&stderr, 800)
            ));
        }
    }
    Ok(Outcome::Pass(None))
}

/// An uppercaser on Python's `websockets`: each message answered with its
/// uppercase (`str.upper` for text, `bytes.upper` for binary), on
/// 127.0.0.1 and the port given, at `/` only (another path gets 404);
/// prints `ready` once listening.
const PYTHON_SERVER: &str = r#"
import asyncio, http, sys, websockets
async def upper(ws, *path):
    async for message in ws:
        await ws.send(message.upper())
async def only_root(*request):
    # websockets before 14 passes (path, headers); from 14, (connection, request).
    if isinstance(request[0], str):
        if request[0] != "/":
            return http.HTTPStatus.NOT_FOUND, [], b"not here\n"
    elif request[1].path != "/":
        return request[0].respond(http.HTTPStatus.NOT_FOUND, "not here\n")
    return None
async def main():
    async with websockets.serve(upper, "127.0.0.1", int(sys.argv[1]), max_size=None,
                                process_request=only_root):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// `shout ws` against the Python uppercaser: lines of Unicode whose
/// uppercase is longer, then 1 MiB piped, come back as their exact
/// uppercase; a path the server does not serve is a refused upgrade,
/// exit status 6 naming the 404, and a wss:// URL on its plain port is a
/// TLS failure, exit status 7.
pub(crate) fn shout_ws_vs_python_server(env: &Env) -> Result<Outcome, String> {
    shout_ws_vs_python_server_on(env, Path::new(PYTHON))
}

/// The same against the uppercaser on `websockets` 14 or later (the
/// Python of `.ci/run`'s virtual environment).
pub(crate) fn shout_ws_vs_python_websockets_15(env: &Env) -> Result<Outcome, String> {
    shout_ws_vs_python_server_on(env, &env.aioquic_python)
}

/// `shout ws` against [`PYTHON_SERVER`] run by `python`.
fn shout_ws_vs_python_server_on(env: &Env, python: &Path) -> Result<Outcome, String> {
    let (mut server, port) = start_on_free_port(
        "python3 websockets server",
        Transport::Tcp,
        "ready",
        |port| {
            let mut command = Command::new(python);
            command.args(["-c", PYTHON_SERVER, &port.to_string()]);
            Ok(command)
        },
    )?;
    let url = format!("ws://127.0.0.1:{port}/");
    let lines = "hello, straße\nﬁne ǆ 🎉\nlast line without a newline";
    let mut shout = env.shout()?;
    shout.args(["ws", &url]);
    run_with_input("shout ws", &mut shout, lines.as_bytes(), CLIENT_TIMEOUT)?
        .expect("shout ws", lines.to_uppercase().as_bytes())?;

    let big: String = (0..20_000)
        .map(|i| format!("line {i}: grüße, ǆ\n"))
        .collect();
    let mut shout = env.shout()?;
    shout.args(["ws", &url]);
    run_with_input(
        "shout ws (1 MiB)",
        &mut shout,
        big.as_bytes(),
        CLIENT_TIMEOUT,
    )?
    .expect("shout ws (1 MiB)", big.to_uppercase().as_bytes())?;

    let mut shout = env.shout()?;
    shout.args(["ws", &format!("ws://127.0.0.1:{port}/elsewhere")]);
    let finished = run_with_input("shout ws (another path)", &mut shout, b"x", CLIENT_TIMEOUT)?;
    if finished.status.code() != Some(6) || !finished.stderr.contains("404") {
        return Err(format!(
            "shout ws to a path the server does not serve: {}, not exit status 6 naming 404; stderr: {}",
            finished.status,
            one_line_tail(&finished.stderr, 300)
        ));
    }

    let mut shout = env.shout()?;
    shout.args(["ws", &format!("wss://127.0.0.1:{port}/"), "--insecure"]);
    let finished = run_with_input("shout ws wss://", &mut shout, b"x", CLIENT_TIMEOUT)?;
    if finished.status.code() != Some(7) {
        return Err(format!(
            "shout ws wss:// on a plain port: {}, not exit status 7; stderr: {}",
            finished.status,
            one_line_tail(&finished.stderr, 300)
        ));
    }
    if let Some(status) = server.try_wait()? {
        return Err(format!(
            "the Python server exited ({status}); {}",
            server.stderr_tail()
        ));
    }
    Ok(Outcome::Pass(None))
}
