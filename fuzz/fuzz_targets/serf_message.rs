//! Every Serf message decoder, tags and coordinates on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serf_proto::serf::coordinate::Coordinate;
use serf_proto::serf::messages::SerfMessage;
use serf_proto::serf::{Record, decode_tags};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(m)) = SerfMessage::decode(data) {
        match m {
            SerfMessage::Query(q) => {
                let _ = q.filters().count();
            }
            SerfMessage::PushPull(p) => {
                let _ = p.status_ltimes().count();
                let _ = p.left_members().count();
                let _ = p.events().count();
            }
            _ => {}
        }
    }
    let _ = decode_tags(data);
    let _ = Coordinate::decode(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Record::parse_line(s);
    }
});
