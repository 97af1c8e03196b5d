//! Stream set-up cost on 127.0.0.1: the time of a join (one push-pull: connect, for TLS
//! and QUIC a mutually authenticated handshake, our state out, the peer's state back)
//! between two nodes, over plain TCP, TLS over TCP, and QUIC. Gossip is the same UDP in
//! all three.
//!
//! ```sh
//! cargo run --release -p serf-driver-tokio --features tls,quic --example stream_bench -- [JOINS]
//! ```
//!
//! Each transport gets a fresh pair of nodes (LAN profile) and `JOINS` (default 300)
//! joins in a row; the first 10 are a warm-up. Prints p50, p90, p99 and mean, then the
//! CPU time the process used while the pair sat idle for 2 s, 6 s after the last join
//! (on Linux, from
//! `/proc/self/stat`; a transport that spins would show here).

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serf_driver_tokio::{Builder, Certificates};
use serf_proto::serf::Config;
use std::time::{Duration, Instant};

type Secure = fn(Builder, Certificates) -> Builder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let joins: usize = std::env::args().nth(1).map_or(Ok(300), |a| a.parse())?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let certs = |node: &str| -> Result<Certificates, Box<dyn std::error::Error>> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec![node.to_string()])?.signed_by(&key, &ca)?;
        Ok(Certificates::from_pem(
            ca.pem().as_bytes(),
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
        )?)
    };
    println!("{joins} joins (push-pulls) between two nodes on 127.0.0.1, each transport:\n");
    println!("transport   p50 ms  p90 ms  p99 ms  mean ms  idle CPU ms/s");
    let transports: [(&str, Secure); 3] = [
        ("tcp", |b, _| b),
        ("tls", |b, c| b.tls(c)),
        ("quic", |b, c| b.quic(c)),
    ];
    for (name, secure) in transports {
        let start = |node: &'static str| {
            let b = secure(Builder::new(node), certs(node).expect("certificates"));
            b.bind("127.0.0.1:0".parse().expect("address"))
                .config(Config::default())
                .start()
        };
        let (a, _a_events) = start("a").await?;
        let (b, _b_events) = start("b").await?;
        let mut times = Vec::with_capacity(joins);
        for i in 0..joins + 10 {
            let t = Instant::now();
            b.join(&[a.local_addr()], false).await?;
            if i >= 10 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        let at = |q: f64| ms(times[((times.len() - 1) as f64 * q) as usize]);
        let mean = ms(times.iter().sum::<Duration>()) / times.len() as f64;
        // Past the 5 s linger of the last streams' connections, then 2 s of idle.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let idle_from = cpu_ms();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = match (idle_from, cpu_ms()) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) / 2.0),
            _ => "n/a".into(),
        };
        println!(
            "{name:<9} {:>7.3} {:>7.3} {:>7.3} {:>8.3} {idle:>14}",
            at(0.5),
            at(0.9),
            at(0.99),
            mean
        );
        a.shutdown().await?;
        b.shutdown().await?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// User plus system CPU time of this process so far, in ms (Linux; clock ticks of
/// 10 ms).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}
