//! API request bodies (`weft_control::daemon::bodies::check_body`): a hostile body for any
//! request is read and checked without a panic; a refusal always says something.
//!
//! Input: `[request, body...]`: the first byte picks the request (network create, connect,
//! publish, unpublish, static FDB entry, peer, impairment), the rest is its body. An
//! impairment that passes its checks then schedules frames: each leaves at or after its
//! arrival, and a corrupted bit lies inside the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;

use weft_control::daemon::bodies::{check_body, Body};
use weft_control::daemon::impair::check_impair;
use weft_control::types::ImpairBody;
use weft_switch::impair::{Fate, Impairment};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let request = Body::ALL[usize::from(pick) % Body::ALL.len()];
    if let Err(e) = check_body(request, body) {
        assert!(!e.to_string().is_empty(), "{request:?}: an empty refusal");
        return;
    }
    if request == Body::Impair {
        schedule(body);
    }
});

/// Runs frames of lengths taken from the body through the impairment it describes.
fn schedule(body: &[u8]) {
    let Ok(req) = serde_json::from_slice::<ImpairBody>(body) else {
        return;
    };
    let Ok(spec) = check_impair(&req, "p", 1) else {
        return;
    };
    let mut imp = Impairment::new(spec);
    let mut now = Duration::ZERO;
    for (i, &b) in body.iter().enumerate().take(256) {
        let len = usize::from(b) * 60 + i;
        if let Fate::Send { at, corrupt_bit, .. } = imp.on_frame(now, len) {
            assert!(at >= now, "a frame would leave before it came");
            if let Some(bit) = corrupt_bit {
                assert!(bit < len * 8, "bit {bit} outside a {len}-octet frame");
            }
        }
        now += Duration::from_micros(u64::from(b) * 7);
    }
}
