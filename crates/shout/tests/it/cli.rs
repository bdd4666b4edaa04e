//! The help text: examples and the exit statuses the other tests rely on.

use crate::support::run;

#[test]
fn help_documents_examples_and_exit_statuses() {
    let outcome = run(&["--help"], b"");
    assert_eq!(outcome.code, Some(0));
    let help = outcome.stdout_text();
    for expected in [
        "Examples:",
        "shout ping --new-connection",
        "Exit status:",
        "3  the host name does not resolve",
        "4  connection refused",
        "5  timeout",
        "6  the connection broke",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
    for command in ["tcp", "udp", "ping"] {
        let outcome = run(&[command, "--help"], b"");
        assert_eq!(outcome.code, Some(0), "{command}");
    }
}
