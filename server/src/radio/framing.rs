//! How radio frames travel over the serial line: the protocols of `mesh::serial` behind
//! [`Framing`], chosen by [`Protocol`].

pub use mesh::serial::{Framing, Kiss, Line, RnodeSettings, MAX_LINE_BYTES};

/// The serial protocols a radio may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// KISS framing (RNode firmware, KISS TNCs).
    Kiss,
    /// One base64 frame per text line (the DIY ESP32 sketch).
    Line,
}

/// Makes the framing for `protocol`.
pub fn framing(protocol: Protocol, rnode: Option<RnodeSettings>) -> Box<dyn Framing> {
    match protocol {
        Protocol::Kiss => Box::new(Kiss::new(rnode)),
        Protocol::Line => Box::new(Line::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::serial::kiss_encode;

    fn frame(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(n) ^ 0xC0).collect()
    }

    /// The framing unit tests every protocol passes: whole frames, frames split anywhere,
    /// garbage before and between, oversize input, and resync after it.
    fn contract(mut make: impl FnMut() -> Box<dyn Framing>) {
        let a = frame(3, 40);
        let b = frame(7, 120);
        // Whole frames, back to back.
        let mut f = make();
        let mut bytes = f.encode(&a);
        bytes.extend(f.encode(&b));
        assert_eq!(f.decode(&bytes), vec![a.clone(), b.clone()]);
        // Split at every position: a partial frame waits for the rest.
        for cut in 0..bytes.len() {
            let mut f = make();
            let mut got = f.decode(&bytes[..cut]);
            got.extend(f.decode(&bytes[cut..]));
            assert_eq!(got, vec![a.clone(), b.clone()], "cut at {cut}");
        }
        // Garbage before and between frames is skipped.
        let mut f = make();
        let mut noisy = b"boot: rst:0x1 (POWERON)\r\n\xff\xfe".to_vec();
        noisy.extend(f.encode(&a));
        noisy.extend(b"\x01\x02 noise \n");
        noisy.extend(f.encode(&b));
        assert_eq!(f.decode(&noisy), vec![a.clone(), b.clone()]);
        // Oversize input is dropped and the next frame still decodes.
        let mut f = make();
        let mut huge = f.encode(&vec![0x41; 4000]);
        huge.extend(f.encode(&a));
        assert_eq!(f.decode(&huge), vec![a.clone()]);
        assert!(f.dropped() >= 1);
        // Empty input yields nothing.
        assert!(make().decode(&[]).is_empty());
    }

    #[test]
    fn kiss_framing_keeps_the_contract() {
        contract(|| Box::new(Kiss::new(None)));
    }

    #[test]
    fn line_framing_keeps_the_contract() {
        contract(|| Box::new(Line::new()));
    }

    #[test]
    fn kiss_escapes_delimiters_and_skips_other_commands() {
        let mut kiss = Kiss::new(None);
        let bytes = kiss.encode(&[0xC0, 0xDB, 1]);
        assert_eq!(bytes, vec![0xC0, 0, 0xDB, 0xDC, 0xDB, 0xDD, 1, 0xC0]);
        let mut stream = kiss_encode(0x23, &[1, 2]); // an RNode signal report
        stream.extend(&bytes);
        assert_eq!(kiss.decode(&stream), vec![vec![0xC0, 0xDB, 1]]);
    }

    #[test]
    fn kiss_configures_an_rnode_only_when_asked() {
        assert!(Kiss::new(None).configure().is_empty());
        let settings = RnodeSettings {
            frequency_hz: 868_100_000,
            bandwidth_hz: 125_000,
            tx_power_dbm: 14,
            spreading_factor: 9,
            coding_rate: 5,
        };
        let frames = Kiss::new(Some(settings)).configure();
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[0], kiss_encode(0x01, &868_100_000u32.to_be_bytes()));
        assert_eq!(frames[5], kiss_encode(0x06, &[1]));
    }

    #[test]
    fn line_skips_lines_that_are_not_frames() {
        let mut line = Line::new();
        let mut stream = b"LoRa init ok\n\n!!!!\n".to_vec();
        stream.extend(line.encode(&[1, 2, 3]));
        assert_eq!(line.decode(&stream), vec![vec![1, 2, 3]]);
        assert_eq!(line.dropped(), 2);
    }
}
