//! The worker threads: wait in epoll, drain each ready port, then keep polling (yielding the
//! CPU) for the busy-poll window before sleeping again.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_switch::PortId;
use weft_sys as sys;

use super::forward::{Scratch, Wake};
use super::{lock, Dataplane, PortTable, BATCH, BUF_LEN, VXLAN_TOKEN, WAKE_TOKEN};

/// A `sched_yield` that takes longer than this ran another thread: the CPU is contended.
const YIELD_LATE: Duration = Duration::from_micros(500);

/// What one visit to a ready port found.
enum Drained {
    Moved,
    Idle,
    Gone,
}

impl Dataplane {
    /// Starts the worker threads.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        let mut threads = (0..self.workers.len())
            .map(|i| {
                let dp = Arc::clone(self);
                std::thread::Builder::new()
                    .name(format!("weft-dataplane-{i}"))
                    .spawn(move || dp.run(i))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        threads.push(self.spawn_shaper()?);
        Ok(threads)
    }

    /// Asks the workers to exit.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.workers {
            w.wake.notify();
        }
        self.shaper_wake.kick();
    }

    /// A worker's loop: wait for ready ports, drain each, forward. After traffic the worker
    /// polls (epoll with no timeout, yielding between empty polls) for the busy-poll window,
    /// then sleeps in epoll until a port or the wake eventfd is ready.
    fn run(&self, index: usize) {
        let worker = &self.workers[index];
        let mut buf = vec![0u8; BUF_LEN];
        let mut scratch = Scratch::new(BUF_LEN);
        let mut ready: Vec<u64> = Vec::with_capacity(256);
        let mut last_traffic = Instant::now();
        let mut last_expire = Instant::now();
        // Set when a yield came back late: another thread wanted this CPU, so the worker
        // sleeps in epoll (a wake-up preempts at once) instead of spinning, until traffic.
        let mut yielded_late = false;
        while !self.stop.load(Ordering::Relaxed) {
            let spinning = !yielded_late && last_traffic.elapsed() < self.busy_poll;
            let timeout = if spinning { 0 } else { 1000 };
            if let Err(e) = worker.epoll.wait(&mut ready, 256, timeout) {
                log::error!("epoll_wait failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if ready.is_empty() {
                if spinning {
                    // Nothing to do yet: let any runnable thread on this CPU (the
                    // applications whose frames we forward) go first instead of burning the
                    // CPU they need. On two CPUs with a sender, a receiver and this worker,
                    // a spin that does not yield halves the sender's share. If the yield
                    // let another thread run (it came back late), that thread may keep the
                    // CPU for its whole time slice while frames wait: sleep instead, so that
                    // the next frame's wake-up preempts it.
                    let before = Instant::now();
                    std::thread::yield_now();
                    yielded_late = before.elapsed() > YIELD_LATE;
                }
                continue;
            }
            if self.serve_ready(index, &ready, &mut buf, &mut scratch) {
                last_traffic = Instant::now();
                yielded_late = false;
            }
            if index == 0 && last_expire.elapsed() >= Duration::from_secs(1) {
                lock(&self.bridge).expire(self.now());
                last_expire = Instant::now();
            }
        }
    }

    /// Serves the ready tokens of one epoll wake-up with the port table read-locked once;
    /// returns whether any frame moved.
    fn serve_ready(
        &self,
        index: usize,
        ready: &[u64],
        buf: &mut [u8],
        scratch: &mut Scratch,
    ) -> bool {
        let worker = &self.workers[index];
        let table = self.ports_read();
        let mut wake = Wake {
            table: &table,
            now: self.now(),
            scratch,
        };
        let mut moved = false;
        for &token in ready {
            if token == WAKE_TOKEN {
                worker.wake.drain();
                continue;
            }
            if token == VXLAN_TOKEN {
                moved |= self.drain_vxlan(&mut wake, buf);
                continue;
            }
            let port = PortId(token as u32);
            match self.drain_port(&mut wake, port, buf) {
                Drained::Moved => moved = true,
                Drained::Idle => {}
                Drained::Gone => {
                    // The interface went away under us (its namespace was deleted, the
                    // container exited): stop polling the fd, or level-triggered epoll
                    // would report it forever. The endpoint stays until disconnected.
                    if let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) {
                        let _ = worker.epoll.delete(io.fd.as_fd());
                    }
                    log::warn!("port {port} lost its interface; disconnect its endpoint");
                }
            }
        }
        moved
    }

    /// Reads up to [`BATCH`] frames from `port` and forwards each.
    fn drain_port(&self, wake: &mut Wake<'_>, port: PortId, buf: &mut [u8]) -> Drained {
        let table: &PortTable = wake.table;
        let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) else {
            return Drained::Idle;
        };
        let mut drained = Drained::Idle;
        for _ in 0..BATCH {
            let n = match sys::read_fd(io.fd.as_fd(), buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // EBADFD: the TAP was deleted; ENXIO/ENODEV: the device is gone.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBADFD | libc::ENXIO | libc::ENODEV)
                    ) =>
                {
                    return Drained::Gone;
                }
                Err(e) => {
                    // ENETDOWN on a packet socket whose link went down, reported once:
                    // nothing to read until it comes back.
                    log::debug!("read from port {port} failed: {e}");
                    break;
                }
            };
            drained = Drained::Moved;
            self.forward(wake, port, io, &buf[..n], n == buf.len());
        }
        drained
    }
}
