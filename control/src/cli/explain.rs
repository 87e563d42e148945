//! `weft explain FROM TO [PORT/PROTO]`: the daemon's answer, as lines or JSON; exits 0 either
//! way (a blocked path is an answer, not an error).

use anyhow::Result;
use hyper::Method;

use super::args::ExplainArgs;
use crate::api::client::Client;
use crate::types::Explanation;

/// Percent-encodes a query value.
fn q(s: &str) -> String {
    crate::api::client::seg(s)
}

pub async fn explain(client: &Client, json: bool, a: ExplainArgs) -> Result<()> {
    let mut path = format!("/v1/explain?from={}&to={}", q(&a.from), q(&a.to));
    if let Some(p) = &a.port {
        path.push_str(&format!("&port={}", q(p)));
    }
    let e: Explanation = client.call(Method::GET, &path, None::<&()>).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(());
    }
    let port = a
        .port
        .as_deref()
        .map_or(String::new(), |p| format!(" port {p}"));
    println!("{} -> {}{port}", e.from, e.to);
    for s in &e.steps {
        println!("  {:<10}{}", s.check, s.detail);
    }
    println!("{}: {}", e.verdict, e.reason);
    if let Some(fix) = &e.fix {
        println!("fix: {fix}");
    }
    Ok(())
}
