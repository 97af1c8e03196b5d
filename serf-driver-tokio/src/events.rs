//! What comes back to the application: [`Events`], and a query's [`QueryStream`].

use bytes::Bytes;
use serf_proto::Name;
use serf_proto::serf::Event;
use tokio::sync::mpsc;

/// What happens to one of our queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEvent {
    /// A node acknowledged it (when acks were requested).
    Ack {
        /// The node.
        from: Name,
    },
    /// A node answered.
    Response {
        /// The node.
        from: Name,
        /// Its answer.
        payload: Bytes,
    },
    /// The query ended: every node expected answered, or the timeout passed. Last.
    Done {
        /// Acks received.
        acks: usize,
        /// Responses received.
        responses: usize,
        /// Whether every node expected to answer did, before the timeout.
        complete: bool,
    },
}

/// The acks and responses to one query, then [`QueryEvent::Done`].
#[derive(Debug)]
pub struct QueryStream {
    pub(crate) rx: mpsc::UnboundedReceiver<QueryEvent>,
}

impl QueryStream {
    /// The next ack or response, or the end; `None` after the end.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// # let responder = b.clone();
    /// # tokio::spawn(async move {
    /// #     while let Some(e) = b_events.recv().await {
    /// #         if let serf_proto::serf::Event::Query(q) = e {
    /// #             let _ = responder.respond(q.handle, &b"b is here"[..]).await;
    /// #         }
    /// #     }
    /// # });
    /// use serf_driver_tokio::QueryEvent;
    /// use serf_proto::serf::QueryParams;
    ///
    /// let params = QueryParams { filter_nodes: vec!["b".into()], request_ack: true, ..QueryParams::default() };
    /// let mut stream = a.query("where", &b""[..], params).await?;
    /// let (mut acks, mut answers) = (0, 0);
    /// while let Some(e) = stream.recv().await {
    ///     match e {
    ///         QueryEvent::Ack { .. } => acks += 1,
    ///         QueryEvent::Response { .. } => answers += 1,
    ///         QueryEvent::Done { complete, .. } => {
    ///             assert!(complete);
    ///             break;
    ///         }
    ///     }
    /// }
    /// assert_eq!((acks, answers), (1, 1));
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<QueryEvent> {
        self.rx.recv().await
    }

    /// Collects every response until the query ends: (node, answer) pairs, and whether
    /// every node expected to answer did.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// # let responder = b.clone();
    /// # tokio::spawn(async move {
    /// #     while let Some(e) = b_events.recv().await {
    /// #         if let serf_proto::serf::Event::Query(q) = e {
    /// #             let _ = responder.respond(q.handle, &b"b is here"[..]).await;
    /// #         }
    /// #     }
    /// # });
    /// use serf_proto::serf::QueryParams;
    ///
    /// let params = QueryParams { filter_nodes: vec!["b".into()], ..QueryParams::default() };
    /// let (answers, complete) = a.query("where", &b""[..], params).await?.collect().await;
    /// assert!(complete);
    /// assert_eq!(answers.len(), 1);
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect(mut self) -> (Vec<(Name, Bytes)>, bool) {
        let mut out = Vec::new();
        while let Some(e) = self.rx.recv().await {
            match e {
                QueryEvent::Response { from, payload } => out.push((from, payload)),
                QueryEvent::Ack { .. } => {}
                QueryEvent::Done { complete, .. } => return (out, complete),
            }
        }
        (out, false)
    }
}

/// Events for the application: member changes, user events, queries to answer, and
/// the rest of [`serf_proto::serf::Event`] (query acks, responses and key answers go to
/// the caller that asked instead).
///
/// **Overflow**: the queue holds `Builder::event_capacity` events (1,024 by default). The
/// protocol never waits for the application: when the queue is full, new events are
/// dropped and counted in [`DriverStats::events_dropped`](crate::DriverStats::events_dropped). Read promptly, or raise the
/// capacity.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the node has shut down and every event was read.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// use serf_proto::serf::Event;
    ///
    /// a.user_event("hello", &b""[..], false).await?;
    /// while let Some(event) = b_events.recv().await {
    ///     match event {
    ///         Event::User(e) if e.name == "hello" => break,
    ///         other => println!("b: {other:?}"),
    ///     }
    /// }
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event if one is queued now.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// // Whatever is queued now, without waiting.
    /// while let Some(event) = b_events.try_recv() {
    ///     println!("b: {event:?}");
    /// }
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}
