//! The daemon's API socket is for root (and the daemon's own user) only, end to end.
//!
//! - `only_root_may_use_the_api`: the socket is created with mode 0600; with the socket
//!   opened to everybody (chmod 666), a request from another user is still refused (peer
//!   credentials checked on every connection), said to the client and logged; root's works.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;
use weft_tests::*;

/// uid and gid of `nobody`.
const NOBODY: &str = "65534";

/// `weft --socket S args...` run as `nobody` (no supplementary groups).
fn weft_as_nobody(lab: &Lab, args: &[&str]) -> Output {
    run_timeout(
        Command::new("setpriv")
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(weft_bin())
            .arg("--socket")
            .arg(&lab.socket)
            .args(args),
        CLI_TIMEOUT,
    )
}

/// `python3` as `nobody`: one raw HTTP request on the socket, prints the status line.
const RAW_REQUEST: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/networks HTTP/1.1\r\nHost: weft\r\n\r\n")
data = b""
while True:
    try:
        chunk = s.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
print(data.decode(errors="replace").splitlines()[0] if data else "(nothing)")
"#;

#[test]
fn only_root_may_use_the_api() {
    root_or_skip!();
    require_tool("setpriv");
    let lab = Lab::new();
    let mode = fs::metadata(&lab.socket).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the API socket's mode");

    // Take the file mode out of the way: only the credential check is left.
    fs::set_permissions(&lab.socket, fs::Permissions::from_mode(0o666)).unwrap();
    for dir in lab.socket.ancestors().skip(1) {
        if dir.starts_with(&lab.dir) {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let o = weft_as_nobody(&lab, &["network", "ls"]);
    let err = check_error(&o, "weft network ls as nobody", &["root"]);
    assert!(
        err.contains(NOBODY),
        "the refusal should name the uid: {err:?}"
    );

    let o = run_timeout(
        Command::new("setpriv")
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .args(["/usr/bin/python3", "-c", RAW_REQUEST])
            .arg(&lab.socket),
        CLI_TIMEOUT,
    );
    let status_line = stdout_of(&o);
    assert!(
        status_line.contains(" 403 "),
        "a raw request as nobody should get 403 Forbidden, got {status_line:?} ({})",
        stderr_of(&o)
    );

    assert!(
        eventually(Duration::from_secs(5), || {
            let log = lab.daemon_log();
            log.lines()
                .any(|l| l.contains("refused") && l.contains(&format!("uid {NOBODY}")))
        }),
        "the daemon did not log the refused connection:\n{}",
        lab.daemon_log()
    );

    // Root's requests are served as before, on the same socket.
    lab.weft_ok(&["network", "ls"]);
    lab.create_network("after", "10.215.0.0/24", &[]);
}
