//! Impairment of the frames leaving toward a port (what `netem` does in the kernel, for
//! kernels and CI machines without it): delay with jitter, loss, duplication, reordering,
//! corruption and a rate limit. A pure scheduler: the caller passes the time in and gets the
//! fate of each frame (drop it, or send it, perhaps twice, perhaps with a flipped bit, at a
//! given time); the adapter holds the frames until then. Deterministic for a seed.
//!
//! Time is a [`Duration`] since any origin the caller keeps (microseconds matter: a 1500-octet
//! frame takes 1.2 ms at 10 Mbit/s, finer than [`crate::Timestamp`]'s milliseconds).

use std::time::Duration;

/// Parts per million: probabilities without floating point on the hot path.
pub const PPM: u32 = 1_000_000;

/// The most a rate-limited port may hold back before it drops (like a qdisc's limit).
pub const MAX_BACKLOG: Duration = Duration::from_secs(1);

/// What to do to the frames leaving toward one port (`weft impair PORT ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImpairSpec {
    /// Added to every frame's departure (`--delay`).
    pub delay: Duration,
    /// Each frame's delay is `delay` ± up to `jitter`, uniformly (never below zero).
    pub jitter: Duration,
    /// Frames dropped, in parts per million (`--loss`).
    pub loss_ppm: u32,
    /// Frames sent twice, in parts per million (`--duplicate`).
    pub duplicate_ppm: u32,
    /// A reordered frame goes out at once, ahead of the delayed ones before it (netem's
    /// `reorder`: it needs a delay to reorder against).
    pub reorder_ppm: u32,
    /// Frames with one bit flipped, in parts per million (`--corrupt`).
    pub corrupt_ppm: u32,
    /// Bits per second; 0: no limit (`--rate`).
    pub rate_bps: u64,
    /// The random sequence's seed (`--seed`): the same seed, the same fates.
    pub seed: u64,
}

impl ImpairSpec {
    /// Whether the spec changes nothing (the port then needs no scheduler at all).
    pub fn is_none(&self) -> bool {
        let nothing = ImpairSpec {
            seed: self.seed,
            ..ImpairSpec::default()
        };
        *self == nothing
    }
}

/// Why an impaired frame was not sent (counted by reason as drops are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImpairDrop {
    /// `--loss`.
    Loss,
    /// `--rate`: more than [`MAX_BACKLOG`] is waiting.
    Backlog,
}

/// What becomes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Not sent, and why.
    Drop(ImpairDrop),
    /// Sent.
    Send {
        /// When it leaves (not before `now`).
        at: Duration,
        /// A second copy leaves at the same time (`--duplicate`).
        duplicate: bool,
        /// Flip this bit of the frame (octet index × 8 + bit) before sending (`--corrupt`).
        corrupt_bit: Option<usize>,
    },
}

/// One port's impairment: its spec, its random state and its rate shaper.
#[derive(Debug, Clone)]
pub struct Impairment {
    spec: ImpairSpec,
    rng: SplitMix64,
    /// When the rate-limited link is free again.
    link_free: Duration,
}

impl Impairment {
    /// A scheduler for `spec`, its random sequence started from `spec.seed`.
    pub fn new(spec: ImpairSpec) -> Impairment {
        Impairment {
            spec,
            rng: SplitMix64(spec.seed),
            link_free: Duration::ZERO,
        }
    }

    /// What it does.
    pub fn spec(&self) -> &ImpairSpec {
        &self.spec
    }

    /// The fate of a frame of `len` octets leaving at `now`.
    pub fn on_frame(&mut self, now: Duration, len: usize) -> Fate {
        let s = self.spec;
        if self.chance(s.loss_ppm) {
            return Fate::Drop(ImpairDrop::Loss);
        }
        let mut at = now;
        if s.rate_bps > 0 {
            let start = self.link_free.max(now);
            if start.saturating_sub(now) > MAX_BACKLOG {
                return Fate::Drop(ImpairDrop::Backlog);
            }
            let bits = (len as u128) * 8;
            let nanos = bits * 1_000_000_000 / u128::from(s.rate_bps);
            let serialize = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            let done = start.saturating_add(serialize);
            self.link_free = done;
            at = done;
        }
        if !self.chance(s.reorder_ppm) {
            at = at.saturating_add(self.delay());
        }
        let duplicate = self.chance(s.duplicate_ppm);
        let corrupt_bit = (len > 0 && self.chance(s.corrupt_ppm))
            .then(|| (self.rng.next() % (len as u64).saturating_mul(8)) as usize);
        Fate::Send {
            at,
            duplicate,
            corrupt_bit,
        }
    }

    /// This frame's delay: `delay` ± a uniform share of `jitter`, never negative.
    fn delay(&mut self) -> Duration {
        let s = self.spec;
        let jitter = u64::try_from(s.jitter.as_micros()).unwrap_or(u64::MAX);
        if jitter == 0 {
            return s.delay;
        }
        let offset = self.rng.next() % jitter.saturating_mul(2).saturating_add(1);
        let base = u64::try_from(s.delay.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(base.saturating_add(offset).saturating_sub(jitter))
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.rng.next() % u64::from(PPM)) < u64::from(ppm)
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose sequence for a seed is
/// fixed here, so a lab's `--seed` gives the same drops in every weft version; no crate's
/// generator promises that across its versions.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Why a spec given on the command line cannot be used, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImpairParseError {
    /// The value as given, for which option, and how to write one.
    #[error("invalid {what} {value:?}: {fix}")]
    Invalid {
        /// The option, e.g. `--delay`.
        what: &'static str,
        /// What was given.
        value: String,
        /// How to write one.
        fix: &'static str,
    },
}

fn invalid(what: &'static str, value: &str, fix: &'static str) -> ImpairParseError {
    ImpairParseError::Invalid {
        what,
        value: value.to_string(),
        fix,
    }
}

/// A time like `20ms`, `1.5s`, `300us` (`tc`'s units); at most 60 s.
pub fn parse_time(what: &'static str, s: &str) -> Result<Duration, ImpairParseError> {
    const FIX: &str = "write a time like 20ms, 1.5s or 300us (at most 60s)";
    let (num, unit) = split_unit(s);
    let micros_per = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return Err(invalid(what, s, FIX)),
    };
    let v: f64 = num.parse().map_err(|_| invalid(what, s, FIX))?;
    let micros = v * micros_per;
    if !micros.is_finite() || !(0.0..=60e6).contains(&micros) {
        return Err(invalid(what, s, FIX));
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

/// A percentage like `10%` or `0.5%` (the `%` may be left out), in parts per million.
pub fn parse_percent(what: &'static str, s: &str) -> Result<u32, ImpairParseError> {
    const FIX: &str = "write a percentage from 0% to 100%, like 10% or 0.5%";
    let v: f64 = s
        .strip_suffix('%')
        .unwrap_or(s)
        .parse()
        .map_err(|_| invalid(what, s, FIX))?;
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        return Err(invalid(what, s, FIX));
    }
    Ok((v * f64::from(PPM) / 100.0).round() as u32)
}

/// A rate like `10mbit`, `512kbit`, `1gbit` or `64000bit` (`tc`'s units: bits per second).
pub fn parse_rate(s: &str) -> Result<u64, ImpairParseError> {
    const FIX: &str = "write a rate like 10mbit, 512kbit or 1gbit (at least 8kbit)";
    let (num, unit) = split_unit(s);
    let per = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(invalid("--rate", s, FIX)),
    };
    let v: f64 = num.parse().map_err(|_| invalid("--rate", s, FIX))?;
    let bps = v * per;
    if !bps.is_finite() || !(8e3..=1e12).contains(&bps) {
        return Err(invalid("--rate", s, FIX));
    }
    Ok(bps.round() as u64)
}

/// A time as [`parse_time`] reads it back: `20ms`, `1.5s`, `300us`.
pub fn format_time(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 1_000_000 && us.is_multiple_of(1_000) {
        trim(us as f64 / 1e6, "s")
    } else if us >= 1_000 {
        trim(us as f64 / 1e3, "ms")
    } else {
        format!("{us}us")
    }
}

/// Parts per million as [`parse_percent`] reads them back: `10%`, `0.5%`.
pub fn format_percent(ppm: u32) -> String {
    trim(f64::from(ppm) * 100.0 / f64::from(PPM), "%")
}

/// Bits per second as [`parse_rate`] reads them back: `10mbit`, `512kbit`.
pub fn format_rate(bps: u64) -> String {
    let (div, unit) = match bps {
        b if b >= 1_000_000_000 => (1e9, "gbit"),
        b if b >= 1_000_000 => (1e6, "mbit"),
        b if b >= 1_000 => (1e3, "kbit"),
        _ => (1.0, "bit"),
    };
    trim(bps as f64 / div, unit)
}

/// `v` with up to four decimals and no trailing zeros, then `unit`.
fn trim(v: f64, unit: &str) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

fn split_unit(s: &str) -> (&str, &str) {
    let i = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(i)
}

#[cfg(test)]
mod tests;
