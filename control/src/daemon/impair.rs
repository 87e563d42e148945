//! `weft impair` and `weft link`: a port's impairment and link state, translated between the
//! API's text (`20ms`, `10%`, `10mbit`) and the switch's [`ImpairSpec`], applied to the data
//! plane, and saved in the endpoint's record (a restart applies it again).

use weft_switch::impair::{
    format_percent, format_rate, format_time, parse_percent, parse_rate, parse_time,
    ImpairParseError, ImpairSpec,
};
use weft_switch::PortId;

use super::{invalid, Daemon, Result};
use crate::types::ImpairBody;

/// The spec `body` describes; a seed is drawn from the clock when none is given (and shown
/// in `weft ports`, so a run can be repeated).
pub fn spec_from_body(
    body: &ImpairBody,
    clock_seed: u64,
) -> std::result::Result<ImpairSpec, ImpairParseError> {
    let time = |what, v: &Option<String>| v.as_deref().map(|v| parse_time(what, v)).transpose();
    let pct = |what, v: &Option<String>| v.as_deref().map(|v| parse_percent(what, v)).transpose();
    Ok(ImpairSpec {
        delay: time("--delay", &body.delay)?.unwrap_or_default(),
        jitter: time("--jitter", &body.jitter)?.unwrap_or_default(),
        loss_ppm: pct("--loss", &body.loss)?.unwrap_or(0),
        duplicate_ppm: pct("--duplicate", &body.duplicate)?.unwrap_or(0),
        reorder_ppm: pct("--reorder", &body.reorder)?.unwrap_or(0),
        corrupt_ppm: pct("--corrupt", &body.corrupt)?.unwrap_or(0),
        rate_bps: body
            .rate
            .as_deref()
            .map(parse_rate)
            .transpose()?
            .unwrap_or(0),
        seed: body.seed.unwrap_or(clock_seed),
    })
}

/// How `weft ports` shows `spec`: only what it changes, and its seed.
pub fn body_from_spec(spec: &ImpairSpec) -> ImpairBody {
    let time = |d: std::time::Duration| (!d.is_zero()).then(|| format_time(d));
    let pct = |p: u32| (p > 0).then(|| format_percent(p));
    ImpairBody {
        delay: time(spec.delay),
        jitter: time(spec.jitter),
        loss: pct(spec.loss_ppm),
        duplicate: pct(spec.duplicate_ppm),
        reorder: pct(spec.reorder_ppm),
        corrupt: pct(spec.corrupt_ppm),
        rate: (spec.rate_bps > 0).then(|| format_rate(spec.rate_bps)),
        seed: Some(spec.seed),
    }
}

/// Everything a `weft impair` body must be on its own: its values readable, reordering
/// with a delay to overtake, and something to do. `port` only names the fix.
pub fn check_impair(body: &ImpairBody, port: &str, clock_seed: u64) -> Result<ImpairSpec> {
    let spec = spec_from_body(body, clock_seed).map_err(|e| invalid(e.to_string()))?;
    if spec.reorder_ppm > 0 && spec.delay.is_zero() {
        return Err(invalid(
            "--reorder needs --delay: a reordered frame goes out at once, ahead of the \
             delayed ones (as netem's reorder does); add e.g. --delay 10ms",
        ));
    }
    if spec.is_none() {
        return Err(invalid(format!(
            "nothing to impair: give at least one of --delay, --jitter, --loss, --duplicate, \
             --reorder, --corrupt or --rate (or remove the impairment with weft impair {port} --clear)"
        )));
    }
    Ok(spec)
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Daemon {
    /// `weft impair PORT ...`: replaces the port's impairment; returns it as `weft ports`
    /// shows it. An endpoint's is saved with it (a tunnel port's lasts until a restart).
    pub fn impair(&self, port: &str, body: &ImpairBody) -> Result<ImpairBody> {
        let spec = check_impair(body, port, clock_seed())?;
        let applied = body_from_spec(&spec);
        self.change_shaping(
            port,
            |dp, id| dp.set_impairment(id, Some(spec)),
            |r| r.impair = Some(applied.clone()),
        )?;
        log::info!("impaired port {port}: {}", applied.summary());
        Ok(applied)
    }

    /// `weft impair PORT --clear`.
    pub fn clear_impair(&self, port: &str) -> Result<()> {
        self.change_shaping(
            port,
            |dp, id| dp.set_impairment(id, None),
            |r| r.impair = None,
        )?;
        log::info!("cleared the impairment of port {port}");
        Ok(())
    }

    /// `weft link PORT up|down`.
    pub fn set_link(&self, port: &str, up: bool) -> Result<()> {
        self.change_shaping(port, |dp, id| dp.set_link(id, up), |r| r.link_down = !up)?;
        log::info!("link of port {port} {}", if up { "up" } else { "down" });
        Ok(())
    }

    /// Applies `apply` to the data plane port named `port` and `record` to its endpoint's
    /// record, saved; a save that fails puts the port's impairment and link back.
    fn change_shaping(
        &self,
        port: &str,
        apply: impl FnOnce(
            &crate::dataplane::Dataplane,
            PortId,
        ) -> std::result::Result<(), crate::dataplane::DataplaneError>,
        record: impl FnOnce(&mut super::state::EndpointRecord),
    ) -> Result<()> {
        let mut c = self.lock();
        let id = self.tap_port(&c, port, None)?;
        let before = (self.dataplane.impairment(id), self.dataplane.link_down(id));
        apply(&self.dataplane, id)?;
        let Some(ep) = c.endpoints.get_mut(port) else {
            return Ok(());
        };
        let saved = ep.record.clone();
        record(&mut ep.record);
        if let Err(e) = self.save(&c) {
            if let Some(ep) = c.endpoints.get_mut(port) {
                ep.record = saved;
            }
            let _ = self.dataplane.set_impairment(id, before.0);
            let _ = self.dataplane.set_link(id, !before.1);
            return Err(e);
        }
        Ok(())
    }

    /// Applies a re-attached endpoint's saved impairment and link state again; one that no
    /// longer passes its checks (a hand-edited state file) is dropped with a warning.
    pub(super) fn restore_shaping(&self, c: &super::Control, name: &str) {
        let Some(ep) = c.endpoints.get(name) else {
            return;
        };
        if let Some(body) = &ep.record.impair {
            let applied = check_impair(body, name, clock_seed())
                .and_then(|spec| Ok(self.dataplane.set_impairment(ep.port, Some(spec))?));
            if let Err(e) = applied {
                log::warn!("the saved impairment of {name} is not applied: {e}");
            }
        }
        if ep.record.link_down {
            let _ = self.dataplane.set_link(ep.port, false);
        }
    }

    /// What `weft ports` shows of `id`'s impairment and link.
    pub(super) fn shaping_of(&self, id: PortId) -> (Option<ImpairBody>, bool) {
        (
            self.dataplane.impairment(id).map(|s| body_from_spec(&s)),
            self.dataplane.link_down(id),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_round_trips_through_the_spec() {
        let body = ImpairBody {
            delay: Some("20ms".into()),
            jitter: Some("5ms".into()),
            loss: Some("10%".into()),
            duplicate: Some("1%".into()),
            reorder: Some("25%".into()),
            corrupt: Some("0.1%".into()),
            rate: Some("10mbit".into()),
            seed: Some(7),
        };
        let spec = spec_from_body(&body, 99).unwrap();
        assert_eq!(spec.delay, std::time::Duration::from_millis(20));
        assert_eq!(
            (spec.loss_ppm, spec.corrupt_ppm, spec.seed),
            (100_000, 1_000, 7)
        );
        assert_eq!(body_from_spec(&spec), body);
    }

    #[test]
    fn a_missing_seed_comes_from_the_clock_and_bad_values_name_the_option() {
        let spec = spec_from_body(
            &ImpairBody {
                loss: Some("1%".into()),
                ..Default::default()
            },
            42,
        )
        .unwrap();
        assert_eq!(spec.seed, 42);
        let e = spec_from_body(
            &ImpairBody {
                rate: Some("fast".into()),
                ..Default::default()
            },
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rate") && e.contains("10mbit"), "{e}");
    }
}
