//! A node restarted at a new address with its old name, before anyone noticed it went
//! down, is followed by every view; two live nodes with one name still end with one.

mod harness;

use harness::SerfCluster;
use serf_proto::serf::{Config, MemberStatus, SerfState};
use std::time::Duration;

/// Go's vote asked the views, which all still held the crashed process alive, so the new
/// one lost and shut itself down; every view then kept the name failed at the dead
/// address. Now the old claimant must answer the vote itself to win it.
#[test]
fn a_serf_node_back_at_a_new_address_before_it_was_failed_is_followed_by_every_view() {
    let config = Config::default();
    let mut c = SerfCluster::converged(5, 9, &config);
    c.crash(4);
    c.run_for(Duration::from_secs(1));
    let moved = c.add("node-4", config.clone());
    c.join(moved, 0);
    let new_addr = c.hosts[moved].addr;
    // The old address is failed (~5 s), forgotten by the memberlist layer after
    // gossip_to_the_dead_time (30 s), then the new one is taken at the next push-pull.
    c.run_until_cond(Duration::from_secs(120), |c| {
        (0..4).all(|i| {
            c.hosts[i]
                .node
                .member("node-4")
                .is_some_and(|m| (m.status, m.addr) == (MemberStatus::Alive, new_addr))
        })
    });
    assert_eq!(c.hosts[moved].node.state(), SerfState::Alive);
    for i in 0..4 {
        let m = c.hosts[i].node.member("node-4").unwrap();
        assert_eq!(
            (m.status, m.addr),
            (MemberStatus::Alive, new_addr),
            "view of node-{i}"
        );
    }
}

/// Two live processes with one name: the vote still removes the newcomer, since the
/// holder answers it.
#[test]
fn a_second_live_node_with_a_taken_name_loses_the_vote() {
    let config = Config::default();
    let mut c = SerfCluster::converged(5, 13, &config);
    let dup = c.add("node-4", config.clone());
    c.join(dup, 0);
    c.run_for(Duration::from_secs(20));
    assert_eq!(c.hosts[dup].node.state(), SerfState::Shutdown);
    assert_eq!(c.hosts[4].node.state(), SerfState::Alive);
    let old = c.hosts[4].addr;
    for i in 0..4 {
        let m = c.hosts[i].node.member("node-4").unwrap();
        assert_eq!(
            (m.status, m.addr),
            (MemberStatus::Alive, old),
            "view of node-{i}"
        );
    }
}
