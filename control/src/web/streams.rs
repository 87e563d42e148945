//! The web view's long answers: the counters pushed every second as server-sent events,
//! and a port's live trace or capture, each bounded in time and holding a permit while
//! it runs.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::rates::{ports_event, RateTracker};
use crate::daemon::Daemon;

/// How often the page gets the counters.
pub const TICK: Duration = Duration::from_secs(1);

/// A request the web view does not serve: the status and a message naming the problem and
/// the fix (as JSON, like the API's errors).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = crate::types::ApiError {
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::daemon::DaemonError> for Refused {
    fn from(e: crate::daemon::DaemonError) -> Refused {
        Refused {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: e.to_string(),
        }
    }
}

/// A permit from `pool`, or the refusal that says there are too many.
pub fn permit(
    pool: &Arc<Semaphore>,
    what: &str,
    max: usize,
) -> Result<OwnedSemaphorePermit, Refused> {
    Arc::clone(pool).try_acquire_owned().map_err(|_| Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("the web view already serves {max} {what}; close one (a trace's Stop, another tab) and try again"),
    })
}

/// The counters of every port with their rates, as one `ports` event now and every
/// [`TICK`] after, until the page goes away.
pub fn port_events(daemon: Arc<Daemon>, permit: OwnedSemaphorePermit) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let _permit = permit;
        let mut tracker = RateTracker::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if tx
            .send(Bytes::from_static(b"retry: 3000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tick.tick().await;
            let d = Arc::clone(&daemon);
            let Ok(rows) = tokio::task::spawn_blocking(move || d.ports()).await else {
                return;
            };
            let rates = tracker.update(&rows, Instant::now());
            let at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let event = ports_event(&rows, &rates, at_ms);
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Passes on what `rx` yields until it closes, `limit` passes or the reader goes away;
/// `permit` is held until then.
pub fn bounded<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
    limit: Duration,
    permit: OwnedSemaphorePermit,
) -> mpsc::Receiver<T> {
    let (tx, out) = mpsc::channel::<T>(64);
    tokio::spawn(async move {
        let _permit = permit;
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => if tx.send(item).await.is_err() { return },
                    None => return,
                },
                () = &mut deadline => return,
                () = tx.closed() => return,
            }
        }
    });
    out
}

/// A download's file name: `weft-PORT-UNIXTIME.pcap`, the port's name reduced to
/// characters safe in a header and a file name.
pub fn capture_file_name(port: &str, unix_seconds: u64) -> String {
    let safe: String = port
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("weft-{safe}-{unix_seconds}.pcap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(capture_file_name("web-1", 7), "weft-web-1-7.pcap");
        assert_eq!(
            capture_file_name("a\"; filename=x\r\n/..", 1),
            "weft-a___filename_x___..-1.pcap"
        );
        assert_eq!(capture_file_name(&"x".repeat(100), 1).len(), 64 + 12);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_stream_ends_at_its_limit_and_frees_its_permit() {
        let pool = Arc::new(Semaphore::new(1));
        let (tx, rx) = mpsc::channel::<u32>(4);
        let p = permit(&pool, "streams", 1).unwrap();
        assert!(
            permit(&pool, "streams", 1).is_err(),
            "the one permit is taken"
        );
        let mut out = bounded(rx, Duration::from_secs(5), p);
        tx.send(1).await.unwrap();
        assert_eq!(out.recv().await, Some(1));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(out.recv().await, None, "closed at the limit");
        assert!(permit(&pool, "streams", 1).is_ok(), "the permit came back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_stream_ends_when_its_reader_goes() {
        let pool = Arc::new(Semaphore::new(1));
        let (tx, rx) = mpsc::channel::<u32>(4);
        let out = bounded(
            rx,
            Duration::from_secs(3600),
            permit(&pool, "streams", 1).unwrap(),
        );
        drop(out);
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(permit(&pool, "streams", 1).is_ok(), "the permit came back");
        assert!(tx.is_closed(), "the source is let go");
    }
}
