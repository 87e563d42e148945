//! The lab's namespaces through iproute2: made, emptied of processes, removed, and commands
//! run inside them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::LabError;

fn ip(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Io(format!("cannot run `ip` ({e}): install iproute2")))?;
    if !out.status.success() {
        return Err(LabError::Io(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Makes namespace `ns` with its loopback up; refuses one that exists already (it is not the
/// lab's).
pub fn add(ns: &str) -> Result<(), LabError> {
    if exists(ns) {
        return Err(LabError::Io(format!(
            "namespace {ns} exists already and is not this lab's: remove it (ip netns del {ns}) or rename the lab or node"
        )));
    }
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"]).map(drop)
}

/// Kills the processes inside `ns`, removes it and the resolv.conf weft wrote for it.
pub fn remove(ns: &str) -> Result<(), LabError> {
    kill_inside(ns);
    crate::gateway::remove_netns_resolv_conf(ns);
    let _ = std::fs::remove_dir(Path::new("/etc/netns").join(ns));
    if !exists(ns) {
        return Ok(());
    }
    ip(&["netns", "del", ns]).map(drop)
}

/// SIGKILLs every process whose network namespace is `ns` (a server an exec command left).
pub fn kill_inside(ns: &str) {
    let Ok(out) = ip(&["netns", "pids", ns]) else {
        return;
    };
    for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        let _ = weft_sys::send_signal(pid, libc::SIGKILL);
    }
}

/// Runs `sh -c cmd` inside `ns`, its output appended to `log`; fails on a non-zero exit or
/// after a minute. A command may leave a server running in the background (`... &`).
pub fn run_logged(ns: &str, cmd: &str, log: &Path, env: &[(&str, String)]) -> Result<(), LabError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::Io(format!("cannot open {}: {e}", log.display())))?;
    let _ = writeln!(file, "$ {cmd}");
    let err = file.try_clone().map_err(|e| LabError::Io(e.to_string()))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| LabError::Io(format!("cannot run `ip netns exec` ({e})")))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Io(format!(
                    "`{cmd}` in {ns} did not finish within 60 s (end a server's command with & to leave it running)"
                )));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(LabError::Io(format!(
        "`{cmd}` in {ns} failed ({status}):\n{}",
        tail.join("\n")
    )))
}
