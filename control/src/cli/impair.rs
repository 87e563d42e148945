//! `weft impair PORT ...` and `weft link PORT up|down`: a port's impairment and link state.

use anyhow::Result;

use super::args::{ImpairArgs, LinkState};
use super::render::print_json;
use crate::api::client::Client;
use crate::types::ImpairBody;

pub async fn impair(client: &Client, json: bool, a: ImpairArgs) -> Result<()> {
    if a.clear {
        client.clear_impair(&a.port).await?;
        println!("{}: impairment cleared", a.port);
        return Ok(());
    }
    let body = ImpairBody {
        delay: a.delay,
        jitter: a.jitter,
        loss: a.loss,
        duplicate: a.duplicate,
        reorder: a.reorder,
        corrupt: a.corrupt,
        rate: a.rate,
        seed: a.seed,
    };
    let applied = client.impair(&a.port, &body).await?;
    if json {
        return print_json(&applied);
    }
    println!("{}: {}", a.port, applied.summary());
    Ok(())
}

pub async fn link(client: &Client, port: &str, state: LinkState) -> Result<()> {
    let up = matches!(state, LinkState::Up);
    client.set_link(port, up).await?;
    println!("{port}: link {}", if up { "up" } else { "down" });
    Ok(())
}
