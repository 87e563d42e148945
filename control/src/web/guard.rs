//! What every request to the web view passes: the Host header must name the listener by
//! address or as `localhost` (a hostile page that rebinds its own DNS name to 127.0.0.1
//! sends its name), and a browser's request must come from the page itself
//! (`Sec-Fetch-Site`); every answer carries headers that keep other origins out.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Why a request was refused: the status and a message saying what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

/// Decides whether a request for `path` with these headers is served. The page itself (its
/// fixed, embedded files) may be opened from a link on another site; what shows the
/// daemon's state (`/api/...`) is served to the page itself only.
pub fn check(path: &str, host: Option<&str>, fetch_site: Option<&str>) -> Result<(), Refusal> {
    if !host.is_some_and(host_allowed) {
        return Err(Refusal {
            status: StatusCode::MISDIRECTED_REQUEST,
            message: "weft's web view answers only requests addressed to it by IP address or as localhost (http://127.0.0.1:PORT/): other names are refused, so that a page cannot rebind its own name to this address",
        });
    }
    if !path.starts_with("/api/") {
        return Ok(());
    }
    match fetch_site {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: "weft's web view serves its own page only, not requests from other sites; open it directly",
        }),
    }
}

/// A Host header naming an IP address or `localhost`, with an optional port.
fn host_allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if !(after.is_empty() || port_ok(after.strip_prefix(':'))) {
            return false;
        }
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port_ok(Some(port)) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn port_ok(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The headers every answer carries: no framing, no sniffing, no loading by other origins,
/// scripts and styles from this page only, nothing cached.
const HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// The middleware: [`check`], then the answer with [`HEADERS`].
pub async fn guard(req: Request, next: Next) -> Response {
    let verdict = {
        let text = |name: HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
        check(
            req.uri().path(),
            text(header::HOST),
            text(HeaderName::from_static("sec-fetch-site")),
        )
    };
    let mut response = match verdict {
        Ok(()) => next.run(req).await,
        Err(r) => (r.status, format!("{}\n", r.message)).into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_localhost_pass() {
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::1]",
            "10.130.0.5:80",
        ] {
            assert_eq!(check("/api/ports", Some(host), None), Ok(()), "{host}");
        }
    }

    #[test]
    fn other_names_are_refused_as_rebinding() {
        for host in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1.nip.io:8080",
            "localhost.evil.example",
            "[::1",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:8080:1",
            "",
        ] {
            let r = check("/", Some(host), None).unwrap_err();
            assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        }
        assert!(check("/", None, None).is_err(), "a request without Host");
    }

    #[test]
    fn only_the_page_itself_and_typed_addresses_pass_the_fetch_check() {
        let host = Some("127.0.0.1:8080");
        assert_eq!(check("/api/events", host, Some("same-origin")), Ok(()));
        assert_eq!(check("/api/events", host, Some("none")), Ok(()));
        for site in ["cross-site", "same-site", "anything"] {
            let r = check("/api/ports/a/capture", host, Some(site)).unwrap_err();
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{site}");
            // A link from another site may open the page (its fixed files), nothing more.
            for path in ["/", "/app.js", "/style.css"] {
                assert_eq!(check(path, host, Some(site)), Ok(()), "{path} {site}");
            }
        }
    }
}
