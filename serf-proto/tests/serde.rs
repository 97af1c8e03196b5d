//! The `serde` feature: the types an agent or a JS host renders serialize to the JSON it
//! expects, and plain data round-trips.

#![cfg(feature = "serde")]

use serde_json::{Value, json};
use serf_proto::serf::{Config, Coordinate, Event, KeyResponse, QueryParams, Record};
use serf_proto::{Instant, Name, Output, SecretKey, Serf};
use std::net::SocketAddr;
use std::time::Duration;

fn events(node: &mut Serf) -> Vec<Event> {
    let mut buf = Vec::new();
    let mut events = Vec::new();
    loop {
        match node.poll_output(&mut buf) {
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return events,
            _ => {}
        }
    }
}

#[test]
fn a_member_event_and_stats_from_a_running_node_serialize() {
    let addr = SocketAddr::from(([10, 7, 0, 1], 7946));
    let mut config = Config::default();
    config.tags.insert("role".into(), "web".into());
    let mut a = Serf::new(config, "node-a", addr, 1, Instant::ZERO).unwrap();
    let join = events(&mut a)
        .into_iter()
        .find(|e| matches!(e, Event::Member { .. }))
        .expect("the local node's join event");
    let v: Value = serde_json::to_value(&join).unwrap();
    assert_eq!(v["type"], "member");
    assert_eq!(v["kind"], "join");
    let member = &v["members"][0];
    assert_eq!(member["name"], "node-a");
    assert_eq!(member["addr"], "10.7.0.1:7946");
    assert_eq!(member["status"], "alive");
    assert_eq!(member["tags"]["role"], "web");

    let stats: Value = serde_json::to_value(a.stats()).unwrap();
    assert_eq!(stats["members"], 1);
    assert_eq!(stats["failed"], 0);
    assert!(stats["encrypted"].is_boolean());
    let metrics: Value = serde_json::to_value(a.metrics()).unwrap();
    assert!(metrics["packets_sent"].is_u64());
    let serf_metrics: Value = serde_json::to_value(a.serf_metrics()).unwrap();
    assert_eq!(serf_metrics["events_delivered"], 0);
}

#[test]
fn query_params_and_coordinates_round_trip() {
    let params = QueryParams {
        filter_nodes: vec!["a".into(), "b".into()],
        filter_tags: vec![("role".into(), "^web$".into())],
        request_ack: true,
        relay_factor: 2,
        timeout: Some(Duration::from_millis(1500)),
    };
    let json = serde_json::to_string(&params).unwrap();
    assert_eq!(serde_json::from_str::<QueryParams>(&json).unwrap(), params);

    let coord = Coordinate {
        vec: vec![0.25, -0.5, 0.0],
        error: 1.5,
        adjustment: -0.001,
        height: 1e-5,
    };
    let json = serde_json::to_string(&coord).unwrap();
    assert_eq!(serde_json::from_str::<Coordinate>(&json).unwrap(), coord);
}

#[test]
fn names_instants_keys_and_records() {
    assert_eq!(json!(Name::new("n1").unwrap()), json!("n1"));
    assert!(serde_json::from_str::<Name>("\"\"").is_err(), "validated");
    assert_eq!(json!(Instant::from_millis(2)), json!(2_000_000));
    assert_eq!(json!(SecretKey([0; 32])), json!("A".repeat(43) + "="));

    let mut response = KeyResponse::default();
    response.keys.insert([0xff; 32], 3);
    let v = json!(response);
    assert_eq!(v["keys"][format!("{}8=", "/".repeat(42))], 3);

    let record = Record::Alive {
        name: Name::new("n2").unwrap(),
        addr: SocketAddr::from(([127, 0, 0, 1], 1)),
    };
    let json = serde_json::to_string(&record).unwrap();
    assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
}
