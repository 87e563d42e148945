//! A private dockerd for a test: Debian's docker.io with its own data root, exec root and
//! API socket, no iptables and no docker0 bridge, an offline busybox image (`weftbox`), and
//! weft's driver on a plugin socket named after the lab (the driver's name in
//! `docker network create -d NAME`). Stopped (containers removed first) when the lab is
//! cleaned up, before the weft daemon stops.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{describe, require_tool, run_timeout, send_signal, stdout_of, wait_child, Lab};

/// The image every test container runs: busybox-static, imported offline.
pub const IMAGE: &str = "weftbox";

/// Applets linked in the image.
const APPLETS: &[&str] = &[
    "sh", "ping", "nc", "ip", "httpd", "sleep", "cat", "echo", "ls", "nslookup", "hostname",
    "kill", "ifconfig", "route", "true", "timeout", "printf",
];

pub struct Dockerd {
    /// `docker -H unix://SOCKET`.
    pub socket: PathBuf,
    /// The driver's name: the plugin socket's file stem.
    pub driver: String,
    /// The plugin socket weft serves.
    pub plugin_socket: PathBuf,
    dir: PathBuf,
    child: Arc<Mutex<Option<std::process::Child>>>,
}

/// dockerd on `dir`'s data and exec roots, serving `socket`, no iptables, no docker0.
fn spawn_dockerd(dir: &Path, socket: &Path) -> std::process::Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .expect("dockerd log");
    Command::new("dockerd")
        .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
        .args(["--ip-forward=false", "--userland-proxy=false"])
        .arg("--data-root")
        .arg(dir.join("root"))
        .arg("--exec-root")
        .arg(dir.join("x"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dockerd: {e}"))
}

impl Dockerd {
    /// Starts dockerd for `lab` (waits until its API answers) and imports the image.
    pub fn start(lab: &Lab) -> Dockerd {
        require_tool("dockerd");
        require_tool("busybox");
        let dir = lab.dir.join("d");
        fs::create_dir_all(&dir).expect("docker dir");
        let socket = dir.join("docker.sock");
        let child = Arc::new(Mutex::new(Some(spawn_dockerd(&dir, &socket))));
        let driver = lab.prefix.clone();
        let d = Dockerd {
            socket: socket.clone(),
            plugin_socket: PathBuf::from(format!("/run/docker/plugins/{driver}.sock")),
            driver,
            dir,
            child: Arc::clone(&child),
        };
        {
            let socket = socket.clone();
            lab.on_cleanup(move || stop(&socket, &child, true));
        }
        d.wait_ready();
        d.import_image(&lab.dir.join("rootfs"));
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 30 s; log:\n{}",
                fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops dockerd (its containers stop with it) and starts it again on the same data.
    pub fn restart(&self) {
        stop(&self.socket, &self.child, false);
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(spawn_dockerd(&self.dir, &self.socket));
        self.wait_ready();
    }

    /// The weft daemon's arguments that serve this dockerd's driver.
    pub fn daemon_args(&self) -> Vec<String> {
        vec![
            "--docker".into(),
            "--docker-socket".into(),
            self.plugin_socket.display().to_string(),
            "--docker-host".into(),
            self.socket.display().to_string(),
        ]
    }

    /// `docker ARGS` against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Output {
        run_timeout(
            Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.socket.display()))
                .args(args),
            Duration::from_secs(60),
        )
    }

    /// `docker ARGS`, which must succeed: its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", describe(&o));
        stdout_of(&o)
    }

    /// `docker ARGS`, which must fail: its stderr (Docker prints the driver's message).
    pub fn docker_err(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            !o.status.success(),
            "docker {args:?} succeeded: {}",
            describe(&o)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `docker network create -d DRIVER --ipam-driver DRIVER --subnet SUBNET EXTRA.. NAME`:
    /// the new network's ID.
    pub fn network_create(&self, name: &str, subnet: &str, extra: &[&str]) -> String {
        let args = self.network_create_args(name, subnet, extra);
        self.docker_ok(&args).trim().to_string()
    }

    /// [`Dockerd::network_create`], which must fail: the message Docker prints.
    pub fn network_create_err(&self, name: &str, subnet: &str, extra: &[&str]) -> String {
        let args = self.network_create_args(name, subnet, extra);
        self.docker_err(&args)
    }

    fn network_create_args<'a>(
        &'a self,
        name: &'a str,
        subnet: &'a str,
        extra: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec![
            "network",
            "create",
            "-d",
            &self.driver,
            "--ipam-driver",
            &self.driver,
            "--subnet",
            subnet,
        ];
        args.extend_from_slice(extra);
        args.push(name);
        args
    }

    /// `docker run -d --name NAME EXTRA.. weftbox CMD..` (the container runs on).
    pub fn run(&self, name: &str, extra: &[&str], cmd: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.docker_ok(&args);
    }

    /// `docker exec NAME CMD..`.
    pub fn exec(&self, name: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", name];
        args.extend_from_slice(cmd);
        self.docker(&args)
    }

    /// The container's address on `network`.
    pub fn ip(&self, name: &str, network: &str) -> String {
        let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        self.docker_ok(&["inspect", "-f", &f, name])
            .trim()
            .to_string()
    }

    fn import_image(&self, rootfs: &Path) {
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
            fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
        }
        let busybox = which("busybox");
        fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for a in APPLETS {
            let _ = symlink("busybox", rootfs.join("bin").join(a));
        }
        fs::write(rootfs.join("www/index.html"), "weftbox\n").unwrap();
        // busybox httpd runs it as CGI: the client's address as the server sees it.
        fs::create_dir_all(rootfs.join("www/cgi-bin")).expect("cgi-bin");
        let cgi = rootfs.join("www/cgi-bin/addr");
        fs::write(
            &cgi,
            "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"client=$REMOTE_ADDR\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).unwrap();
        let archive = lab_tar(rootfs);
        let o = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(["import", archive.to_str().unwrap(), IMAGE])
            .output()
            .expect("docker import");
        assert!(o.status.success(), "docker import: {}", describe(&o));
    }
}

/// `tar -C rootfs -c .` into `rootfs.tar` beside it.
fn lab_tar(rootfs: &Path) -> PathBuf {
    let archive = rootfs.with_extension("tar");
    let o = run_timeout(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "tar: {}", describe(&o));
    archive
}

fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| panic!("{tool} is not installed"))
}

/// Stops the dockerd (SIGTERM, 20 s); with `clean`, removes its containers and networks
/// first.
fn stop(socket: &Path, child: &Mutex<Option<std::process::Child>>, clean: bool) {
    let Some(mut c) = child.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let docker = |args: &[&str]| {
        run_timeout(
            Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", socket.display()))
                .args(args),
            Duration::from_secs(30),
        )
    };
    if clean {
        let ids = stdout_of(&docker(&["ps", "-aq"]));
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = docker(&args);
        }
        let _ = docker(&["network", "prune", "-f"]);
    }
    send_signal(c.id(), libc::SIGTERM);
    if wait_child(&mut c, Duration::from_secs(20)).is_none() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
