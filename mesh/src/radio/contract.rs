//! The radio link contract: one suite every implementation of [`super::link`] passes (the
//! server's serial link over real pseudo-terminals, the lent browser radio, the page's Web
//! Serial port in headless Chromium). Like meshtastic/web's `runTransportContract`, it is
//! written once and run by each implementation's own tests with a [`Radio`] harness for the
//! device side. Runtime-agnostic: the caller bounds the whole run with its own timeout, and
//! `step` names what is being checked, so a timeout can say where it stopped.

use std::future::Future;

use super::link::{FrameSink, LinkEvent, LinkEvents};

/// The device side of a link under test: a radio the test controls.
pub trait Radio {
    /// The radio hands its host `frame`, as heard over the air.
    fn hear(&mut self, frame: &[u8]) -> impl Future<Output = ()>;
    /// The radio sends its host bytes that are no frame (a boot message, line noise).
    fn babble(&mut self) -> impl Future<Output = ()>;
    /// The radio hands its host a frame far over the size limit.
    fn hear_oversize(&mut self) -> impl Future<Output = ()>;
    /// The next frame the host handed the radio to transmit.
    fn transmitted(&mut self) -> impl Future<Output = Vec<u8>>;
    /// The radio is pulled out.
    fn unplug(&mut self) -> impl Future<Output = ()>;
    /// The radio is plugged back in.
    fn replug(&mut self) -> impl Future<Output = ()>;
}

async fn up(link: &mut impl LinkEvents) {
    loop {
        match link.next_event().await {
            Some(LinkEvent::Up(_)) => return,
            Some(
                LinkEvent::Noise(_)
                | LinkEvent::Down(_)
                | LinkEvent::Channel(_)
                | LinkEvent::Text(_),
            ) => {}
            Some(LinkEvent::Frame(frame)) => {
                panic!("a frame ({} bytes) before the link was up", frame.len())
            }
            None => panic!("the link closed instead of coming up"),
        }
    }
}

async fn frame(link: &mut impl LinkEvents) -> Vec<u8> {
    loop {
        match link.next_event().await {
            Some(LinkEvent::Frame(frame)) => return frame,
            Some(LinkEvent::Noise(_) | LinkEvent::Channel(_) | LinkEvent::Text(_)) => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

async fn down(link: &mut impl LinkEvents) {
    loop {
        match link.next_event().await {
            Some(LinkEvent::Down(_)) | None => return,
            Some(LinkEvent::Noise(_) | LinkEvent::Channel(_) | LinkEvent::Text(_)) => {}
            other => panic!("expected the link to go down, got {other:?}"),
        }
    }
}

/// Runs the contract: the link comes up; frames go both ways intact (delimiter bytes inside
/// included); noise between frames is skipped; an oversize frame is dropped and the next one
/// still arrives; unplugged, the link says so and a frame handed to it meanwhile neither
/// blocks nor comes out later; plugged back in, it comes up again and frames flow both ways.
pub async fn check<L, R>(link: &mut L, radio: &mut R, mut step: impl FnMut(&'static str))
where
    L: FrameSink + LinkEvents,
    R: Radio,
{
    step("the link comes up");
    up(link).await;

    step("a frame with delimiter bytes goes from the host to the radio");
    let out: Vec<u8> = (0..=170u8).map(|i| i.wrapping_mul(37) | 0xC0).collect();
    assert!(link.transmit(&out), "an up link takes a frame");
    assert_eq!(radio.transmitted().await, out);

    step("a frame goes from the radio to the host");
    radio.hear(&out[..100]).await;
    assert_eq!(frame(link).await, &out[..100]);

    step("noise between frames is skipped");
    radio.babble().await;
    radio.hear(b"after the noise").await;
    assert_eq!(frame(link).await, b"after the noise");

    step("an oversize frame is dropped and the next one arrives");
    radio.hear_oversize().await;
    radio.hear(b"after the oversize frame").await;
    assert_eq!(frame(link).await, b"after the oversize frame");

    step("unplugged, the link goes down");
    radio.unplug().await;
    down(link).await;
    // Dropped, as on the air: it must not block, nor come out after the replug.
    let _ = link.transmit(b"into the void");

    step("plugged back in, the link comes up again");
    radio.replug().await;
    up(link).await;

    step("frames flow both ways after the replug");
    radio.hear(b"after the replug").await;
    assert_eq!(frame(link).await, b"after the replug");
    assert!(link.transmit(b"still here"), "the link takes frames again");
    assert_eq!(radio.transmitted().await, b"still here");
}
