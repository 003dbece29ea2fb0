//! Where people are: a position as messages carry it (sealed, in ten bytes), and the geometry
//! a room shows with it ("1.2 km NE").
//!
//! Distances are great-circle distances on a sphere of the Earth's mean radius (haversine):
//! within 0.5 % of the ellipsoid everywhere, far finer than a phone's fix at the distances
//! people walk or drive.

use serde::{Deserialize, Serialize};

/// Bytes a position adds to a message as the radio and the body carry it: latitude and
/// longitude as 32-bit integers in 1e-7 degrees (about 1 cm), and the accuracy in metres.
pub const POSITION_BYTES: usize = 10;
/// The Earth's mean radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Largest accuracy a position records, in metres: a worse fix is recorded as this.
pub const MAX_ACCURACY_M: u16 = u16::MAX;

const E7: f64 = 10_000_000.0;
const MAX_LAT_E7: i32 = 900_000_000;
const MAX_LON_E7: i32 = 1_800_000_000;

/// Why a position cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// A coordinate or the accuracy is not a number (NaN or infinite).
    #[error("the {0} is not a number")]
    NotANumber(&'static str),
    /// The latitude is outside −90 to 90 degrees.
    #[error("the latitude {0} is outside -90 to 90 degrees")]
    Latitude(f64),
    /// The longitude is outside −180 to 180 degrees.
    #[error("the longitude {0} is outside -180 to 180 degrees")]
    Longitude(f64),
    /// The accuracy is negative.
    #[error("the accuracy {0} m is negative")]
    Accuracy(f64),
    /// Encoded bytes of another length, or coordinates out of range.
    #[error("a position's bytes are malformed")]
    Malformed,
}

/// A place on Earth with how exactly it is known: what the phone's GPS reported.
///
/// Every `Position` is in range: made by [`Position::new`], decoded by
/// [`Position::from_bytes`] or deserialised (the same checks run), never otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPosition", into = "RawPosition")]
pub struct Position {
    lat_e7: i32,
    lon_e7: i32,
    accuracy_m: u16,
}

/// A position as it is serialised: checked on the way in.
#[derive(Serialize, Deserialize)]
struct RawPosition {
    lat_e7: i32,
    lon_e7: i32,
    accuracy_m: u16,
}

impl TryFrom<RawPosition> for Position {
    type Error = GeoError;

    fn try_from(raw: RawPosition) -> Result<Self, GeoError> {
        Self::from_e7(raw.lat_e7, raw.lon_e7, raw.accuracy_m)
    }
}

impl From<Position> for RawPosition {
    fn from(p: Position) -> Self {
        Self {
            lat_e7: p.lat_e7,
            lon_e7: p.lon_e7,
            accuracy_m: p.accuracy_m,
        }
    }
}

/// The most blur (metres) under which a place closer than the fixes can tell is "here".
const HERE_BLUR_M: f64 = 50.0;

impl Position {
    /// A position from degrees (north and east positive) and an accuracy radius in metres, as
    /// the Geolocation API reports them. The longitude 180 is kept as −180 (the same
    /// meridian); an accuracy beyond [`MAX_ACCURACY_M`] is recorded as that.
    pub fn new(latitude: f64, longitude: f64, accuracy_m: f64) -> Result<Self, GeoError> {
        for (what, value) in [
            ("latitude", latitude),
            ("longitude", longitude),
            ("accuracy", accuracy_m),
        ] {
            if !value.is_finite() {
                return Err(GeoError::NotANumber(what));
            }
        }
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(GeoError::Latitude(latitude));
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(GeoError::Longitude(longitude));
        }
        if accuracy_m < 0.0 {
            return Err(GeoError::Accuracy(accuracy_m));
        }
        let lat_e7 = (latitude * E7).round() as i32;
        let mut lon_e7 = (longitude * E7).round() as i32;
        if lon_e7 >= MAX_LON_E7 {
            lon_e7 = -MAX_LON_E7;
        }
        Ok(Self {
            lat_e7,
            lon_e7,
            accuracy_m: accuracy_m.ceil().min(f64::from(MAX_ACCURACY_M)) as u16,
        })
    }

    fn from_e7(lat_e7: i32, lon_e7: i32, accuracy_m: u16) -> Result<Self, GeoError> {
        if !(-MAX_LAT_E7..=MAX_LAT_E7).contains(&lat_e7)
            || !(-MAX_LON_E7..MAX_LON_E7).contains(&lon_e7)
        {
            return Err(GeoError::Malformed);
        }
        Ok(Self {
            lat_e7,
            lon_e7,
            accuracy_m,
        })
    }

    /// Latitude in degrees, north positive.
    pub fn latitude(&self) -> f64 {
        f64::from(self.lat_e7) / E7
    }

    /// Longitude in degrees, east positive, from −180 up to (not including) 180.
    pub fn longitude(&self) -> f64 {
        f64::from(self.lon_e7) / E7
    }

    /// How exactly the position is known: the radius in metres within which the phone is.
    pub fn accuracy_m(&self) -> u16 {
        self.accuracy_m
    }

    /// The ten bytes messages carry: latitude, longitude (big-endian 1e-7 degrees), accuracy.
    pub fn to_bytes(&self) -> [u8; POSITION_BYTES] {
        let mut bytes = [0u8; POSITION_BYTES];
        bytes[..4].copy_from_slice(&self.lat_e7.to_be_bytes());
        bytes[4..8].copy_from_slice(&self.lon_e7.to_be_bytes());
        bytes[8..].copy_from_slice(&self.accuracy_m.to_be_bytes());
        bytes
    }

    /// A position from the bytes [`Position::to_bytes`] makes; out-of-range coordinates or
    /// another length are [`GeoError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GeoError> {
        let bytes: &[u8; POSITION_BYTES] = bytes.try_into().map_err(|_| GeoError::Malformed)?;
        let int = |range: std::ops::Range<usize>| {
            i32::from_be_bytes(bytes[range].try_into().expect("four bytes"))
        };
        Self::from_e7(
            int(0..4),
            int(4..8),
            u16::from_be_bytes([bytes[8], bytes[9]]),
        )
    }

    /// Great-circle distance to `other`, in metres.
    pub fn distance_m(&self, other: &Position) -> f64 {
        let (phi1, phi2) = (self.latitude().to_radians(), other.latitude().to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.longitude() - self.longitude()).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The direction to set off in towards `other`, in degrees clockwise from true north
    /// (0 up to 360); 0 when the two are the same place.
    pub fn bearing_deg(&self, other: &Position) -> f64 {
        let (phi1, phi2) = (self.latitude().to_radians(), other.latitude().to_radians());
        let d_lambda = (other.longitude() - self.longitude()).to_radians();
        let y = d_lambda.sin() * phi2.cos();
        let x = phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * d_lambda.cos();
        // At a pole every direction is one way (the formula would measure it from the
        // meridian of longitude 0).
        if self.lat_e7 == MAX_LAT_E7 {
            return 180.0;
        }
        if self.lat_e7 == -MAX_LAT_E7 || (y.abs() < 1e-15 && x.abs() < 1e-15) {
            return 0.0;
        }
        let bearing = y.atan2(x).to_degrees().rem_euclid(360.0);
        // A hair west of north is north, not 360.
        if bearing > 360.0 - 1e-9 {
            0.0
        } else {
            bearing
        }
    }

    /// Where `other` is from here, as people say it: "1.2 km NE", "350 m S", "here" (under
    /// 10 m, or closer than fixes good to 50 m can tell), "within 2 km" (closer than a coarse
    /// fix can tell: no direction then).
    pub fn describe(&self, other: &Position) -> String {
        let metres = self.distance_m(other);
        let blur = f64::from(self.accuracy_m.max(other.accuracy_m));
        if metres < 10.0 || (metres < blur && blur <= HERE_BLUR_M) {
            return "here".to_string();
        }
        if metres < blur {
            return format!("within {}", format_distance(blur));
        }
        format!(
            "{} {}",
            format_distance(metres),
            compass_point(self.bearing_deg(other))
        )
    }

    /// "±12 m", "±1.5 km": how exactly the position is known.
    pub fn accuracy_label(&self) -> String {
        format!("±{}", format_distance(f64::from(self.accuracy_m)))
    }

    /// "48.85837, 2.29448": the coordinates in degrees with five decimals (about a metre),
    /// as a person reads them out or types them into another map.
    pub fn coordinates(&self) -> String {
        format!("{}, {}", degrees(self.lat_e7), degrees(self.lon_e7))
    }
}

/// 1e-7 degrees as degrees with five decimals, rounded half away from zero (with integers:
/// the web app then carries no float formatting).
fn degrees(e7: i32) -> String {
    let hundred_thousandths = (i64::from(e7).abs() + 50) / 100;
    let sign = if e7 < 0 && hundred_thousandths > 0 {
        "-"
    } else {
        ""
    };
    format!(
        "{sign}{}.{:05}",
        hundred_thousandths / 100_000,
        hundred_thousandths % 100_000
    )
}

/// The nearest of the eight compass points for a bearing in degrees: "N", "NE", … "NW".
pub fn compass_point(bearing_deg: f64) -> &'static str {
    const POINTS: [&str; 8] = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
    let index = (bearing_deg.rem_euclid(360.0) / 45.0).round() as usize % 8;
    POINTS[index]
}

/// A distance as people read it: "8 m", "350 m", "1.2 km", "12 km", "1,250 km".
pub fn format_distance(metres: f64) -> String {
    let metres = if metres.is_finite() {
        metres.max(0.0)
    } else {
        0.0
    };
    if metres < 100.0 {
        return format!("{} m", metres.round() as u64);
    }
    if metres < 995.0 {
        return format!("{} m", (metres / 10.0).round() as u64 * 10);
    }
    if metres < 9_950.0 {
        let tenths = (metres / 100.0).round() as u64;
        return format!("{}.{} km", tenths / 10, tenths % 10);
    }
    let km = (metres / 1000.0).round() as u64;
    if km < 1000 {
        return format!("{km} km");
    }
    format!("{},{:03} km", km / 1000, km % 1000)
}

/// How old a fix is, as people read it: "now", "4 min ago", "2 h ago", "3 days ago".
pub fn format_age(age_ms: u64) -> String {
    let minutes = age_ms / 60_000;
    match minutes {
        0 => "now".to_string(),
        1..60 => format!("{minutes} min ago"),
        60..1440 => format!("{} h ago", minutes / 60),
        1440..2880 => "1 day ago".to_string(),
        _ => format!("{} days ago", minutes / 1440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> Position {
        Position::new(lat, lon, 5.0).unwrap()
    }

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn distance_and_bearing_match_reference_values() {
        // Land's End to John o' Groats, the reference pair of Chris Veness's "Calculate
        // distance, bearing and more between Latitude/Longitude points" (movable-type.co.uk):
        // 968.9 km, initial bearing 009°07′11″ (on R = 6,371 km; ours is 6,371.0088 km).
        let lands_end = at(
            50.0 + 3.0 / 60.0 + 59.0 / 3600.0,
            -(5.0 + 42.0 / 60.0 + 53.0 / 3600.0),
        );
        let john_o_groats = at(
            58.0 + 38.0 / 60.0 + 38.0 / 3600.0,
            -(3.0 + 4.0 / 60.0 + 12.0 / 3600.0),
        );
        close(lands_end.distance_m(&john_o_groats), 968_900.0, 100.0);
        close(
            lands_end.bearing_deg(&john_o_groats),
            9.0 + 7.0 / 60.0 + 11.0 / 3600.0,
            0.001,
        );
        assert_eq!(lands_end.describe(&john_o_groats), "969 km N");
        // One degree of longitude on the equator: 2πR/360.
        close(at(0.0, 0.0).distance_m(&at(0.0, 1.0)), 111_195.08, 0.01);
        close(at(0.0, 0.0).bearing_deg(&at(0.0, 1.0)), 90.0, 1e-9);
        close(at(0.0, 1.0).bearing_deg(&at(0.0, 0.0)), 270.0, 1e-9);
        close(at(1.0, 0.0).bearing_deg(&at(0.0, 0.0)), 180.0, 1e-9);
    }

    #[test]
    fn the_poles_and_the_date_line() {
        let north = at(90.0, 0.0);
        let south = at(-90.0, 45.0);
        close(
            north.distance_m(&south),
            std::f64::consts::PI * EARTH_RADIUS_M,
            0.01,
        );
        // From the North Pole every way is south; to it every way is north.
        close(north.bearing_deg(&at(10.0, 77.0)), 180.0, 1e-6);
        close(at(10.0, 77.0).bearing_deg(&north), 0.0, 1e-6);
        // Across the date line: 0.2° of longitude on the equator, due east, not round the world.
        let west_of = at(0.0, 179.9);
        let east_of = at(0.0, -179.9);
        close(west_of.distance_m(&east_of), 22_239.0, 1.0);
        close(west_of.bearing_deg(&east_of), 90.0, 1e-6);
        assert_eq!(west_of.describe(&east_of), "22 km E");
        // 180° and −180° are one meridian, stored once.
        assert_eq!(at(12.0, 180.0), at(12.0, -180.0));
        close(at(12.0, 180.0).longitude(), -180.0, 0.0);
        // Antipodes: half the circumference.
        close(
            at(0.0, 0.0).distance_m(&at(0.0, -180.0)),
            std::f64::consts::PI * EARTH_RADIUS_M,
            0.01,
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_clear_error() {
        assert_eq!(
            Position::new(f64::NAN, 0.0, 5.0),
            Err(GeoError::NotANumber("latitude"))
        );
        assert_eq!(
            Position::new(0.0, f64::INFINITY, 5.0),
            Err(GeoError::NotANumber("longitude"))
        );
        assert_eq!(
            Position::new(0.0, 0.0, f64::NAN),
            Err(GeoError::NotANumber("accuracy"))
        );
        assert_eq!(
            Position::new(90.0001, 0.0, 5.0),
            Err(GeoError::Latitude(90.0001))
        );
        assert_eq!(
            Position::new(-91.0, 0.0, 5.0),
            Err(GeoError::Latitude(-91.0))
        );
        assert_eq!(
            Position::new(0.0, 180.5, 5.0),
            Err(GeoError::Longitude(180.5))
        );
        assert_eq!(
            Position::new(0.0, -181.0, 5.0),
            Err(GeoError::Longitude(-181.0))
        );
        assert_eq!(Position::new(0.0, 0.0, -1.0), Err(GeoError::Accuracy(-1.0)));
        assert_eq!(
            Position::new(91.0, 0.0, 5.0).unwrap_err().to_string(),
            "the latitude 91 is outside -90 to 90 degrees"
        );
        // A fix known only to 100 km is kept as the worst accuracy recorded.
        assert_eq!(
            Position::new(0.0, 0.0, 1e5).unwrap().accuracy_m(),
            MAX_ACCURACY_M
        );
        assert_eq!(Position::new(0.0, 0.0, 4.2).unwrap().accuracy_m(), 5);
    }

    #[test]
    fn ten_bytes_round_trip_to_a_centimetre_and_bad_bytes_are_refused() {
        for (lat, lon) in [
            (48.858_370_1, 2.294_481_3),
            (-33.856_784, 151.215_297),
            (90.0, 0.0),
            (-90.0, -180.0),
            (0.0, 179.999_999_9),
        ] {
            let p = Position::new(lat, lon, 12.0).unwrap();
            let bytes = p.to_bytes();
            assert_eq!(bytes.len(), POSITION_BYTES);
            let back = Position::from_bytes(&bytes).unwrap();
            assert_eq!(back, p);
            close(back.latitude(), lat, 1e-7);
            close(back.longitude(), lon, 1e-7);
            assert!(p.distance_m(&back) < 0.01);
        }
        assert_eq!(Position::from_bytes(&[0; 9]), Err(GeoError::Malformed));
        assert_eq!(Position::from_bytes(&[0; 11]), Err(GeoError::Malformed));
        let mut north_of_the_pole = at(0.0, 0.0).to_bytes();
        north_of_the_pole[..4].copy_from_slice(&900_000_001i32.to_be_bytes());
        assert_eq!(
            Position::from_bytes(&north_of_the_pole),
            Err(GeoError::Malformed)
        );
        let mut east_of_180 = at(0.0, 0.0).to_bytes();
        east_of_180[4..8].copy_from_slice(&1_800_000_000i32.to_be_bytes());
        assert_eq!(Position::from_bytes(&east_of_180), Err(GeoError::Malformed));
        // Deserialising runs the same checks.
        let raw = postcard::to_allocvec(&RawPosition {
            lat_e7: i32::MAX,
            lon_e7: 0,
            accuracy_m: 1,
        })
        .unwrap();
        assert!(postcard::from_bytes::<Position>(&raw).is_err());
        let good = postcard::to_allocvec(&at(1.0, 2.0)).unwrap();
        assert_eq!(
            postcard::from_bytes::<Position>(&good).unwrap(),
            at(1.0, 2.0)
        );
    }

    #[test]
    fn distances_bearings_and_ages_read_as_people_say_them() {
        assert_eq!(format_distance(7.6), "8 m");
        assert_eq!(format_distance(349.0), "350 m");
        assert_eq!(format_distance(999.0), "1.0 km");
        assert_eq!(format_distance(1_234.0), "1.2 km");
        assert_eq!(format_distance(9_949.0), "9.9 km");
        assert_eq!(format_distance(12_400.0), "12 km");
        assert_eq!(format_distance(1_250_400.0), "1,250 km");
        assert_eq!(format_distance(f64::NAN), "0 m");
        for (bearing, point) in [
            (0.0, "N"),
            (22.4, "N"),
            (22.6, "NE"),
            (90.0, "E"),
            (200.0, "S"),
            (250.0, "W"),
            (337.6, "N"),
            (359.9, "N"),
            (-45.0, "NW"),
        ] {
            assert_eq!(compass_point(bearing), point, "{bearing}");
        }
        let here = at(51.5, -0.12);
        let near = Position::new(51.5001, -0.12, 30.0).unwrap();
        assert_eq!(here.describe(&near), "here");
        let ne = at(51.5 + 0.0076, -0.12 + 0.0122);
        assert_eq!(here.describe(&ne), "1.2 km NE");
        // A coarse fix (a phone locating by mobile masts: ±20 km) cannot say "here" of a
        // place 12 km away; it says how far it can tell.
        let coarse = Position::new(51.5, -0.12, 20_000.0).unwrap();
        let town = at(51.5 + 0.1, -0.12 + 0.1);
        assert_eq!(coarse.describe(&town), "within 20 km");
        assert_eq!(town.describe(&coarse), "within 20 km");
        // Up to 50 m of blur is "here".
        let fifty = Position::new(51.5, -0.12, 50.0).unwrap();
        assert_eq!(
            fifty.describe(&Position::new(51.5003, -0.12, 5.0).unwrap()),
            "here"
        );
        assert_eq!(at(1.0, 1.0).accuracy_label(), "±5 m");
        assert_eq!(
            Position::new(1.0, 1.0, 1500.0).unwrap().accuracy_label(),
            "±1.5 km"
        );
        assert_eq!(at(48.858_37, 2.294_481).coordinates(), "48.85837, 2.29448");
        assert_eq!(
            at(-33.856_784, 151.215_297).coordinates(),
            "-33.85678, 151.21530"
        );
        assert_eq!(
            at(-0.000_004, -179.999_996).coordinates(),
            "0.00000, -180.00000"
        );
        assert_eq!(at(-0.000_005, 0.000_005).coordinates(), "-0.00001, 0.00001");
        assert_eq!(format_age(59_999), "now");
        assert_eq!(format_age(4 * 60_000 + 10), "4 min ago");
        assert_eq!(format_age(3 * 3_600_000), "3 h ago");
        assert_eq!(format_age(25 * 3_600_000), "1 day ago");
        assert_eq!(format_age(80 * 3_600_000), "3 days ago");
    }
}
