//! The sans-IO core in a hand-written event loop: std sockets, no async runtime, one
//! thread per node. Three nodes on 127.0.0.1 join, exchange a user event, and one leaves.
//!
//! ```sh
//! cargo run --release -p serf-proto --example std_loop
//! ```
//!
//! Everything a driver does is here: a non-blocking UDP socket and TCP listener on one
//! port, one non-blocking TCP connection per core stream with the shared framing
//! ([`serf_proto::framing`]), the core's deadline as the loop's timer, and the drain after
//! every input.

use serf_proto::framing::{FrameDecoder, encode_header};
use serf_proto::serf::{Config, Event, MemberStatus};
use serf_proto::{Instant, Output, Serf, StreamEvent, StreamId};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

/// One connection: its socket, bytes waiting to be written, and the frame decoder.
struct Conn {
    socket: Option<TcpStream>,
    /// Where to connect, until the socket exists.
    to: Option<SocketAddr>,
    out: Vec<u8>,
    decoder: FrameDecoder,
    closing: bool,
}

struct Node {
    serf: Serf,
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<StreamId, Conn>,
    origin: std::time::Instant,
    buf: Vec<u8>,
}

impl Node {
    fn start(name: &str, seed: u64) -> std::io::Result<Node> {
        // One port for UDP and TCP: bind UDP to a free port, then TCP to the same.
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let addr = udp.local_addr()?;
        let tcp = TcpListener::bind(addr)?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let origin = std::time::Instant::now();
        let serf = Serf::new(Config::local(), name, addr, seed, Instant::ZERO)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Node {
            serf,
            udp,
            tcp,
            conns: HashMap::new(),
            origin,
            buf: Vec::new(),
        })
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    /// One turn of the loop: every input that is ready, the timer if due, then the drain.
    /// Returns the events of this turn.
    fn turn(&mut self) -> Vec<Event> {
        let mut datagram = [0u8; 65_536];
        while let Ok((n, from)) = self.udp.recv_from(&mut datagram) {
            let now = self.now();
            self.serf.handle_datagram(now, from, &datagram[..n]);
        }
        while let Ok((socket, from)) = self.tcp.accept() {
            let now = self.now();
            if let Some(id) = self.serf.accept_stream(now, from) {
                let _ = socket.set_nonblocking(true);
                self.conns.insert(id, self.conn(Some(socket), None));
            }
        }
        self.pump_streams();
        let now = self.now();
        if self.serf.next_deadline() <= now {
            self.serf.handle_timeout(now);
        }
        self.drain()
    }

    fn conn(&self, socket: Option<TcpStream>, to: Option<SocketAddr>) -> Conn {
        Conn {
            socket,
            to,
            out: Vec::new(),
            decoder: FrameDecoder::new(self.serf.max_frame_len()),
            closing: false,
        }
    }

    /// Connects, writes and reads every stream; reports frames, closes and failures.
    fn pump_streams(&mut self) {
        let mut reports: Vec<(StreamId, Option<Vec<u8>>, bool)> = Vec::new();
        let mut done = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
            if c.socket.is_none() {
                let to =
                    c.to.take()
                        .expect("a stream without a socket has an address");
                match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                    Ok(s) => {
                        let _ = s.set_nonblocking(true);
                        c.socket = Some(s);
                    }
                    Err(_) => {
                        reports.push((id, None, true));
                        done.push(id);
                        continue;
                    }
                }
            }
            let socket = c.socket.as_mut().expect("connected above");
            if !c.out.is_empty() {
                match socket.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        reports.push((id, None, true));
                        done.push(id);
                        continue;
                    }
                }
            }
            if c.closing && c.out.is_empty() {
                let _ = socket.shutdown(std::net::Shutdown::Write);
                done.push(id);
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match socket.read(&mut chunk) {
                    Ok(0) => {
                        reports.push((id, None, false));
                        break;
                    }
                    Ok(n) => {
                        c.decoder.push(&chunk[..n]);
                        loop {
                            match c.decoder.next_frame() {
                                Ok(Some(frame)) => reports.push((id, Some(frame.to_vec()), false)),
                                Ok(None) => break,
                                Err(_) => {
                                    reports.push((id, None, true));
                                    done.push(id);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        reports.push((id, None, true));
                        done.push(id);
                        break;
                    }
                }
            }
        }
        for id in done {
            self.conns.remove(&id);
        }
        for (id, frame, failed) in reports {
            let now = self.now();
            let event = match (&frame, failed) {
                (Some(f), _) => StreamEvent::Frame(f),
                (None, true) => StreamEvent::Failed,
                (None, false) => StreamEvent::Closed,
            };
            self.serf.handle_stream(now, id, event);
        }
    }

    /// Drains the core until its deadline (the contract: after every input).
    fn drain(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.serf.poll_output(&mut self.buf) {
                Output::Transmit { to } => {
                    // A full socket buffer loses the datagram, as the network could.
                    let _ = self.udp.send_to(&self.buf, to);
                }
                Output::OpenStream { id, to, .. } => {
                    let conn = self.conn(None, Some(to));
                    self.conns.insert(id, conn);
                }
                Output::SendFrame { id } => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.out.extend_from_slice(&encode_header(self.buf.len()));
                        c.out.extend_from_slice(&self.buf);
                    }
                }
                Output::CloseStream { id, .. } => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.closing = true;
                    }
                }
                Output::AbortStream { id } => {
                    // Give up at once: dropping the socket resets the connection.
                    self.conns.remove(&id);
                }
                Output::Event(e) => events.push(e),
                Output::Timeout(_) => {
                    // What Go would log, e.g. `[INFO] memberlist: Suspect b has failed`.
                    while let Some(record) = self.serf.poll_log() {
                        eprintln!("{} {record}", self.serf.local_name());
                    }
                    return events;
                }
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<String>();
    let mut addrs = Vec::new();
    let mut nodes = Vec::new();
    for (i, seed) in [11u64, 22, 33].into_iter().enumerate() {
        let node = Node::start(&format!("node-{i}"), seed)?;
        addrs.push(node.serf.local_member().addr);
        nodes.push(node);
    }
    let seed_addr = addrs[0];
    let threads: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, mut node)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                if i > 0 {
                    let now = node.now();
                    node.serf.join(now, &[seed_addr], false).unwrap();
                }
                let mut fired = false;
                let mut left = false;
                while start.elapsed() < Duration::from_secs(8) {
                    for e in node.turn() {
                        match e {
                            Event::User(u) => {
                                let _ = tx.send(format!(
                                    "node-{i} got {:?} after {:.0?}",
                                    u.name,
                                    start.elapsed()
                                ));
                            }
                            Event::LeaveCompleted => {
                                let _ = tx.send(format!("node-{i} left"));
                            }
                            _ => {}
                        }
                    }
                    let alive = node
                        .serf
                        .members()
                        .filter(|m| m.status == MemberStatus::Alive)
                        .count();
                    if i == 1 && !fired && alive == 3 {
                        fired = true;
                        let now = node.now();
                        node.serf
                            .user_event(now, "hello", b"from std", false)
                            .unwrap();
                    }
                    if i == 2 && !left && start.elapsed() > Duration::from_secs(3) {
                        left = true;
                        let now = node.now();
                        node.serf.leave(now).unwrap();
                    }
                    // Sleep until the core's deadline, at most 5 ms (the sockets are
                    // polled; a real loop would use poll/epoll on them instead).
                    let next = node
                        .serf
                        .next_deadline()
                        .saturating_duration_since(node.now());
                    std::thread::sleep(next.min(Duration::from_millis(5)));
                }
                let view: Vec<String> = node
                    .serf
                    .members()
                    .map(|m| format!("{}={}", m.name, m.status.as_str()))
                    .collect();
                let _ = tx.send(format!("node-{i} view: {}", view.join(" ")));
            })
        })
        .collect();
    drop(tx);
    for line in rx {
        println!("{line}");
    }
    for t in threads {
        t.join().expect("node thread");
    }
    Ok(())
}
