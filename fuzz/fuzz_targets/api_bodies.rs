//! API request bodies (`weft_control::daemon::bodies::check_body`): a hostile body for any
//! request is read and checked without a panic; a refusal always says something.
//!
//! Input: `[request, body...]`: the first byte picks the request (network create, connect,
//! publish, unpublish, static FDB entry, peer), the rest is its body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_control::daemon::bodies::{check_body, Body};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let request = Body::ALL[usize::from(pick) % Body::ALL.len()];
    if let Err(e) = check_body(request, body) {
        assert!(!e.to_string().is_empty(), "{request:?}: an empty refusal");
    }
});
