//! The checks an API request body meets before the daemon looks at its state: the body read
//! as its request type, then every check that needs neither the lock nor the system. The
//! operations run the same checks first; the fuzz target `api_bodies` drives hostile bodies
//! through [`check_body`].

use super::endpoints::check_connect_fields;
use super::networks::check_create;
use super::validate::{parse_mac, validate_name};
use super::{invalid, Result};
use crate::gateway::publish;
use crate::types::{Connect, CreateNetwork, FdbAdd, ImpairBody, PeerAdd, Publish, Unpublish};

/// Which request a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    CreateNetwork,
    Connect,
    Publish,
    Unpublish,
    FdbAdd,
    PeerAdd,
    Impair,
}

impl Body {
    pub const ALL: [Body; 7] = [
        Body::CreateNetwork,
        Body::Connect,
        Body::Publish,
        Body::Unpublish,
        Body::FdbAdd,
        Body::PeerAdd,
        Body::Impair,
    ];
}

/// Reads `bytes` as the body of `body` and checks what it says on its own.
pub fn check_body(body: Body, bytes: &[u8]) -> Result<()> {
    let json = |e: serde_json::Error| invalid(format!("the request body is not valid: {e}"));
    match body {
        Body::CreateNetwork => {
            let req: CreateNetwork = serde_json::from_slice(bytes).map_err(json)?;
            check_create(&req).map(drop)
        }
        Body::Connect => {
            let req: Connect = serde_json::from_slice(bytes).map_err(json)?;
            check_connect_fields(&req).map(drop)
        }
        Body::Publish => {
            let req: Publish = serde_json::from_slice(bytes).map_err(json)?;
            for spec in &req.specs {
                publish::parse_spec(spec).map_err(|e| invalid(e.0))?;
            }
            for port in &req.publish_all {
                publish::parse_publish_all(port).map_err(|e| invalid(e.0))?;
            }
            Ok(())
        }
        Body::Unpublish => {
            let req: Unpublish = serde_json::from_slice(bytes).map_err(json)?;
            publish::parse_unpublish(&req.spec)
                .map(drop)
                .map_err(|e| invalid(e.0))
        }
        Body::FdbAdd => {
            let req: FdbAdd = serde_json::from_slice(bytes).map_err(json)?;
            parse_mac(req.mac.as_str())?;
            validate_name("endpoint", &req.endpoint)
        }
        Body::PeerAdd => serde_json::from_slice::<PeerAdd>(bytes)
            .map(drop)
            .map_err(json),
        Body::Impair => {
            let req: ImpairBody = serde_json::from_slice(bytes).map_err(json)?;
            super::impair::check_impair(&req, "PORT", 0).map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_with_aliases(n: usize) -> Vec<u8> {
        let aliases: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        serde_json::json!({ "netns": "x", "aliases": aliases })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_connect_takes_as_many_aliases_as_the_cluster_does() {
        assert!(check_body(Body::Connect, &connect_with_aliases(MAX)).is_ok());
        let e = check_body(Body::Connect, &connect_with_aliases(MAX + 1)).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
    }

    const MAX: usize = crate::cluster::spec::MAX_ALIASES;

    #[test]
    fn bodies_that_do_not_read_say_so() {
        for body in Body::ALL {
            let e = check_body(body, b"{\"x\":").unwrap_err().to_string();
            assert!(e.contains("request body is not valid"), "{body:?}: {e}");
        }
        let e = check_body(
            Body::CreateNetwork,
            br#"{"name":"n","subnet":"10.0.0.0/31"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10.0.0.0/31"), "{e}");
    }
}
