//! Plain counters of what the core did and what it shed.
//!
//! The core never logs; it counts. Every dropped packet, refused stream, pruned broadcast
//! and rejected message increments one of these, so a driver can export them (Prometheus,
//! statsd, `serf info`) and a simulator can check them.

use crate::transform::TransformError;

/// Declares a struct of `u64` counters, each with its doc comment, and an `iter` over
/// them as (name, help text, value): an exporter (Prometheus, statsd, `serf info`) that
/// walks `iter` exports every counter, including ones added later, with its doc as help.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                pub $field:ident: u64,
            )+
        }
    ) => {
        $(#[$meta])*
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name {
            $(
                $(#[doc = $doc])+
                pub $field: u64,
            )+
        }

        impl $name {
            /// Every counter as (name, help text, value), in declaration order. The name
            /// is the field's; the help text is its doc comment.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> {
                [$((
                    stringify!($field),
                    concat!($($doc),+).trim_ascii_start(),
                    self.$field,
                )),+]
                .into_iter()
            }
        }
    };
}
pub(crate) use counters;

counters! {
/// Counters, all monotonically increasing from zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Datagrams received.
    pub packets_received: u64,
    /// Bytes of datagrams received.
    pub bytes_received: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Bytes of datagrams sent.
    pub bytes_sent: u64,
    /// Stream frames received.
    pub frames_received: u64,
    /// Stream frames sent.
    pub frames_sent: u64,

    /// Packets or frames from another cluster label.
    pub dropped_label: u64,
    /// Packets or frames no installed key decrypts, or plaintext when encryption is required.
    pub dropped_crypto: u64,
    /// Packets or frames whose checksum failed.
    pub dropped_checksum: u64,
    /// Packets or frames with a bad header, bad compression or over the size limit.
    pub dropped_malformed: u64,
    /// Packets or frames using a checksum, compressor or encryption whose cargo feature
    /// this build lacks (a peer configured with an algorithm we cannot read).
    pub dropped_unsupported: u64,
    /// Messages that failed to decode.
    pub messages_malformed: u64,
    /// Messages of a type this node does not know (skipped).
    pub messages_unknown: u64,
    /// Messages not valid where they arrived (e.g. a push-pull in a datagram).
    pub messages_unexpected: u64,
    /// Pings for another node name (a restarted node under a new name).
    pub pings_wrong_target: u64,
    /// Pings and indirect-ping requests whose claimed reply address is neither the
    /// packet's source nor the known address of the claimed sender: answered at the
    /// packet's source instead (a forged address would reflect our answers on a victim).
    pub reply_address_mismatch: u64,
    /// Pings and indirect-ping requests beyond the few one datagram may carry, dropped
    /// (a datagram packed with them would make us send one packet each).
    pub requests_dropped: u64,
    /// Indirect-ping requests for a target that is not a member at that address,
    /// dropped (we would otherwise ping any host we are told to).
    pub indirect_unknown_target: u64,

    /// Probes started.
    pub probes: u64,
    /// Probes that ended without an ack.
    pub probes_failed: u64,
    /// Probes that got no UDP ack but succeeded over a stream.
    pub probes_stream_only: u64,
    /// Indirect pings sent on our behalf.
    pub indirect_probes_sent: u64,
    /// Indirect pings relayed for others.
    pub indirect_probes_relayed: u64,
    /// Nacks received for our probes.
    pub nacks_received: u64,
    /// Suspicions we started or learned.
    pub suspicions: u64,
    /// Suspicions that expired with fewer confirmations than wanted.
    pub suspicions_degraded: u64,
    /// Members we declared dead after their suspicion expired.
    pub deaths_declared: u64,
    /// Times we refuted an accusation about ourselves.
    pub refutes: u64,
    /// Direct accusations sent to members still broadcasting stale alive messages
    /// (the mass-restart fix, memberlist #311).
    pub accusations_sent: u64,
    /// Direct answers to members gossiping a suspicion of someone we hold left or dead
    /// (the member's leave, or our own suspicion as a confirmation).
    pub suspicions_corrected: u64,
    /// Alive messages for a name at a conflicting address.
    pub conflicts: u64,
    /// Alive messages refused by the delegate, by version checks or by metadata size.
    pub alive_refused: u64,
    /// Alive messages about new members dropped because the table is full.
    pub members_refused: u64,
    /// Joins refused by the merge hook.
    pub merges_refused: u64,
    /// Messages claiming an incarnation implausibly far ahead of what we know (forged or
    /// corrupt), dropped.
    pub implausible: u64,

    /// Broadcasts dropped because a queue overflowed.
    pub broadcasts_dropped: u64,
    /// Push-pulls completed (either side).
    pub push_pulls: u64,
    /// Streams that failed or timed out.
    pub streams_failed: u64,
    /// Send-only streams (user messages too large for a datagram: large user events,
    /// query responses, relays) that failed, or were not confirmed closed by the peer by
    /// their deadline, after their one frame: the message was probably lost. Also
    /// counted in `streams_failed`.
    pub stream_sends_failed: u64,
    /// Inbound streams refused by the concurrency limit.
    pub streams_refused: u64,
    /// Inbound streams closed to make room for a new one because they had sent nothing
    /// yet (idle connections must not lock everyone else out).
    pub streams_evicted: u64,
    /// Stream events for ids the core never issued (a driver bug). Events for streams
    /// the core already closed or aborted are expected and not counted.
    pub streams_unknown: u64,
    /// Messages too large to send (over `max_stream_frame`).
    pub messages_too_large: u64,
    /// Log records dropped, oldest first, because the driver did not take them with
    /// `poll_log` before 1,024 were waiting.
    pub logs_dropped: u64,
}
}

impl Metrics {
    /// Counts a packet or frame refused by the transforms.
    pub(crate) fn count_transform_error(&mut self, e: TransformError) {
        match e {
            TransformError::LabelMismatch => self.dropped_label += 1,
            TransformError::Decryption
            | TransformError::NoKeyring
            | TransformError::NotEncrypted
            | TransformError::Encryption => self.dropped_crypto += 1,
            TransformError::ChecksumMismatch => self.dropped_checksum += 1,
            TransformError::Truncated
            | TransformError::UnsupportedVersion(_)
            | TransformError::UnknownFlags(_)
            | TransformError::Compression
            | TransformError::TooLarge => self.dropped_malformed += 1,
            TransformError::FeatureDisabled(_) => self.dropped_unsupported += 1,
        }
    }
}
