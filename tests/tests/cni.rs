//! weft as a CNI plugin: real podman containers on a weft network (ping each other and the
//! outside, a published port, `podman rm` leaving nothing), and the plugin run directly as
//! the specification describes (ADD's result in 0.3.1, 0.4.0, 1.0.0 and 1.1.0, DEL on a
//! vanished namespace, CHECK, STATUS, GC, VERSION and the error codes).
//!
//! podman runs with a private containers.conf (CNI backend, the plugin directory and the
//! configuration directory of the lab, no port reservation, ulimits root here may set),
//! private storage, run root and tmp dir under the lab directory; containers run from a
//! busybox rootfs (`--rootfs`). A guard removes every container when the test ends, also
//! when it fails.

use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use weft_tests::*;

// ---------------------------------------------------------------------------
// podman with its own configuration and storage
// ---------------------------------------------------------------------------

/// podman confined to the lab: its configuration, storage and CNI directories. Dropping it
/// removes every container it made.
struct Podman {
    dir: PathBuf,
    network: String,
}

impl Podman {
    /// Installs the plugin and a conflist for `network` (created at the first ADD with
    /// `subnet`) with `weft cni install`, and writes podman's configuration.
    fn new(lab: &Lab, network: &str, subnet: &str) -> Podman {
        require_tool("podman");
        let dir = lab.dir.join("podman");
        for d in ["bin", "net.d", "root", "runroot", "tmp"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let bin = dir.join("bin").display().to_string();
        let netd = dir.join("net.d").display().to_string();
        let out = lab.weft_ok(&[
            "cni",
            "install",
            "--bin-dir",
            &bin,
            "--conf-dir",
            &netd,
            "--network",
            network,
            "--subnet",
            subnet,
        ]);
        assert!(out.contains("weft") && out.contains(".conflist"), "{out}");
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{bin}\"]\n\
             network_config_dir = \"{netd}\"\n\
             [engine]\nenable_port_reservation = false\nevents_logger = \"none\"\n"
        );
        fs::write(dir.join("containers.conf"), conf).unwrap();
        make_rootfs(&dir.join("rootfs"));
        Podman {
            dir,
            network: network.to_string(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        for (flag, sub) in [
            ("--root", "root"),
            ("--runroot", "runroot"),
            ("--tmpdir", "tmp"),
        ] {
            c.arg(flag).arg(self.dir.join(sub));
        }
        c.args(["--storage-driver", "vfs"]);
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        run_timeout(self.command().args(args), EXEC_TIMEOUT)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.podman(args);
        assert!(o.status.success(), "podman {args:?}: {}", describe(&o));
        stdout_of(&o)
    }

    /// `podman run -d --name NAME --network NET EXTRA... --rootfs ROOTFS CMD...`; the
    /// container's ID.
    fn run(&self, name: &str, extra: &[&str], cmd: &[&str]) -> String {
        let rootfs = self.dir.join("rootfs").display().to_string();
        let mut args = vec!["run", "-d", "--name", name, "--network", &self.network];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", &rootfs]);
        args.extend_from_slice(cmd);
        self.ok(&args).trim().to_string()
    }

    fn exec(&self, name: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", name];
        args.extend_from_slice(cmd);
        self.podman(&args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let o = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if !o.status.success() {
            eprintln!("podman rm -a -f: {}", describe(&o));
        }
    }
}

/// A busybox root file system: the tools the tests run in containers.
fn make_rootfs(root: &Path) {
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox is required (apt-get install busybox-static)");
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for tool in [
        "sh", "ping", "wget", "nc", "ip", "httpd", "sleep", "cat", "echo", "nslookup",
    ] {
        symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    fs::write(
        root.join("www/index.html"),
        "served by a podman container on weft\n",
    )
    .unwrap();
    // busybox httpd runs it as CGI: the client's address as the server sees it.
    fs::create_dir_all(root.join("www/cgi-bin")).unwrap();
    let cgi = root.join("www/cgi-bin/addr");
    fs::write(
        &cgi,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"client=$REMOTE_ADDR\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The endpoint of `net` that container `id` (interface eth0) owns.
fn endpoint_of(lab: &Lab, net: &str, id: &str) -> Value {
    let owner = format!("cni:{id}/eth0");
    let eps = lab.endpoints(net);
    eps.iter()
        .find(|e| e["owner"] == owner.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint owned by {owner} on {net}: {eps:?}"))
}

// ---------------------------------------------------------------------------
// the plugin run directly
// ---------------------------------------------------------------------------

/// The plugin's exit code and what it printed (parsed when it is JSON).
struct Run {
    code: Option<i32>,
    stdout: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("plugin printed no JSON ({e}): {:?}", self.stdout))
    }

    /// Asserts an error result with `code` and returns its message.
    fn error(&self, code: u64) -> String {
        assert_eq!(self.code, Some(1), "should fail: {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"], code, "error code: {v}");
        assert!(v["cniVersion"].is_string(), "{v}");
        v["msg"]
            .as_str()
            .unwrap_or_else(|| panic!("no msg: {v}"))
            .to_string()
    }

    fn ok(&self) {
        assert_eq!(self.code, Some(0), "should succeed: {}", self.stdout);
    }
}

/// Runs the plugin with `CNI_COMMAND=command`, `env` and `stdin`, nothing else of ours.
fn plugin(command: &str, env: &[(&str, &str)], stdin: &str) -> Run {
    let mut c = Command::new(weft_bin());
    for var in [
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "WEFT_SOCKET",
    ] {
        c.env_remove(var);
    }
    c.env("CNI_COMMAND", command)
        .env("CNI_PATH", "/nonexistent");
    c.envs(env.iter().copied());
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run the weft plugin");
    // The plugin reads all of stdin before it answers; a write error means it exited early.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait for the weft plugin");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    }
}

/// A plugin configuration for `net` on the lab's daemon, in `version`.
fn conf(lab: &Lab, version: &str, net: &str, extra: Value) -> String {
    let mut c = json!({"cniVersion": version, "name": net, "type": "weft",
                       "socket": lab.socket.display().to_string()});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c.to_string()
}

/// The environment of one attachment: container ID, namespace path, eth0.
fn attachment_env<'a>(id: &'a str, netns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
    ]
}

// ---------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------

#[test]
fn podman_containers_reach_each_other_and_the_outside() {
    root_or_skip!();
    let lab = Lab::new();
    lab.outside(250);
    let pm = Podman::new(&lab, "pods", "10.87.0.0/24");
    let conflist: Value =
        serde_json::from_str(&fs::read_to_string(pm.dir.join("net.d/pods.conflist")).unwrap())
            .unwrap();
    assert_eq!(
        conflist["plugins"][0]["socket"],
        lab.socket.display().to_string()
    );
    let id1 = pm.run("c1", &[], &["sleep", "600"]);
    let id2 = pm.run("c2", &[], &["sleep", "600"]);
    // The network was created by the first ADD; each container is an endpoint it owns,
    // named after the container.
    let (e1, e2) = (
        endpoint_of(&lab, "pods", &id1),
        endpoint_of(&lab, "pods", &id2),
    );
    assert_eq!(
        (e1["name"].as_str(), e2["name"].as_str()),
        (Some("c1"), Some("c2"))
    );
    let (ip1, ip2) = (e1["ip"].as_str().unwrap(), e2["ip"].as_str().unwrap());
    assert!(
        ip1.starts_with("10.87.0.") && ip2.starts_with("10.87.0."),
        "{ip1} {ip2}"
    );
    for (from, to) in [("c1", ip2), ("c2", ip1), ("c1", "10.250.0.2")] {
        let o = pm.exec(from, &["ping", "-c", "2", "-W", "2", to]);
        assert!(o.status.success(), "{from} -> {to}: {}", describe(&o));
    }
    // podman used the result's DNS: the embedded DNS answers the other container's name.
    let o = pm.exec("c2", &["ping", "-c", "1", "-W", "2", "c1"]);
    assert!(o.status.success(), "c2 -> c1 by name: {}", describe(&o));
    pm.ok(&["rm", "-f", "-t", "0", "c1", "c2"]);
    assert_eq!(
        lab.endpoints("pods"),
        Vec::<Value>::new(),
        "podman rm left endpoints"
    );
}

#[test]
fn podman_publishes_a_port() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let pm = Podman::new(&lab, "web", "10.82.0.0/24");
    let id = pm.run(
        "web1",
        &["-p", "18480:80"],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    let ep = endpoint_of(&lab, "web", &id);
    assert_eq!(ep["published"], json!(["0.0.0.0:18480->80/tcp"]), "{ep}");
    let curl = || {
        run_timeout(
            Command::new("curl").args(["-s", "-m", "3", "http://127.0.0.1:18480/"]),
            EXEC_TIMEOUT,
        )
    };
    let served = eventually(Duration::from_secs(10), || {
        stdout_of(&curl()).contains("served by a podman container on weft")
    });
    assert!(
        served,
        "curl through the published port: {}",
        describe(&curl())
    );
    // The server sees an outside client's own address, not the gateway's.
    let out = lab.outside(252);
    let o = lab.exec(
        &out,
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "http://10.252.0.1:18480/cgi-bin/addr",
        ],
    );
    assert!(
        stdout_of(&o).contains("client=") && stdout_of(&o).contains("10.252.0.2"),
        "the server saw: {}",
        describe(&o)
    );
    pm.ok(&["rm", "-f", "-t", "0", "web1"]);
    assert!(lab.endpoints("web").is_empty());
    assert!(
        !curl().status.success(),
        "the host port stays open after podman rm"
    );
}

// ---------------------------------------------------------------------------
// the plugin run directly
// ---------------------------------------------------------------------------

/// Checks one ADD result's shape in `version`, against the endpoint weft made.
fn check_result(version: &str, r: &Value, ep: &Value, netns: &str) {
    assert_eq!(r["cniVersion"], version, "{r}");
    let iface = &r["interfaces"][0];
    assert_eq!(r["interfaces"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(iface["name"], "eth0");
    assert_eq!(iface["mac"], ep["mac"]);
    assert_eq!(iface["sandbox"], netns);
    assert_eq!(iface.get("mtu").is_some(), version == "1.1.0", "{r}");
    let ip = &r["ips"][0];
    assert_eq!(r["ips"].as_array().map(Vec::len), Some(1), "{r}");
    let address = format!("{}/{}", ep["ip"].as_str().unwrap(), ep["prefix_len"]);
    assert_eq!(ip["address"], address.as_str());
    assert_eq!(ip["gateway"], "10.83.0.1");
    assert_eq!(ip["interface"], 0);
    match version {
        "0.3.1" | "0.4.0" => assert_eq!(ip["version"], "4", "{r}"),
        _ => assert!(
            ip.get("version").is_none(),
            "{version} has no ips[].version: {r}"
        ),
    }
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.83.0.1"}])
    );
    assert_eq!(r["dns"], json!({"nameservers": ["10.83.0.1"]}));
}

#[test]
fn plugin_results_follow_each_version() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("v", "10.83.0.0/24", &[]);
    let mut attached = Vec::new();
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let ns = lab.ns(&format!("v{i}"));
        let netns = format!("/run/netns/{ns}");
        let id = format!("ver{i}container");
        let mut env = attachment_env(&id, &netns);
        env.push(("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=pod v/1"));
        let r = plugin("ADD", &env, &conf(&lab, version, "v", json!({})));
        r.ok();
        let ep = endpoint_of(&lab, "v", &id);
        if i == 0 {
            // K8S_POD_NAME made to weft's rules; the next ones collide and take the ID's
            // first 12 characters.
            assert_eq!(ep["name"], "pod-v-1");
        } else {
            assert_eq!(ep["name"], id.chars().take(12).collect::<String>().as_str());
        }
        check_result(version, &r.json(), &ep, &netns);
        // The interface is really there, with that MAC and address.
        let shown = lab.exec_ok(&ns, &["ip", "addr", "show", "eth0"]);
        assert!(shown.contains(ep["mac"].as_str().unwrap()), "{shown}");
        assert!(
            shown.contains(&format!(
                "inet {}",
                r.json()["ips"][0]["address"].as_str().unwrap()
            )),
            "{shown}"
        );
        attached.push((id, netns, version));
    }
    for (id, netns, version) in &attached {
        plugin(
            "DEL",
            &attachment_env(id, netns),
            &conf(&lab, version, "v", json!({})),
        )
        .ok();
    }
    assert!(lab.endpoints("v").is_empty());
}

#[test]
fn plugin_del_succeeds_when_things_are_gone() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("d", "10.84.0.0/24", &[]);
    // The namespace is deleted (no process in it) between ADD and DEL, for both port kinds.
    for kind in ["veth", "tap"] {
        let ns = lab.ns(&format!("gone-{kind}"));
        let netns = format!("/run/netns/{ns}");
        let id = format!("del{kind}");
        let c = conf(&lab, "1.0.0", "d", json!({"kind": kind}));
        plugin("ADD", &attachment_env(&id, &netns), &c).ok();
        let eps = lab.endpoints("d");
        assert_eq!((eps.len(), eps[0]["kind"].as_str()), (1, Some(kind)));
        let o = run_timeout(Command::new("ip").args(["netns", "del", &ns]), EXEC_TIMEOUT);
        assert!(o.status.success(), "{}", describe(&o));
        plugin("DEL", &attachment_env(&id, &netns), &c).ok();
        assert!(
            lab.endpoints("d").is_empty(),
            "DEL left the {kind} endpoint"
        );
        if let Some(host) = eps[0]["host_ifname"].as_str() {
            assert!(
                !link_names_in(None).contains(&host.to_string()),
                "{host} left"
            );
        }
    }
    let ns = lab.ns("gone");
    let netns = format!("/run/netns/{ns}");
    let env = attachment_env("delcontainer", &netns);
    let c = conf(&lab, "1.0.0", "d", json!({}));
    // Again, without CNI_NETNS, and for a network weft does not have: still success.
    plugin("DEL", &env, &c).ok();
    plugin(
        "DEL",
        &env[..1]
            .iter()
            .chain(&env[2..])
            .copied()
            .collect::<Vec<_>>(),
        &c,
    )
    .ok();
    plugin("DEL", &env, &conf(&lab, "1.0.0", "nonet", json!({}))).ok();
    // With the daemon unreachable DEL cannot release anything: "try again later".
    let away = json!({"socket": lab.dir.join("absent.sock").display().to_string()});
    let msg = plugin("DEL", &env, &conf(&lab, "1.0.0", "d", away)).error(11);
    assert!(msg.contains("absent.sock"), "{msg}");
}

#[test]
fn plugin_check_status_and_gc() {
    root_or_skip!();
    let lab = Lab::new();
    let (na, nb) = (lab.ns("a"), lab.ns("b"));
    let (pa, pb) = (format!("/run/netns/{na}"), format!("/run/netns/{nb}"));
    // The first ADD creates the network from the configuration's subnet.
    let c = conf(&lab, "1.1.0", "g", json!({"subnet": "10.85.0.0/24"}));
    let add_a = plugin("ADD", &attachment_env("ida", &pa), &c);
    add_a.ok();
    plugin("ADD", &attachment_env("idb", &pb), &c).ok();
    lab.connect("g", &lab.ns("manual"), &[]);
    assert_eq!(lab.inspect("g")["subnet"], "10.85.0.0/24");

    // CHECK: as ADD returned it; a different MAC; an attachment weft does not have.
    let prev = add_a.json();
    let with_prev = |p: &Value| conf(&lab, "1.1.0", "g", json!({"prevResult": p}));
    plugin("CHECK", &attachment_env("ida", &pa), &with_prev(&prev)).ok();
    let mut wrong = prev.clone();
    wrong["interfaces"][0]["mac"] = json!("02:00:00:00:00:99");
    let msg = plugin("CHECK", &attachment_env("ida", &pa), &with_prev(&wrong)).error(101);
    assert!(msg.contains("MAC"), "{msg}");
    plugin("CHECK", &attachment_env("idz", &pa), &with_prev(&prev)).error(3);

    // STATUS: ready with the daemon up; 50 when its socket is absent.
    plugin("STATUS", &[], &c).ok();
    let away = json!({"socket": lab.dir.join("absent.sock").display().to_string()});
    plugin("STATUS", &[], &conf(&lab, "1.1.0", "g", away)).error(50);

    // GC keeps ida (listed) and the endpoint no CNI attachment made, removes idb.
    let valid = json!({"cni.dev/valid-attachments": [{"containerID": "ida", "ifname": "eth0"}]});
    plugin("GC", &[], &conf(&lab, "1.1.0", "g", valid)).ok();
    let owners: Vec<Value> = lab
        .endpoints("g")
        .iter()
        .map(|e| e["owner"].clone())
        .collect();
    assert_eq!(owners.len(), 2, "{owners:?}");
    assert!(owners.contains(&json!("cni:ida/eth0")), "{owners:?}");
    assert!(
        owners.contains(&Value::Null),
        "the manual endpoint went: {owners:?}"
    );
}

#[test]
fn plugin_errors_carry_the_specification_codes() {
    root_or_skip!();
    let lab = Lab::new();
    let ns = lab.ns("e");
    let netns = format!("/run/netns/{ns}");
    let env = attachment_env("errcontainer", &netns);
    lab.create_network("e", "10.86.0.0/24", &[]);
    let good = conf(&lab, "1.0.0", "e", json!({}));
    plugin("ADD", &env, &conf(&lab, "0.2.0", "e", json!({}))).error(1);
    let msg = plugin(
        "ADD",
        &env[..1]
            .iter()
            .chain(&env[2..])
            .copied()
            .collect::<Vec<_>>(),
        &good,
    )
    .error(4);
    assert!(msg.contains("CNI_NETNS"), "{msg}");
    plugin("ADD", &env, "{not json").error(6);
    let msg = plugin("ADD", &env, &conf(&lab, "1.0.0", "nosuch", json!({}))).error(7);
    assert!(msg.contains("nosuch") && msg.contains("subnet"), "{msg}");
    // The daemon's own refusal reaches the user: a protocol weft does not publish.
    let bad = json!({"runtimeConfig": {"portMappings": [{"hostPort": 18481, "containerPort": 80, "protocol": "sctp"}]}});
    let msg = plugin("ADD", &env, &conf(&lab, "1.0.0", "e", bad)).error(7);
    assert!(msg.contains("sctp") && msg.contains("tcp or udp"), "{msg}");
    plugin("CHECK", &env, &conf(&lab, "0.3.1", "e", json!({}))).error(1);
    plugin("FROB", &env, &good).error(4);
    assert!(
        lab.endpoints("e").is_empty(),
        "a failed ADD left an endpoint"
    );
    // VERSION answers in the version asked, with every version it speaks.
    let v = plugin("VERSION", &[], r#"{"cniVersion":"0.4.0"}"#);
    v.ok();
    assert_eq!(
        v.json(),
        json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}
