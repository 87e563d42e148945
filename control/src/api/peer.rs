//! Who may talk to the API: the socket's mode (0600, or 0660 with `--api-group`) keeps other
//! users out only as long as nobody changes it, so every accepted connection is also checked
//! by the credentials the kernel recorded when the peer connected (`SO_PEERCRED` and
//! `SO_PEERGROUPS`, unix(7), socket(7)). Root, the daemon's own effective user and, with
//! `--api-group NAME`, members of that group are served; anyone else gets `403 Forbidden`
//! with a message and is logged (the log boundedly: 1, 2, 4, 8, ... refusals).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{SocketAddr, UCred};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::types::ApiError;

/// Refused connections answered at once; beyond that they are closed without an answer.
const MAX_REFUSING: usize = 16;
/// How long a refused peer gets to send its request and take the answer.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most octets of a refused peer's request read before it is answered.
const MAX_HEAD: usize = 16 * 1024;

/// Who the API serves besides root: the daemon's own user, and the members of one group.
#[derive(Debug, Clone)]
pub struct Access {
    /// The daemon's effective uid.
    pub owner: u32,
    /// `--api-group`: its name and ID.
    pub group: Option<(String, u32)>,
}

impl Access {
    /// Whether a peer with this uid, primary gid and supplementary groups may use the API.
    pub fn allows(&self, uid: u32, gid: u32, groups: impl FnOnce() -> Vec<u32>) -> bool {
        uid == 0
            || uid == self.owner
            || self
                .group
                .as_ref()
                .is_some_and(|&(_, g)| gid == g || groups().contains(&g))
    }

    /// Who is served, for messages: "root", "root and uid 1000", "root and group weft".
    fn served(&self) -> String {
        let mut who = vec!["root".to_string()];
        if self.owner != 0 {
            who.push(format!("uid {}", self.owner));
        }
        if let Some((name, _)) = &self.group {
            who.push(format!("members of group {name}"));
        }
        who.join(" and ")
    }
}

/// The API's listener: [`UnixListener`] that hands axum only connections of allowed peers.
pub struct CheckedListener {
    inner: UnixListener,
    access: Access,
    refusing: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
}

impl CheckedListener {
    /// Serves the peers `access` allows.
    pub fn new(inner: UnixListener, access: Access) -> CheckedListener {
        CheckedListener {
            inner,
            access,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            refused: Arc::default(),
        }
    }

    /// Answers a refused peer (in the background) and logs it.
    fn refuse(&self, stream: UnixStream, cred: Option<UCred>) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let who = match cred {
            Some(c) => format!(
                "uid {} (pid {})",
                c.uid(),
                c.pid().map_or_else(|| "?".into(), |p| p.to_string())
            ),
            None => "a peer whose credentials could not be read".into(),
        };
        let served = self.access.served();
        if n.is_power_of_two() {
            log::warn!(
                "API connection refused from {who}: only {served} may use the API ({n} refused so far)"
            );
        }
        let Ok(permit) = Arc::clone(&self.refusing).try_acquire_owned() else {
            return;
        };
        let body = serde_json::to_string(&ApiError {
            message: format!(
                "permission denied: this weft daemon serves only {served}, not {who}; run the command as root (sudo){}",
                if self.access.group.is_none() {
                    ", or start the daemon with --api-group GROUP for a group of users"
                } else {
                    ""
                }
            ),
        })
        .unwrap_or_default();
        tokio::spawn(async move {
            let _permit = permit;
            let mut stream = stream;
            let answer = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(REFUSE_TIMEOUT, async {
                // The request's head first: an HTTP client takes no answer before it sent one.
                read_head(&mut stream).await?;
                stream.write_all(answer.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

/// Reads until the end of an HTTP request head (an empty line), the end of the stream or
/// [`MAX_HEAD`] octets, whichever comes first; what was read is dropped.
async fn read_head(stream: &mut UnixStream) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    let mut tail = [0u8; 4];
    let mut total = 0;
    while total < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n;
        for &b in &buf[..n] {
            tail = [tail[1], tail[2], tail[3], b];
            if &tail == b"\r\n\r\n" {
                return Ok(());
            }
        }
    }
    Ok(())
}

impl Listener for CheckedListener {
    type Io = UnixStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // axum's accept retries on errors (and waits a second on EMFILE and the like).
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            let groups = || {
                use std::os::fd::AsFd;
                weft_sys::peer_groups(stream.as_fd()).unwrap_or_default()
            };
            match stream.peer_cred() {
                Ok(cred) if self.access.allows(cred.uid(), cred.gid(), groups) => {
                    return (stream, addr)
                }
                Ok(cred) => self.refuse(stream, Some(cred)),
                Err(_) => self.refuse(stream, None),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(owner: u32, group: Option<u32>) -> Access {
        Access {
            owner,
            group: group.map(|g| ("weft".to_string(), g)),
        }
    }

    #[test]
    fn root_the_owner_and_the_api_group_are_allowed_others_not() {
        let none = Vec::new;
        assert!(access(0, None).allows(0, 0, none));
        assert!(access(1000, None).allows(0, 0, none));
        assert!(access(1000, None).allows(1000, 1000, none));
        assert!(!access(0, None).allows(65534, 65534, none));
        assert!(!access(0, None).allows(1000, 1000, || vec![0, 1000]));
        assert!(!access(1000, None).allows(1001, 1000, none));
        // With --api-group 900: its members by primary or supplementary group.
        assert!(access(0, Some(900)).allows(1000, 900, none));
        assert!(access(0, Some(900)).allows(1000, 1000, || vec![27, 900]));
        assert!(!access(0, Some(900)).allows(1000, 1000, || vec![27, 901]));
        assert_eq!(
            access(1000, Some(900)).served(),
            "root and uid 1000 and members of group weft"
        );
    }

    /// A connection of this process (root or not, it is the owner) is served; with the
    /// owner set to another uid it is refused with a 403 and a message.
    #[tokio::test]
    async fn a_peer_of_another_uid_gets_403() {
        /// Removes the test's directory, also when the test fails.
        struct TempDir(std::path::PathBuf);
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let tmp =
            TempDir(std::env::temp_dir().join(format!("weft-peer-test-{}", std::process::id())));
        let dir = &tmp.0;
        std::fs::create_dir_all(dir).unwrap();
        let me = weft_sys::effective_uid();
        for (owner, served) in [(me, true), (me.wrapping_add(4242).max(1), me == 0)] {
            let path = dir.join(format!("s{owner}"));
            let _ = std::fs::remove_file(&path);
            let mut l =
                CheckedListener::new(UnixListener::bind(&path).unwrap(), access(owner, None));
            let client = tokio::spawn({
                let path = path.clone();
                async move {
                    let mut s = UnixStream::connect(&path).await.unwrap();
                    // A served connection may be closed before this is written.
                    let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
                    let mut out = String::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
                            .await;
                    out
                }
            });
            let accepted = tokio::time::timeout(Duration::from_millis(500), l.accept()).await;
            assert_eq!(accepted.is_ok(), served, "owner {owner}, me {me}");
            drop(accepted);
            let answer = client.await.unwrap();
            if !served {
                assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer:?}");
                assert!(answer.contains("permission denied"), "{answer:?}");
                assert!(answer.contains(&format!("uid {me}")), "{answer:?}");
            }
        }
    }
}
