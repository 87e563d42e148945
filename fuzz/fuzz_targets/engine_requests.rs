//! What container engines send weft: Docker's driver requests (`CreateNetwork` with its
//! `-o` options, the `-p` mappings of `Join`), and a CNI network configuration, translated
//! into weft's requests and put through the API's checks, without a panic; a refusal always
//! says something.
//!
//! Input: `[kind, json...]`: the first byte picks Docker's `CreateNetwork`, Docker's
//! endpoint options (port maps) or a CNI configuration; the rest is its JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_control::cni::config::NetConf;
use weft_control::daemon::bodies::{check_body, Body};
use weft_control::docker::{options, protocol};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, json)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => docker_network(json),
        1 => docker_ports(json),
        _ => cni_config(json),
    }
});

fn docker_network(json: &[u8]) {
    let Ok(req) = serde_json::from_slice::<protocol::CreateNetwork>(json) else {
        return;
    };
    match options::network_request(&req, "n") {
        Ok(create) => {
            let body = serde_json::to_vec(&create).expect("a request serializes");
            if let Err(e) = check_body(Body::CreateNetwork, &body) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(!e.0.is_empty(), "an empty refusal"),
    }
}

fn docker_ports(json: &[u8]) {
    let Ok(opts) = serde_json::from_slice(json) else {
        return;
    };
    let Some(bindings) = options::port_bindings(Some(&opts)) else {
        return;
    };
    match options::publish_specs(&bindings) {
        Ok((specs, publish_all)) => {
            let body = serde_json::json!({"specs": specs, "publish_all": publish_all});
            let body = serde_json::to_vec(&body).expect("serializes");
            if let Err(e) = check_body(Body::Publish, &body) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(!e.0.is_empty(), "an empty refusal"),
    }
}

fn cni_config(json: &[u8]) {
    let Ok((conf, _version)) = NetConf::parse(json) else {
        return;
    };
    let _ = conf.network();
    let _ = conf.port_kind();
    let _ = conf.gc_valid();
    if let Ok(Some(create)) = conf.create_request() {
        let body = serde_json::to_vec(&create).expect("a request serializes");
        let _ = check_body(Body::CreateNetwork, &body);
    }
    for m in &conf.runtime_config.port_mappings {
        if let Ok(spec) = m.to_spec() {
            let body = serde_json::to_vec(&serde_json::json!({"specs": [spec]})).unwrap();
            let _ = check_body(Body::Publish, &body);
        }
    }
}
