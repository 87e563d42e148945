//! `weft cni install`: the arguments handed to the CNI plugin's installer.

use std::path::Path;

use anyhow::Result;

use super::args::{CniCommand, KindArg, DEFAULT_SOCKET};
use crate::cni::install::{install, InstallOptions};

/// `weft cni ...`: prints what was written.
pub fn cni(socket: &Path, command: CniCommand) -> Result<()> {
    let CniCommand::Install(a) = command;
    let opts = InstallOptions {
        bin_dir: a.bin_dir,
        conf_dir: a.conf_dir,
        network: a.network,
        socket: (socket != Path::new(DEFAULT_SOCKET)).then(|| socket.to_owned()),
        subnet: a.subnet,
        gateway: a.gateway,
        driver: a.driver,
        icc: a.icc,
        internal: a.internal,
        nat: a.nat,
        mtu: a.mtu,
        vni: a.vni,
        kind: a.kind.map(|k| {
            match k {
                KindArg::Tap => "tap",
                KindArg::Veth => "veth",
            }
            .to_string()
        }),
    };
    let done = install(&opts)?;
    println!("plugin   {}", done.plugin.display());
    println!("network  {}", done.conflist.display());
    Ok(())
}
