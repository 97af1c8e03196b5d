//! One Serf node in its own process, for measurements with one process per node
//! (`scripts/bench-idle.sh`): it joins the given seeds, then runs until ctrl-c or
//! SIGTERM, when it leaves gracefully.
//!
//! ```sh
//! cargo run --release -p serf-driver-tokio --example node -- NAME BIND_ADDR [SEED_ADDR...]
//! ```

use serf_driver_tokio::Builder;
use serf_proto::serf::Config;
use std::net::SocketAddr;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, bind, seeds @ ..] = args.as_slice() else {
        eprintln!("usage: node NAME BIND_ADDR [SEED_ADDR...]   e.g. node n1 127.0.0.1:7946");
        std::process::exit(2);
    };
    let bind: SocketAddr = bind.parse()?;
    let seeds: Vec<SocketAddr> = seeds.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let (node, mut events) = Builder::new(name.as_str())
        .bind(bind)
        .config(Config::default())
        .start()
        .await?;
    if !seeds.is_empty() {
        node.join(&seeds, false).await?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            e = events.recv() => if e.is_none() { break },
        }
    }
    node.leave().await?;
    node.shutdown().await?;
    Ok(())
}
