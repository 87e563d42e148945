//! The daemon's API socket is for root (and the daemon's own user) only, end to end.
//!
//! - `only_root_may_use_the_api`: the socket is created with mode 0600; with the socket
//!   opened to everybody (chmod 666), a request from another user is still refused (peer
//!   credentials checked on every connection), said to the client and logged; root's works.
//! - `an_api_group_is_served_and_nobody_else`: with `--api-group G` the socket is 0660 and
//!   G's, a directory the daemon creates for it 0750 and G's; a member of G (by a
//!   supplementary group) is served, the same user without it refused; an unknown group
//!   keeps the daemon from starting.

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

/// A group made for one test, removed when dropped.
struct TestGroup {
    name: String,
    gid: u32,
}

impl TestGroup {
    fn new(name: &str) -> TestGroup {
        let o = run_timeout(Command::new("groupadd").arg(name), CLI_TIMEOUT);
        assert!(o.status.success(), "groupadd {name}: {}", describe(&o));
        let line = fs::read_to_string("/etc/group")
            .unwrap()
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .map(str::to_string)
            .expect("the new group in /etc/group");
        let gid = line.split(':').nth(2).unwrap().parse().unwrap();
        TestGroup {
            name: name.to_string(),
            gid,
        }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// `weft --socket SOCKET args...` as `nobody` with `groups` as its supplementary groups.
fn weft_as_nobody_in(socket: &std::path::Path, groups: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={groups}"));
    }
    cmd.arg(weft_bin()).arg("--socket").arg(socket).args(args);
    run_timeout(&mut cmd, CLI_TIMEOUT)
}

#[test]
fn an_api_group_is_served_and_nobody_else() {
    use std::os::unix::fs::MetadataExt;
    root_or_skip!();
    require_tool("setpriv");
    require_tool("groupadd");
    let lab = Lab::without_daemon();
    let group = TestGroup::new(&format!("{}g", lab.prefix));
    // The socket in a directory the daemon creates.
    let dir = lab.dir.join("api");
    let socket = dir.join("weft.sock");
    let mut daemon = Command::new(weft_bin());
    daemon
        .args(["daemon", "--api-group", &group.name, "--socket"])
        .arg(&socket)
        .arg("--state-dir")
        .arg(&lab.state_dir)
        .args(["--dns-upstream", "127.0.0.1:9"]);
    let _daemon = Bg::spawn(daemon);
    assert!(
        eventually(Duration::from_secs(10), || socket.exists()),
        "the daemon did not create its socket"
    );
    for (path, mode) in [(&socket, 0o660), (&dir, 0o750)] {
        let meta = fs::metadata(path).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            mode,
            "{}",
            path.display()
        );
        assert_eq!(meta.gid(), group.gid, "{}", path.display());
    }
    // Others may pass through the directory only as members of the group.
    fs::set_permissions(lab.dir.as_path(), fs::Permissions::from_mode(0o755)).unwrap();
    let o = weft_as_nobody_in(&socket, &group.gid.to_string(), &["network", "ls"]);
    assert!(
        o.status.success(),
        "a member of the API group: {}",
        describe(&o)
    );
    // The same user without the group: refused by the credential check even with the
    // file modes out of the way.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let o = weft_as_nobody_in(&socket, "", &["network", "ls"]);
    let err = check_error(&o, "weft network ls as nobody", &["permission denied"]);
    assert!(
        err.contains(&format!("members of group {}", group.name)),
        "{err}"
    );

    // An unknown group keeps the daemon from starting, with what to do.
    let o = run_timeout(
        Command::new(weft_bin())
            .args(["daemon", "--api-group", "no-such-group-weft", "--socket"])
            .arg(lab.dir.join("other.sock"))
            .arg("--state-dir")
            .arg(lab.dir.join("other-state")),
        CLI_TIMEOUT,
    );
    let err = check_error(
        &o,
        "weft daemon --api-group no-such-group-weft",
        &["no such group"],
    );
    assert!(err.contains("groupadd no-such-group-weft"), "{err}");
}
