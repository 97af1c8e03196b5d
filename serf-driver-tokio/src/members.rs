//! [`Members`]: the read-only member view the task republishes for handles.

use serf_proto::serf::{Member, MemberStatus, SerfState};

/// The members as the node last saw them: a copy the task republishes when membership
/// or the node's state changed, read without waiting on the task. During a storm of
/// changes it is republished at most every 10 ms (each copy clones every member), and
/// always once the storm ends; at once after a command and before a join returns.
#[derive(Debug, Clone)]
pub struct Members {
    /// This node.
    pub local: Member,
    /// Every member known, this node included, in no particular order.
    pub members: Vec<Member>,
    /// This node's state.
    pub state: SerfState,
    /// The core's membership change counter when this copy was made.
    pub version: u64,
}

impl Members {
    /// The member named `name`, if known.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let view = node.members();
    /// assert_eq!(view.get("a").map(|m| m.addr), Some(node.local_addr()));
    /// assert!(view.get("b").is_none());
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name.as_str() == name)
    }

    /// The status of the member named `name`, if known.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// use serf_proto::serf::MemberStatus;
    ///
    /// assert_eq!(node.members().status_of("a"), Some(MemberStatus::Alive));
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn status_of(&self, name: &str) -> Option<MemberStatus> {
        self.get(name).map(|m| m.status)
    }

    /// How many members have `status`.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// use serf_proto::serf::MemberStatus;
    ///
    /// let view = node.members();
    /// assert_eq!(view.count(MemberStatus::Alive), 1);
    /// assert_eq!(view.count(MemberStatus::Failed), 0);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn count(&self, status: MemberStatus) -> usize {
        self.members.iter().filter(|m| m.status == status).count()
    }
}
