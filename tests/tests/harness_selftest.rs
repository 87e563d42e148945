//! Self-test of the harness itself (no weft daemon involved): namespaces,
//! raw frame sender, pcap parser, cleanup. If this fails, the other failures
//! are probably test-side.

use std::time::Duration;
use weft_tests::*;

#[test]
fn harness_namespaces_raw_frames_pcap_and_cleanup() {
    root_or_skip!();
    require_tool("tcpdump");
    require_tool("python3");
    let prefix;
    {
        let lab = Lab::without_daemon();
        prefix = lab.prefix.clone();
        let x = lab.ns("x");
        let y = lab.ns("y");
        assert!(netns_list().contains(&x));
        lab.exec_ok(
            &x,
            &[
                "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &y,
            ],
        );
        for (ns, ip) in [(&x, "192.168.77.1/24"), (&y, "192.168.77.2/24")] {
            lab.exec_ok(ns, &["ip", "link", "set", "eth0", "mtu", "9000", "up"]);
            lab.exec_ok(ns, &["ip", "addr", "add", ip, "dev", "eth0"]);
        }
        assert!(
            lab.wait_ping(&x, "192.168.77.2", Duration::from_secs(3)),
            "veth ping in the harness failed"
        );
        assert!(!lab.ping(&x, "192.168.77.99"));

        let file = lab.dir.join("self.pcap");
        let mut td = lab.spawn_in(
            &y,
            &[
                "tcpdump",
                "-i",
                "eth0",
                "-U",
                "-w",
                file.to_str().unwrap(),
                "ether",
                "proto",
                "0x88b5",
            ],
        );
        assert!(
            eventually(Duration::from_secs(5), || td
                .stderr()
                .contains("listening on")),
            "tcpdump did not start: {}",
            td.stderr()
        );
        let src = [0x02, 0, 0, 0, 0x77, 1];
        let frames = vec![
            eth_frame([0xff; 6], [0x01, 0, 0x5e, 0, 0, 1], 0x88b5, &[1u8; 46]),
            eth_frame([0xff; 6], src, 0x88b5, &vec![2u8; 3986]),
            eth_frame([0xff; 6], src, 0x88b5, &[3u8; 46]),
        ];
        assert_eq!(lab.send_frames(&x, "eth0", &frames), 3);
        assert!(
            eventually(Duration::from_secs(3), || read_pcap(&file)
                .map(|p| p.frames.len() >= 3)
                .unwrap_or(false)),
            "tcpdump did not see the raw frames"
        );
        td.kill();
        let p = read_pcap(&file).unwrap();
        assert_eq!(p.linktype, 1);
        assert_eq!(p.frames, frames, "frames arrived modified");
        let (ok, out, err) = tcpdump_read(&file, &["-e"]);
        assert!(ok, "{err}");
        assert_eq!(
            out.lines()
                .filter(|l| !l.starts_with(char::is_whitespace))
                .count(),
            3,
            "{out}"
        );
        assert!(out.contains("01:00:5e:00:00:01"), "{out}");

        // a lingering process inside a namespace must not block cleanup
        let _sleeper = lab.spawn_in(&x, &["sleep", "300"]);
        std::mem::forget(_sleeper);
    }
    let left: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "Lab drop left namespaces: {left:?}");
    assert!(
        !std::env::temp_dir()
            .join(format!("weft-test-{prefix}"))
            .exists(),
        "temp dir not removed"
    );
}

#[test]
fn pcap_parser_rejects_truncated_files() {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    assert_eq!(parse_pcap(&f).unwrap().frames.len(), 0);
    for x in [1u32, 2, 60, 60] {
        f.extend_from_slice(&x.to_le_bytes());
    }
    f.extend_from_slice(&[0xaa; 60]);
    assert_eq!(parse_pcap(&f).unwrap().frames.len(), 1);
    f.extend_from_slice(&[0; 10]);
    assert!(parse_pcap(&f).is_err());
    assert!(parse_pcap(&f[..20]).is_err());
}

#[test]
fn test_name_is_the_enclosing_test_function() {
    // The skip line of `root_or_skip!` names the test by it.
    assert_eq!(test_name!(), "test_name_is_the_enclosing_test_function");
}
