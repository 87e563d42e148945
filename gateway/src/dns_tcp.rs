//! DNS over TCP (RFC 7766), one connection's framing: every message is preceded by its
//! two-octet length (RFC 1035 §4.2.2). Bytes go in as they arrive; complete queries come
//! out (several in one read when the client pipelines, one split over reads once whole).
//! Queries are answered one at a time, in order (RFC 7766 §6.2.1.1 allows any order; one
//! at a time keeps it simple): the next query comes out once the answer to the previous
//! one has gone into the send buffer; an answer that does not fit yet waits.

use std::time::Duration;

use weft_switch::Timestamp;

/// Bytes a connection buffers: one message of up to 64 KiB plus its length.
pub const DNS_TCP_BUFFER: usize = 66 * 1024;
/// A connection with nothing to do is closed after this (RFC 7766 §6.2.3 suggests seconds).
pub const DNS_IDLE: Duration = Duration::from_secs(10);
/// ... and one whose forwarded answer has not come back (longer than any forward takes).
pub const DNS_WAIT_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no query waits for an answer")]
    NotWaiting,
    #[error("an answer must be 1 to 65535 octets")]
    BadLength,
}

/// One DNS-over-TCP connection's state.
#[derive(Debug, Clone)]
pub struct DnsStream {
    inbuf: Vec<u8>,
    /// A query is out (being answered), or its answer waits in `pending`.
    waiting: bool,
    /// The answer (with its length prefix) the send buffer had no room for yet.
    pending: Option<Vec<u8>>,
    last_active: Timestamp,
}

impl DnsStream {
    pub fn new(now: Timestamp) -> DnsStream {
        DnsStream {
            inbuf: Vec::new(),
            waiting: false,
            pending: None,
            last_active: now,
        }
    }

    /// How many more received bytes the connection takes now.
    pub fn room(&self) -> usize {
        DNS_TCP_BUFFER.saturating_sub(self.inbuf.len())
    }

    /// Takes received bytes (as many as there is room for); returns how many it took.
    pub fn receive(&mut self, bytes: &[u8], now: Timestamp) -> usize {
        let n = bytes.len().min(self.room());
        self.inbuf.extend_from_slice(&bytes[..n]);
        if n > 0 {
            self.last_active = now;
        }
        n
    }

    /// The next complete query, unless the previous one is still being answered.
    pub fn next_query(&mut self) -> Option<Vec<u8>> {
        if self.waiting || self.inbuf.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.inbuf[0], self.inbuf[1]]));
        if self.inbuf.len() < 2 + len {
            return None;
        }
        let query = self.inbuf[2..2 + len].to_vec();
        self.inbuf.drain(..2 + len);
        self.waiting = true;
        Some(query)
    }

    /// Whether a query is being answered (its answer may be pending).
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// The answer to the query out. An answer that cannot be framed ends the wait with an
    /// error (close the connection).
    pub fn answer(&mut self, answer: &[u8], now: Timestamp) -> Result<(), AnswerError> {
        if !self.waiting || self.pending.is_some() {
            return Err(AnswerError::NotWaiting);
        }
        self.last_active = now;
        let Ok(len) = u16::try_from(answer.len()) else {
            self.waiting = false;
            return Err(AnswerError::BadLength);
        };
        if len == 0 {
            self.waiting = false;
            return Err(AnswerError::BadLength);
        }
        let mut message = Vec::with_capacity(2 + answer.len());
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(answer);
        self.pending = Some(message);
        Ok(())
    }

    /// The pending answer, whole, if `room` octets of send buffer take it; the next query
    /// may then come out.
    pub fn transmit(&mut self, room: usize, now: Timestamp) -> Option<Vec<u8>> {
        if self.pending.as_ref()?.len() > room {
            return None;
        }
        self.waiting = false;
        self.last_active = now;
        self.pending.take()
    }

    /// Whether to close the connection (RFC 7766 §6.2.3): idle for [`DNS_IDLE`], or waiting
    /// for an answer that never came for [`DNS_WAIT_MAX`].
    pub fn timed_out(&self, now: Timestamp) -> bool {
        let idle = now.saturating_duration_since(self.last_active);
        (!self.waiting && idle > DNS_IDLE) || idle > DNS_WAIT_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut v = (message.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(message);
        v
    }

    const T0: Timestamp = Timestamp::ZERO;

    /// Answers the query out and sends the answer (enough room).
    fn answer_and_send(s: &mut DnsStream, answer: &[u8]) -> Vec<u8> {
        s.answer(answer, T0).unwrap();
        s.transmit(usize::MAX, T0).unwrap()
    }

    #[test]
    fn two_pipelined_queries_in_one_read_are_answered_in_order() {
        let mut s = DnsStream::new(T0);
        let mut read = framed(b"query one");
        read.extend(framed(b"query two"));
        assert_eq!(s.receive(&read, T0), read.len());
        assert_eq!(s.next_query().as_deref(), Some(&b"query one"[..]));
        assert_eq!(s.next_query(), None, "one at a time");
        assert_eq!(
            answer_and_send(&mut s, b"answer one"),
            framed(b"answer one")
        );
        assert_eq!(s.next_query().as_deref(), Some(&b"query two"[..]));
        assert_eq!(
            answer_and_send(&mut s, b"answer two"),
            framed(b"answer two")
        );
        assert_eq!(s.next_query(), None);
        assert!(!s.is_waiting());
    }

    #[test]
    fn a_query_split_over_three_reads_comes_out_once_whole() {
        let mut s = DnsStream::new(T0);
        let bytes = framed(b"a query split in three");
        s.receive(&bytes[..1], T0);
        assert_eq!(s.next_query(), None, "half a length");
        let last = bytes.len() - 1;
        s.receive(&bytes[1..last], T0);
        assert_eq!(s.next_query(), None, "all but the last octet");
        s.receive(&bytes[last..], T0);
        assert_eq!(
            s.next_query().as_deref(),
            Some(&b"a query split in three"[..])
        );
    }

    #[test]
    fn an_answer_that_does_not_fit_waits_and_the_next_query_with_it() {
        let mut s = DnsStream::new(T0);
        let mut read = framed(b"q1");
        read.extend(framed(b"q2"));
        s.receive(&read, T0);
        assert_eq!(s.next_query().as_deref(), Some(&b"q1"[..]));
        s.answer(b"a long answer", T0).unwrap();
        assert_eq!(s.transmit(14, T0), None, "15 octets framed, 14 of room");
        assert_eq!(
            s.next_query(),
            None,
            "the next query waits behind the answer"
        );
        assert_eq!(s.answer(b"another", T0), Err(AnswerError::NotWaiting));
        assert_eq!(s.transmit(15, T0), Some(framed(b"a long answer")));
        assert_eq!(s.transmit(100, T0), None, "sent once");
        assert_eq!(s.next_query().as_deref(), Some(&b"q2"[..]));
    }

    #[test]
    fn bad_answers_and_a_full_buffer() {
        let mut s = DnsStream::new(T0);
        assert_eq!(s.answer(b"x", T0), Err(AnswerError::NotWaiting));
        s.receive(&framed(b"q"), T0);
        s.next_query().unwrap();
        assert_eq!(s.answer(b"", T0), Err(AnswerError::BadLength));
        assert!(!s.is_waiting());
        let big = vec![0u8; DNS_TCP_BUFFER + 10];
        let mut s = DnsStream::new(T0);
        assert_eq!(s.receive(&big, T0), DNS_TCP_BUFFER);
        assert_eq!(s.room(), 0);
    }

    #[test]
    fn idle_and_stuck_connections_time_out() {
        let ms = Timestamp::from_millis;
        let mut s = DnsStream::new(T0);
        assert!(!s.timed_out(ms(10_000)));
        assert!(s.timed_out(ms(10_001)));
        s.receive(&framed(b"q"), ms(10_000));
        s.next_query().unwrap();
        assert!(!s.timed_out(ms(40_000)), "waiting for an answer");
        assert!(s.timed_out(ms(40_001)));
    }

    proptest::proptest! {
        /// Arbitrary bytes in arbitrary reads never panic, and the queries that come out are
        /// exactly the framed messages at the front of the stream.
        #[test]
        fn arbitrary_streams_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..6),
        ) {
            let mut s = DnsStream::new(T0);
            let mut cuts = cuts;
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut at = 0;
            let mut out = Vec::new();
            for cut in cuts {
                let cut = cut.min(bytes.len()).max(at);
                s.receive(&bytes[at..cut], T0);
                at = cut;
                while let Some(q) = s.next_query() {
                    out.extend(framed(&q));
                    let _ = s.answer(&q, T0);
                    let _ = s.transmit(usize::MAX, T0);
                }
            }
            proptest::prop_assert_eq!(&out[..], &bytes[..out.len()]);
        }
    }
}
