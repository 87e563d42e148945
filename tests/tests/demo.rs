//! `weft demo`: self-contained lab that cleans up after itself.

use std::process::Command;
use std::time::Duration;
use weft_tests::*;

#[test]
fn demo_runs_and_cleans_up() {
    root_or_skip!();
    // Namespaces of other tests running in parallel are named wtXXXX-*; ignore those.
    let foreign = |v: Vec<String>| {
        v.into_iter()
            .filter(|n| !is_lab_name(n))
            .collect::<Vec<_>>()
    };
    let before = foreign(netns_list());
    let dir = std::env::temp_dir().join(format!("weft-test-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = run_timeout(
        Command::new(weft_bin()).arg("demo").current_dir(&dir),
        Duration::from_secs(120),
    );
    let out = stdout_of(&o);
    let err = stderr_of(&o);
    assert!(
        o.status.success(),
        "weft demo failed ({}):\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    // prints the FDB: at least one MAC address line
    let has_mac = out.lines().any(|l| {
        l.split_whitespace().any(|w| {
            let p: Vec<&str> = w.split(':').collect();
            p.len() == 6
                && p.iter()
                    .all(|x| x.len() == 2 && x.chars().all(|c| c.is_ascii_hexdigit()))
        })
    });
    assert!(
        has_mac,
        "weft demo output shows no FDB (no MAC address):\n{out}"
    );
    // traces one frame from red: its FDB lookup and where it went
    assert!(
        out.contains("fdb       ")
            && out.contains("is behind green")
            && out.contains("green: sent"),
        "weft demo output shows no traced frame:\n{out}"
    );
    let after = foreign(netns_list());
    let leftover: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert!(
        leftover.is_empty(),
        "weft demo left namespaces behind: {leftover:?}\nstdout:\n{out}"
    );
    // no demo process left running
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        // children of `weft demo` inherit its working directory
        let in_demo_dir = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|c| c.starts_with(&dir))
            .unwrap_or(false);
        assert!(
            !in_demo_dir,
            "process {pid} {args:?} started by weft demo is still running"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
