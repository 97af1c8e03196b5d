//! Key rotation during a run (issue 11, item 5): `install_key`, `use_key` and
//! `remove_key` actions run Serf's keyring queries across the cluster.

use serf_proto::Instant;
use sim::node::scenario_key;
use sim::{MemberlistNode, Scenario, SerfNode, Simulation};

const ROTATION: &str = r#"
name = "rotate"
layer = "serf"
nodes = 20
duration = "200s"
[config]
encryption = true
[[actions]]
at = "40s"
kind = "install_key"
nodes = [0]
key = 2
[[actions]]
at = "60s"
kind = "use_key"
nodes = [3]
key = 2
[[actions]]
at = "80s"
kind = "remove_key"
nodes = [0]
key = 1
[[actions]]
at = "100s"
kind = "restart"
nodes = [5]
downtime = "5s"
keep_state = true
[[expect]]
kind = "converged"
"#;

/// Install, use, remove: every node ends with key 2 alone, the cluster stays whole, and a
/// node restarted with its state afterwards comes back with the rotated keyring (its
/// keyring file) and rejoins.
#[test]
fn a_key_rotation_reaches_every_node_and_a_restart_keeps_the_new_key() {
    let s = Scenario::from_toml(ROTATION).unwrap();
    let mut sim = Simulation::<SerfNode>::new(&s, 1).unwrap();
    assert!(sim.run_until(Instant::from_secs(200), &mut |_| {}));
    for i in 0..20 {
        let ring = sim.node(i).unwrap().inner().memberlist().keyring().unwrap();
        assert_eq!(ring.keys(), [scenario_key(2)], "node {i}");
    }
    let r = sim.run(&mut |_| {});
    assert!(r.passed, "{}", r.table());
    assert_eq!(r.key_operations.len(), 3);
    for k in &r.key_operations {
        assert!(k.complete(), "{k:?}");
        assert_eq!((k.answered, k.nodes), (20, 20));
    }
    assert!(r.table().contains("key Remove 1 from node 0"));
}

/// Key actions are refused where they cannot run: without encryption, with key 0, and
/// on the memberlist layer.
#[test]
fn key_actions_need_encryption_a_key_and_the_serf_layer() {
    let e = Scenario::from_toml(&ROTATION.replace("encryption = true", "")).unwrap_err();
    assert!(e.contains("set `[config] encryption = true`"), "{e}");
    let e = Scenario::from_toml(&ROTATION.replace("key = 2", "key = 0")).unwrap_err();
    assert!(e.contains("needs `key (1 to 255)`"), "{e}");
    let s = Scenario::from_toml(ROTATION).unwrap();
    let e = Simulation::<MemberlistNode>::new(&s, 1).unwrap_err();
    assert!(e.contains("keyring operations need the Serf layer"), "{e}");
}
