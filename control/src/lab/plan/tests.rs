//! The diff's unit tests: from files to steps, without I/O.

use super::*;
use crate::lab::file::parse;

const BASE: &str = "\
name: t
networks:
  front: {subnet: 10.101.0.0/24}
  back: {subnet: 10.101.1.0/24}
nodes:
  a:
    links: [{network: front}]
  r:
    links: [{network: front}, {network: back}]
    exec: [sysctl -w net.ipv4.ip_forward=1]
";

fn parts(text: &str) -> Parts {
    desired(&parse(text).unwrap())
}

#[test]
fn from_nothing_everything_is_added_exec_last() {
    let steps = diff(&Parts::default(), &parts(BASE));
    assert_eq!(
        steps,
        vec![
            Step::AddNetwork("back".into()),
            Step::AddNetwork("front".into()),
            Step::AddNode("a".into()),
            Step::AddNode("r".into()),
            Step::AddLink("t-a-front".into()),
            Step::AddLink("t-r-back".into()),
            Step::AddLink("t-r-front".into()),
            Step::Exec("r".into()),
        ]
    );
}

#[test]
fn the_same_file_twice_is_no_step() {
    assert!(diff(&parts(BASE), &parts(BASE)).is_empty());
}

#[test]
fn a_changed_network_takes_its_links_along_only() {
    let changed = BASE.replace(
        "back: {subnet: 10.101.1.0/24}",
        "back: {subnet: 10.101.1.0/24, icc: false}",
    );
    let steps = diff(&parts(BASE), &parts(&changed));
    assert_eq!(
        steps,
        vec![
            Step::RemoveLink("t-r-back".into()),
            Step::RemoveNetwork("back".into()),
            Step::AddNetwork("back".into()),
            Step::AddLink("t-r-back".into()),
        ]
    );
}

#[test]
fn a_removed_node_goes_with_its_links_and_a_new_impairment_is_set_in_place() {
    let text = BASE.replace("  a:\n    links: [{network: front}]\n", "");
    let text = text.replace(
        "{network: back}]",
        "{network: back, impair: {delay: 20ms}}]",
    );
    let steps = diff(&parts(BASE), &parts(&text));
    assert_eq!(
        steps,
        vec![
            Step::RemoveLink("t-a-front".into()),
            Step::RemoveNode("a".into()),
            Step::Impair("t-r-back".into()),
        ]
    );
}

#[test]
fn changed_commands_run_again() {
    let text = BASE.replace("ip_forward=1]", "ip_forward=0]");
    assert_eq!(
        diff(&parts(BASE), &parts(&text)),
        vec![Step::Exec("r".into())]
    );
}

const HOSTS: &str = "\
name: t
underlay: {subnet: 10.106.0.0/24}
hosts: {h1: {}, h2: {}}
networks:
  ov: {subnet: 10.106.10.0/24, driver: overlay}
nodes:
  a: {host: h1, links: [{network: ov}]}
  b: {host: h2, links: [{network: ov}]}
";

#[test]
fn a_dead_host_is_made_again_with_its_nodes_and_the_overlay_stays() {
    let p = parts(HOSTS);
    let steps = diff_dead(&p, &p, &["h2".to_string()]);
    assert_eq!(
        steps,
        vec![
            Step::RemoveLink("t-b-ov".into()),
            Step::RemoveNode("b".into()),
            Step::RemoveHost("h2".into()),
            Step::AddHost("h2".into()),
            Step::AddNode("b".into()),
            Step::AddLink("t-b-ov".into()),
        ]
    );
}
