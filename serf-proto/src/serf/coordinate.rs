//! Vivaldi network coordinates (serf's `coordinate` package): every direct probe's round
//! trip nudges our coordinate, so the distance between any two members' coordinates
//! estimates their RTT without measuring it.

use crate::name::Name;
use crate::rng::NodeRng;
use crate::wire::WireError;
use crate::wire::codec::{Decoder, Encoder};
use core::time::Duration;

const ZERO_THRESHOLD: f64 = 1.0e-6;
/// Round trips outside `(0, 10 s]` are rejected.
const MAX_RTT: Duration = Duration::from_secs(10);
/// Refuse coordinates with more dimensions than this from the network.
const MAX_DIMENSIONS: usize = 64;

/// Vivaldi parameters, with Go's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinateConfig {
    /// Dimensions of the Euclidean part. 8.
    pub dimensionality: usize,
    /// Cap on the error estimate. 1.5.
    pub vivaldi_error_max: f64,
    /// Error-update weight. 0.25.
    pub vivaldi_ce: f64,
    /// Coordinate-update weight. 0.25.
    pub vivaldi_cc: f64,
    /// Samples in the adjustment window. 20.
    pub adjustment_window_size: usize,
    /// Smallest height, in seconds. 10 µs.
    pub height_min: f64,
    /// Samples per peer in the median latency filter. 3.
    pub latency_filter_size: usize,
    /// Gravity pulling coordinates toward the origin: `-(dist / rho)^2`. 150.
    pub gravity_rho: f64,
}

impl Default for CoordinateConfig {
    fn default() -> Self {
        CoordinateConfig {
            dimensionality: 8,
            vivaldi_error_max: 1.5,
            vivaldi_ce: 0.25,
            vivaldi_cc: 0.25,
            adjustment_window_size: 20,
            height_min: 10.0e-6,
            latency_filter_size: 3,
            gravity_rho: 150.0,
        }
    }
}

/// A network coordinate. All values are in seconds.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq)]
pub struct Coordinate {
    /// The Euclidean part.
    pub vec: Vec<f64>,
    /// The confidence in it (lower is better).
    pub error: f64,
    /// A per-node offset learned from the residuals.
    pub adjustment: f64,
    /// The node's distance from the core of the network (its access link).
    pub height: f64,
}

impl Coordinate {
    /// The origin, with maximal error.
    pub fn new(config: &CoordinateConfig) -> Coordinate {
        Coordinate {
            vec: vec![0.0; config.dimensionality],
            error: config.vivaldi_error_max,
            adjustment: 0.0,
            height: config.height_min,
        }
    }

    /// Whether every component is finite.
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|v| v.is_finite())
            && self.error.is_finite()
            && self.adjustment.is_finite()
            && self.height.is_finite()
    }

    /// Whether the two coordinates have the same dimensionality.
    pub fn is_compatible_with(&self, other: &Coordinate) -> bool {
        self.vec.len() == other.vec.len()
    }

    fn raw_distance_to(&self, other: &Coordinate) -> f64 {
        magnitude(self.vec.iter().zip(&other.vec).map(|(a, b)| a - b)) + self.height + other.height
    }

    /// The estimated round-trip time to `other`.
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        let dist = self.raw_distance_to(other);
        let adjusted = dist + self.adjustment + other.adjustment;
        let d = if adjusted > 0.0 { adjusted } else { dist };
        Duration::try_from_secs_f64(d).unwrap_or(Duration::ZERO)
    }

    fn apply_force(
        &self,
        config: &CoordinateConfig,
        force: f64,
        other: &Coordinate,
        rng: &mut NodeRng,
    ) -> Coordinate {
        let mut ret = self.clone();
        let (unit, mag) = unit_vector_at(&self.vec, &other.vec, rng);
        for (r, u) in ret.vec.iter_mut().zip(&unit) {
            *r += u * force;
        }
        if mag > ZERO_THRESHOLD {
            ret.height =
                ((ret.height + other.height) * force / mag + ret.height).max(config.height_min);
        }
        ret
    }

    /// Encodes the coordinate compactly: field 5 the vector and field 6 error,
    /// adjustment and height, each as little-endian `f32`s packed in one byte string.
    /// It rides on every ack, so its size is most of an idle cluster's bytes: 48 bytes
    /// for 8 dimensions, against 99 as eight-byte floats. Single precision keeps 7
    /// significant digits, far finer than the round-trip times it estimates.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut vec = [0u8; 4 * MAX_DIMENSIONS];
        let n = self.vec.len().min(MAX_DIMENSIONS);
        for (chunk, v) in vec.chunks_exact_mut(4).zip(&self.vec[..n]) {
            chunk.copy_from_slice(&(*v as f32).to_le_bytes());
        }
        let mut scalars = [0u8; 12];
        for (chunk, v) in
            scalars
                .chunks_exact_mut(4)
                .zip([self.error, self.adjustment, self.height])
        {
            chunk.copy_from_slice(&(v as f32).to_le_bytes());
        }
        Encoder::new(out)
            .bytes_always(5, &vec[..4 * n])
            .bytes_always(6, &scalars);
    }

    /// Decodes a coordinate, compact (fields 5 and 6) or as eight-byte floats (fields 1
    /// to 4, as the first releases sent it); refuses absurd dimensionality.
    pub fn decode(b: &[u8]) -> Result<Coordinate, WireError> {
        let mut c = Coordinate {
            vec: Vec::new(),
            error: 0.0,
            adjustment: 0.0,
            height: 0.0,
        };
        let f32s = |b: &[u8]| -> Result<Vec<f64>, WireError> {
            if !b.len().is_multiple_of(4) {
                return Err(WireError::Truncated);
            }
            if b.len() / 4 > MAX_DIMENSIONS {
                return Err(WireError::TooMany);
            }
            Ok(b.chunks_exact(4)
                .map(|x| f64::from(f32::from_le_bytes([x[0], x[1], x[2], x[3]])))
                .collect())
        };
        let mut d = Decoder::new(b);
        while let Some((n, v)) = d.next_field()? {
            match n {
                1 => {
                    if c.vec.len() >= MAX_DIMENSIONS {
                        return Err(WireError::TooMany);
                    }
                    c.vec.push(v.as_f64()?);
                }
                2 => c.error = v.as_f64()?,
                3 => c.adjustment = v.as_f64()?,
                4 => c.height = v.as_f64()?,
                5 => c.vec = f32s(v.as_bytes()?)?,
                6 => {
                    let s = f32s(v.as_bytes()?)?;
                    let [error, adjustment, height] = s[..] else {
                        return Err(WireError::Truncated);
                    };
                    (c.error, c.adjustment, c.height) = (error, adjustment, height);
                }
                _ => {}
            }
        }
        Ok(c)
    }
}

fn magnitude(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

/// The unit vector from `b` toward `a` and the distance; a random direction if they
/// coincide.
fn unit_vector_at(a: &[f64], b: &[f64], rng: &mut NodeRng) -> (Vec<f64>, f64) {
    let mut ret: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mag = magnitude(ret.iter().copied());
    if mag > ZERO_THRESHOLD {
        ret.iter_mut().for_each(|x| *x /= mag);
        return (ret, mag);
    }
    ret.iter_mut().for_each(|x| *x = rng.unit() - 0.5);
    let mag = magnitude(ret.iter().copied());
    if mag > ZERO_THRESHOLD {
        ret.iter_mut().for_each(|x| *x /= mag);
        return (ret, 0.0);
    }
    let mut ret = vec![0.0; a.len()];
    if let Some(first) = ret.first_mut() {
        *first = 1.0;
    }
    (ret, 0.0)
}

/// Why an observation was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoordinateError {
    /// The peer's coordinate has another dimensionality or non-finite values.
    #[error("incompatible or invalid peer coordinate")]
    Incompatible,
    /// The round trip is outside `(0, 10 s]`.
    #[error("round-trip time out of range")]
    BadRtt,
}

/// Our coordinate, updated from observations (serf's `coordinate.Client`).
#[derive(Debug, Clone)]
pub struct CoordinateClient {
    coord: Coordinate,
    origin: Coordinate,
    config: CoordinateConfig,
    adjustment_index: usize,
    adjustment_samples: Vec<f64>,
    latency_filter: hashbrown::HashMap<Name, Vec<f64>, foldhash::fast::FixedState>,
    /// How many times the coordinate went invalid and was reset.
    pub resets: u64,
}

impl CoordinateClient {
    /// A client at the origin. `seed` keys the per-peer table's hasher.
    pub fn new(config: CoordinateConfig, seed: u64) -> Self {
        CoordinateClient {
            coord: Coordinate::new(&config),
            origin: Coordinate::new(&config),
            adjustment_index: 0,
            adjustment_samples: vec![0.0; config.adjustment_window_size],
            latency_filter: hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::with_seed(
                seed,
            )),
            resets: 0,
            config,
        }
    }

    /// Our current coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// Forgets a peer's latency samples (it was reaped).
    pub fn forget(&mut self, node: &str) {
        self.latency_filter.remove(node);
    }

    fn latency_filter(&mut self, node: &Name, rtt: f64) -> f64 {
        let size = self.config.latency_filter_size.max(1);
        let samples = self.latency_filter.entry(node.clone()).or_default();
        samples.push(rtt);
        if samples.len() > size {
            samples.remove(0);
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// Updates our coordinate from a round trip to `node` at coordinate `other`.
    pub fn update(
        &mut self,
        node: &Name,
        other: &Coordinate,
        rtt: Duration,
        rng: &mut NodeRng,
    ) -> Result<&Coordinate, CoordinateError> {
        if !self.coord.is_compatible_with(other) || !other.is_valid() {
            return Err(CoordinateError::Incompatible);
        }
        if rtt > MAX_RTT {
            return Err(CoordinateError::BadRtt);
        }
        let rtt = self.latency_filter(node, rtt.as_secs_f64());
        self.update_vivaldi(other, rtt, rng);
        self.update_adjustment(other, rtt);
        self.update_gravity(rng);
        if !self.coord.is_valid() {
            self.resets += 1;
            self.coord = Coordinate::new(&self.config);
        }
        Ok(&self.coord)
    }

    fn update_vivaldi(&mut self, other: &Coordinate, rtt: f64, rng: &mut NodeRng) {
        let c = &self.config;
        let dist = self.coord.distance_to(other).as_secs_f64();
        let rtt = rtt.max(ZERO_THRESHOLD);
        let wrongness = (dist - rtt).abs() / rtt;
        let total_error = (self.coord.error + other.error).max(ZERO_THRESHOLD);
        let weight = self.coord.error / total_error;
        self.coord.error = (c.vivaldi_ce * weight * wrongness
            + self.coord.error * (1.0 - c.vivaldi_ce * weight))
            .min(c.vivaldi_error_max);
        let force = c.vivaldi_cc * weight * (rtt - dist);
        self.coord = self.coord.apply_force(c, force, other, rng);
    }

    fn update_adjustment(&mut self, other: &Coordinate, rtt: f64) {
        let window = self.config.adjustment_window_size;
        if window == 0 {
            return;
        }
        // The raw distance: existing adjustments do not figure in the residual.
        let dist = self.coord.raw_distance_to(other);
        self.adjustment_samples[self.adjustment_index] = rtt - dist;
        self.adjustment_index = (self.adjustment_index + 1) % window;
        let sum: f64 = self.adjustment_samples.iter().sum();
        self.coord.adjustment = sum / (2.0 * window as f64);
    }

    fn update_gravity(&mut self, rng: &mut NodeRng) {
        let dist = self.origin.distance_to(&self.coord).as_secs_f64();
        let force = -(dist / self.config.gravity_rho).powi(2);
        let origin = self.origin.clone();
        self.coord = self.coord.apply_force(&self.config, force, &origin, rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes on a line with known RTTs: after enough rounds, estimates approach truth.
    #[test]
    fn converges_on_a_simple_topology() {
        let config = CoordinateConfig::default();
        let mut rng = NodeRng::new(1);
        let positions = [0.0f64, 0.010, 0.030, 0.060];
        let names: Vec<Name> = (0..4)
            .map(|i| Name::new(&format!("n{i}")).unwrap())
            .collect();
        let mut clients: Vec<CoordinateClient> = (0..4)
            .map(|i| CoordinateClient::new(config.clone(), i))
            .collect();
        for round in 0..2000 {
            let i = round % 4;
            let j = (round / 4 + i + 1) % 4;
            if i == j {
                continue;
            }
            let rtt = Duration::from_secs_f64((positions[i] - positions[j]).abs());
            let other = clients[j].coordinate().clone();
            clients[i].update(&names[j], &other, rtt, &mut rng).unwrap();
        }
        let est = clients[0].coordinate().distance_to(clients[3].coordinate());
        let err = (est.as_secs_f64() - 0.060).abs();
        assert!(err < 0.010, "estimate {est:?} vs 60 ms");
    }

    #[test]
    fn rejects_bad_samples_and_roundtrips() {
        let config = CoordinateConfig::default();
        let mut rng = NodeRng::new(1);
        let mut c = CoordinateClient::new(config.clone(), 0);
        let n = Name::new("x").unwrap();
        let mut bad = Coordinate::new(&config);
        bad.vec.pop();
        assert_eq!(
            c.update(&n, &bad, Duration::from_millis(1), &mut rng)
                .unwrap_err(),
            CoordinateError::Incompatible
        );
        let ok = Coordinate::new(&config);
        assert_eq!(
            c.update(&n, &ok, Duration::from_secs(11), &mut rng)
                .unwrap_err(),
            CoordinateError::BadRtt
        );
        c.update(&n, &ok, Duration::ZERO, &mut rng).unwrap();
        let mut out = Vec::new();
        c.coordinate().encode(&mut out);
        // The wire carries single precision.
        let sent = c.coordinate();
        let got = Coordinate::decode(&out).unwrap();
        let single = |x: f64| f64::from(x as f32);
        assert_eq!(
            got.vec,
            sent.vec.iter().map(|x| single(*x)).collect::<Vec<_>>()
        );
        assert_eq!(
            (got.error, got.adjustment, got.height),
            (
                single(sent.error),
                single(sent.adjustment),
                single(sent.height)
            )
        );
        let mut nan = ok.clone();
        nan.height = f64::NAN;
        assert!(
            c.update(&n, &nan, Duration::from_millis(1), &mut rng)
                .is_err()
        );
    }

    #[test]
    fn an_eight_dimension_coordinate_fits_in_48_bytes_and_the_old_form_still_decodes() {
        let config = CoordinateConfig::default();
        let mut c = Coordinate::new(&config);
        c.vec = (0..8).map(|i| 0.001 * f64::from(i)).collect();
        c.error = 0.25;
        c.height = 0.0005;
        let mut out = Vec::new();
        c.encode(&mut out);
        assert!(out.len() <= 48, "{} bytes", out.len());
        // The first releases' form: eight-byte floats in fields 1 to 4.
        let mut old = Vec::new();
        let mut e = Encoder::new(&mut old);
        for v in &c.vec {
            e.f64(1, *v);
        }
        e.f64(2, c.error).f64(3, c.adjustment).f64(4, c.height);
        assert_eq!(Coordinate::decode(&old).unwrap(), c);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = Coordinate::decode(&b);
        }
    }
}
