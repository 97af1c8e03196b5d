//! A small service registry on the embedding API: services register as tags of the node
//! that runs them, are looked up from the local member view (no network) or by a query
//! (the hosts answer with their endpoint, so only live, reachable instances reply), and
//! disappear when their node fails or leaves.
//!
//! ```sh
//! cargo run --release -p serf-driver-tokio --example registry
//! ```

use serf_driver_tokio::{Builder, Events, SerfHandle};
use serf_proto::serf::{Config, Event, MemberStatus, QueryParams, Tags};
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// Tag key prefix of a service: `svc.web = "127.0.0.1:8080"`.
const PREFIX: &str = "svc.";

/// One node of the registry: a Serf node whose tags are its services.
struct Registry {
    node: SerfHandle,
}

impl Registry {
    async fn start(
        name: &str,
        seed: Option<&Registry>,
    ) -> Result<Registry, Box<dyn std::error::Error>> {
        let (node, events) = Builder::new(name)
            .bind("127.0.0.1:0".parse()?)
            .config(Config::local())
            .start()
            .await?;
        if let Some(s) = seed {
            node.join(&[s.node.local_addr()], false).await?;
        }
        tokio::spawn(answer_lookups(node.clone(), events));
        Ok(Registry { node })
    }

    /// Registers `service` at `endpoint` on this node: a tag, gossiped to every member.
    async fn register(
        &self,
        service: &str,
        endpoint: &str,
    ) -> Result<(), serf_driver_tokio::Error> {
        let mut tags: Tags = (*self.node.local_member().tags).clone();
        tags.insert(format!("{PREFIX}{service}"), endpoint.to_string());
        self.node.set_tags(tags).await
    }

    /// Where `service` runs, from this node's view: alive members carrying its tag.
    fn lookup(&self, service: &str) -> Vec<(String, String)> {
        let key = format!("{PREFIX}{service}");
        let mut found: Vec<(String, String)> = self
            .node
            .members()
            .members
            .iter()
            .filter(|m| m.status == MemberStatus::Alive)
            .filter_map(|m| Some((m.name.to_string(), m.tags.get(&key)?.clone())))
            .collect();
        found.sort();
        found
    }

    /// Asks the hosts of `service` themselves (a query filtered on the tag): only
    /// instances that are up and reachable now answer.
    async fn lookup_live(
        &self,
        service: &str,
    ) -> Result<Vec<(String, String)>, serf_driver_tokio::Error> {
        let params = QueryParams {
            // ".+": a member without the tag has it as "", which ".*" would match.
            filter_tags: vec![(format!("{PREFIX}{service}"), ".+".into())],
            timeout: Some(Duration::from_secs(1)),
            ..QueryParams::default()
        };
        let (answers, _) = self
            .node
            .query("lookup", service.as_bytes().to_vec(), params)
            .await?
            .collect()
            .await;
        let mut found: Vec<(String, String)> = answers
            .into_iter()
            .map(|(from, p)| (from.to_string(), String::from_utf8_lossy(&p).into_owned()))
            .collect();
        found.sort();
        Ok(found)
    }
}

/// Each node answers "lookup SERVICE" with its endpoint for that service.
async fn answer_lookups(node: SerfHandle, mut events: Events) {
    while let Some(e) = events.recv().await {
        if let Event::Query(q) = e
            && q.name == "lookup"
        {
            let key = format!("{PREFIX}{}", String::from_utf8_lossy(&q.payload));
            if let Some(endpoint) = node.local_member().tags.get(&key) {
                let _ = node.respond(q.handle, endpoint.clone().into_bytes()).await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Registry::start("client", None).await?;
    let web1 = Registry::start("web-1", Some(&client)).await?;
    let web2 = Registry::start("web-2", Some(&client)).await?;
    let db = Registry::start("db-1", Some(&client)).await?;
    web1.register("web", "127.0.0.1:8080").await?;
    web2.register("web", "127.0.0.1:8081").await?;
    db.register("postgres", "127.0.0.1:5432").await?;

    let t = Instant::now();
    while client.lookup("web").len() < 2 || client.lookup("postgres").is_empty() {
        sleep(Duration::from_millis(10)).await;
    }
    println!("registrations seen by the client after {:.0?}", t.elapsed());
    println!("web (view):      {:?}", client.lookup("web"));
    println!("postgres (view): {:?}", client.lookup("postgres"));
    println!("web (query):     {:?}", client.lookup_live("web").await?);

    println!("\nweb-2 crashes");
    web2.node.shutdown().await?;
    let t = Instant::now();
    while client.lookup("web").len() > 1 {
        sleep(Duration::from_millis(10)).await;
    }
    println!(
        "web-2 gone from the client's view after {:.1?}",
        t.elapsed()
    );
    println!("web (view):      {:?}", client.lookup("web"));

    println!("\ndb-1 leaves gracefully");
    db.node.leave().await?;
    println!("postgres (view): {:?}", client.lookup("postgres"));

    for r in [&client, &web1, &db] {
        r.node.shutdown().await?;
    }
    Ok(())
}
