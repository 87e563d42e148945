//! The daemon's state file (`weft_control::daemon::state`): hostile text read as a state
//! document must never panic; a document that reads renders to text that reads back to the
//! same records (networks, endpoints, static entries, peers, removed networks, pending
//! interfaces), and the endpoint records it could not read are kept, by name, in order.
//! The restore checks (`weft_control::daemon::restore_check`) take any document that reads:
//! they refuse it or keep every endpoint record, attached or not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_control::daemon::restore_check::check_restored;
use weft_control::daemon::state::{parse_state, render_state, PersistedState};

fn unreadable_names(s: &PersistedState) -> Vec<Option<String>> {
    s.unreadable_endpoints
        .iter()
        .map(|u| u.name().map(str::to_string))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(state) = parse_state(text) else {
        return;
    };
    let rendered = render_state(&state).expect("a state that was read renders");
    let rendered = std::str::from_utf8(&rendered).expect("JSON is UTF-8");
    let again = parse_state(rendered).expect("a rendered state reads back");
    assert_eq!(again.networks, state.networks);
    assert_eq!(again.endpoints, state.endpoints);
    assert_eq!(again.static_fdb, state.static_fdb);
    assert_eq!(again.peers, state.peers);
    assert_eq!(again.removed_networks, state.removed_networks);
    assert_eq!(again.pending_endpoints, state.pending_endpoints);
    assert_eq!(unreadable_names(&again), unreadable_names(&state));
    let records = state.endpoints.len() + state.unreadable_endpoints.len();
    if let Ok(checked) = check_restored(std::path::Path::new("state.json"), state) {
        let kept = checked.endpoints.len() + checked.unreadable_endpoints.len();
        assert_eq!(kept, records, "the restore checks lost an endpoint record");
    }
});
