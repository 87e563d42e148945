//! Per-interface sysctls (`/proc/sys/net/{ipv4,ipv6}/conf/IFNAME/KEY`) of the calling
//! thread's network namespace: what keeps a veth's host end out of the host's own stack.

use std::io::{self, Write};
use std::path::Path;

use super::{ifname_array, Result, SysError};

/// Where the sysctls are.
const PROC_SYS: &str = "/proc/sys";

/// One per-interface setting: family, key, value, and whether a kernel may lack it.
struct Setting {
    family: &'static str,
    key: &'static str,
    value: &'static str,
    /// A kernel without this key skips it (the setting is hardening on top of another).
    optional: bool,
}

/// What [`make_inert`] sets, in this order.
const INERT: [Setting; 4] = [
    // No link-local address, no DAD or router solicitation, and every IPv6 packet the
    // interface receives is dropped before the stack sees it.
    Setting {
        family: "ipv6",
        key: "disable_ipv6",
        value: "1",
        optional: false,
    },
    // Should IPv6 be turned on again (writing net.ipv6.conf.all.disable_ipv6=0 turns it on
    // on every interface): router advertisements are ignored...
    Setting {
        family: "ipv6",
        key: "accept_ra",
        value: "0",
        optional: false,
    },
    // ... and no address is generated (IN6_ADDR_GEN_MODE_NONE; Linux 4.11).
    Setting {
        family: "ipv6",
        key: "addr_gen_mode",
        value: "1",
        optional: true,
    },
    // Strict reverse-path filtering on an interface without an IPv4 address drops every
    // IPv4 packet and ARP request arriving on it (no route back through it can exist): the
    // host neither answers ARP for its addresses there nor takes packets sent to them.
    Setting {
        family: "ipv4",
        key: "rp_filter",
        value: "1",
        optional: false,
    },
];

/// Makes `ifname` (a veth's host end, a switch port only) inert for the host's own stack:
/// IPv6 disabled, router advertisements ignored and no address generated should IPv6 be
/// enabled on it again, and IPv4 reverse-path filtering strict (see the settings above).
/// Call it before the link goes up, so that it never has a link-local address. weft never
/// puts an IPv4 address on a host end.
///
/// A host without IPv6 skips the IPv6 settings; a kernel without `addr_gen_mode` skips
/// that one. Any other failure is [`SysError::Sysctl`], naming the interface and the key.
pub fn make_inert(ifname: &str) -> Result<()> {
    make_inert_at(Path::new(PROC_SYS), ifname)
}

/// Disables IPv6 on `ifname` (net.ipv6.conf.IFNAME.disable_ipv6 = 1) in the calling thread's
/// namespace, so an interface sends no router solicitations / DAD of its own. Missing IPv6
/// support (no such sysctl) is not an error.
pub fn disable_ipv6(ifname: &str) -> Result<()> {
    write_conf(Path::new(PROC_SYS), ifname, &INERT[0])
}

fn make_inert_at(root: &Path, ifname: &str) -> Result<()> {
    ifname_array(ifname)?;
    INERT
        .iter()
        .try_for_each(|setting| write_conf(root, ifname, setting))
}

/// Writes one setting of `ifname` under `root` (/proc/sys).
fn write_conf(root: &Path, ifname: &str, setting: &Setting) -> Result<()> {
    ifname_array(ifname)?;
    let family = root.join("net").join(setting.family);
    let dir = family.join("conf").join(ifname);
    // Not created if missing (procfs refuses that anyway): a missing key is told apart.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(setting.key))
        .and_then(|mut f| f.write_all(setting.value.as_bytes()));
    match written {
        Ok(()) => Ok(()),
        // No IPv6 on this host (ipv6.disable=1, or not built): nothing to disable.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !family.exists() => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => {
            Err(SysError::NoSuchInterface {
                ifname: ifname.to_owned(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && setting.optional => Ok(()),
        Err(source) => Err(SysError::Sysctl {
            ifname: ifname.to_owned(),
            key: format!("net.{}.conf.{ifname}.{}", setting.family, setting.key),
            value: setting.value,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /proc/sys with the conf directories of `ifname` for `families`, each key an
    /// empty file.
    fn fake_root(tag: &str, ifname: &str, families: &[&str]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("weft-sysctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for s in INERT.iter().filter(|s| families.contains(&s.family)) {
            let dir = root.join("net").join(s.family).join("conf").join(ifname);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(s.key), "").unwrap();
        }
        root
    }

    fn read(root: &Path, family: &str, ifname: &str, key: &str) -> String {
        std::fs::read_to_string(root.join(format!("net/{family}/conf/{ifname}/{key}"))).unwrap()
    }

    #[test]
    fn every_setting_is_written() {
        let root = fake_root("all", "wv1", &["ipv4", "ipv6"]);
        make_inert_at(&root, "wv1").unwrap();
        assert_eq!(read(&root, "ipv6", "wv1", "disable_ipv6"), "1");
        assert_eq!(read(&root, "ipv6", "wv1", "accept_ra"), "0");
        assert_eq!(read(&root, "ipv6", "wv1", "addr_gen_mode"), "1");
        assert_eq!(read(&root, "ipv4", "wv1", "rp_filter"), "1");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_host_without_ipv6_or_addr_gen_mode_skips_them() {
        let root = fake_root("nov6", "wv2", &["ipv4"]);
        make_inert_at(&root, "wv2").unwrap();
        assert_eq!(read(&root, "ipv4", "wv2", "rp_filter"), "1");
        std::fs::remove_dir_all(&root).unwrap();

        let root = fake_root("nogen", "wv3", &["ipv4", "ipv6"]);
        std::fs::remove_file(root.join("net/ipv6/conf/wv3/addr_gen_mode")).unwrap();
        make_inert_at(&root, "wv3").unwrap();
        assert_eq!(read(&root, "ipv6", "wv3", "disable_ipv6"), "1");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_setting_that_cannot_be_written_is_an_error_naming_interface_and_key() {
        let root = fake_root("fail", "wv4", &["ipv4", "ipv6"]);
        // accept_ra is missing, and it is required.
        std::fs::remove_file(root.join("net/ipv6/conf/wv4/accept_ra")).unwrap();
        let e = make_inert_at(&root, "wv4").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, SysError::Sysctl { .. }), "{e:?}");
        assert!(
            msg.contains("interface wv4") && msg.contains("net.ipv6.conf.wv4.accept_ra=0"),
            "{msg}"
        );
        // A key that is a directory cannot be written either.
        std::fs::create_dir(root.join("net/ipv6/conf/wv4/accept_ra")).unwrap();
        let msg = make_inert_at(&root, "wv4").unwrap_err().to_string();
        assert!(msg.contains("net.ipv6.conf.wv4.accept_ra=0"), "{msg}");
        // An interface the namespace does not have.
        assert!(matches!(
            make_inert_at(&root, "wv5"),
            Err(SysError::NoSuchInterface { .. })
        ));
        assert!(matches!(
            make_inert_at(&root, "a/b"),
            Err(SysError::InvalidIfname { .. })
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
