//! The sheets a room opens: the invite (QR code and link), this device's radio, and the
//! people in the room with their safety codes.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::either::EitherOf3;
use leptos::prelude::*;
use mesh::radio::NetworkKey;
use mesh::serial::{
    Protocol, RnodeSettings, DEFAULT_BANDWIDTH_HZ, DEFAULT_CODING_RATE, DEFAULT_SPREADING_FACTOR,
    DEFAULT_TX_POWER_DBM,
};

use crate::chat::{ChatClient, Connection, RadioSettings};

/// LoRa bandwidths an RNode offers, in Hz.
const BANDWIDTHS_HZ: [u32; 10] = [
    7_800, 10_400, 15_600, 20_800, 31_250, 41_700, 62_500, 125_000, 250_000, 500_000,
];

/// A QR code as SVG markup: only rectangles drawn from the text's bits, never the text itself.
pub(super) fn qr_svg(text: &str) -> String {
    qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build()
        })
        .unwrap_or_default()
}

/// Shows a QR code and link that bring the next phone to this server and room.
#[component]
pub(super) fn ShareSheet(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let copied = RwSignal::new(None::<bool>);
    let room = move || {
        state
            .session
            .with(|s| s.as_ref().map(|s| s.room.clone()))
            .unwrap_or_default()
    };
    let link = move || {
        let origin = window().location().origin().unwrap_or_default();
        let invite = state
            .session
            .with(|s| s.as_ref().map(|s| s.invite.clone()))
            .unwrap_or_default();
        format!("{origin}/#{invite}")
    };
    view! {
        <Show when=move || open.get()>
            <div class="sheet" role="dialog" aria-label="Invite someone" data-testid="share-sheet">
                <h3>"Invite someone"</h3>
                <p class="hint">"Let them scan this with their camera. It opens FieldMesh on this server, in this room. The link holds the room's key: whoever has it can read the room."</p>
                <div class="qr" data-testid="invite-qr" inner_html=move || qr_svg(&link())></div>
                <input class="link" readonly data-testid="invite-link" prop:value=link on:focus=move |event| {
                    event_target::<leptos::web_sys::HtmlInputElement>(&event).select();
                }/>
                <div class="sheet-row">
                    <button class="primary" data-testid="invite-copy" on:click=move |_| {
                        copied.set(None);
                        client.copy(&link(), move |done| copied.set(Some(done)));
                    }>
                        {move || match copied.get() {
                            Some(true) => "Copied ✓",
                            Some(false) => "Copy failed: select the link",
                            None => "Copy link",
                        }}
                    </button>
                    <Show when=move || state.can_share.get()>
                        <button class="primary" data-testid="invite-share" on:click=move |_| {
                            client.share(&format!("Join {} on FieldMesh", room()), &link());
                        }>"Share…"</button>
                    </Show>
                </div>
                <button class="ghost small" data-testid="share-close" on:click=move |_| {
                    copied.set(None);
                    open.set(false);
                }>"Done"</button>
            </div>
        </Show>
    }
}

/// This browser's own USB radio (Web Serial): connect, settings, state, counters, lending.
#[component]
pub(super) fn RadioPanel(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let protocol = RwSignal::new(Protocol::default());
    let baud = RwSignal::new(String::new());
    let frequency = RwSignal::new(String::new());
    let bandwidth = RwSignal::new(DEFAULT_BANDWIDTH_HZ);
    let spreading = RwSignal::new(DEFAULT_SPREADING_FACTOR);
    let coding = RwSignal::new(DEFAULT_CODING_RATE);
    let power = RwSignal::new(DEFAULT_TX_POWER_DBM.to_string());
    let is_meshtastic = move || protocol.get() == Protocol::Meshtastic;
    let is_rnode = move || !is_meshtastic() && frequency.with(|f| !f.trim().is_empty());
    let channel = RwSignal::new(String::new());
    let mesh_words = RwSignal::new(None::<String>);
    let open_mesh = RwSignal::new(false);
    let show_key = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let radio = move || state.web_radio.get();
    // What the person typed, or else the key this camp's server gave.
    let words = move || {
        mesh_words
            .get()
            .or_else(|| state.web_radio.with(|r| r.camp_key_words.clone()))
            .unwrap_or_default()
    };
    let baud_hint = move || {
        let chosen = protocol.get();
        format!(
            "{} (usual for {})",
            chosen.default_baud(),
            chosen.short_label()
        )
    };
    let connect = move |_| {
        let baud_text = baud.get_untracked();
        let default_baud = protocol.get_untracked().default_baud();
        let baud_value = if baud_text.trim().is_empty() {
            default_baud
        } else {
            match baud_text.trim().parse::<u32>() {
                Ok(b) if (300..=4_000_000).contains(&b) => b,
                _ => {
                    return error.set(Some(format!(
                        "The speed is a number of baud, such as {}.",
                        Protocol::default().default_baud()
                    )))
                }
            }
        };
        let frequency_text = frequency.get_untracked();
        let meshtastic = protocol.get_untracked() == Protocol::Meshtastic;
        let rnode = if meshtastic || frequency_text.trim().is_empty() {
            None
        } else {
            let frequency_hz = match frequency_text.trim().parse::<f64>() {
                Ok(mhz) if (100.0..=1_000.0).contains(&mhz) => (mhz * 1_000_000.0).round() as u32,
                _ => return error.set(Some("The frequency is in MHz, such as 868.1.".into())),
            };
            let power =
                match power.get_untracked().trim().parse::<u8>() {
                    Ok(dbm) if dbm <= 22 => dbm,
                    _ => return error.set(Some(
                        "The power is in dBm, from 0 to 22 (and no more than your country allows)."
                            .into(),
                    )),
                };
            Some(RnodeSettings {
                frequency_hz,
                bandwidth_hz: bandwidth.get_untracked(),
                tx_power_dbm: power,
                spreading_factor: spreading.get_untracked(),
                coding_rate: coding.get_untracked(),
            })
        };
        let network_key = if open_mesh.get_untracked() {
            NetworkKey::open_mesh()
        } else {
            let typed = words();
            if typed.trim().is_empty() {
                return error.set(Some(
                    "Type your mesh's 12-word network key (a camp's operator has it), or choose the open mesh.".into(),
                ));
            }
            match NetworkKey::from_words(&typed) {
                Ok(key) => key,
                Err(_) => {
                    return error.set(Some(
                        "That is not a network key: it is 12 words from the list, and one of these is mistyped or missing.".into(),
                    ))
                }
            }
        };
        error.set(None);
        client.radio_connect(RadioSettings {
            protocol: protocol.get_untracked(),
            baud: baud_value,
            rnode,
            network_key: network_key.to_bytes(),
            meshtastic_channel: if meshtastic {
                channel.get_untracked().trim().to_string()
            } else {
                String::new()
            },
        });
    };
    let skew = move || {
        radio().clock_skew_minutes.map(|minutes| {
            format!(
                "A radio is heard whose clock is {} minutes {} this device's: its frames are refused until the clocks agree within 10 minutes. Check the time on both.",
                minutes.unsigned_abs(),
                if minutes < 0 { "behind" } else { "ahead of" }
            )
        })
    };
    view! {
        <Show when=move || open.get()>
            <div class="sheet radio-panel" role="dialog" aria-label="This device's radio" data-testid="radio-panel">
                <h3>"Radio on this device"</h3>
                {move || if !radio().supported {
                    EitherOf3::A(view! {
                        <p class="hint" data-testid="radio-unsupported">
                            "This browser cannot talk to a USB radio: Web Serial works in Chrome or Edge on a computer, not in Firefox, Safari or most phones. Your messages still travel through the server, and through its radio if it has one."
                        </p>
                    })
                } else if radio().connected {
                    EitherOf3::B(view! {
                        <p data-testid="radio-state"><strong>{move || radio().status}</strong>" · "{move || radio().protocol.name()}" · "<span data-testid="radio-mesh">{move || radio().mesh}</span></p>
                        <p class="error" role="alert" data-testid="radio-skew">{skew}</p>
                        <p class="hint" data-testid="radio-counters">
                            {move || { let r = radio(); format!("{} frames heard · {} sent · {} errors", r.frames_in, r.frames_out, r.errors) }}
                        </p>
                        <Show when=move || radio().protocol != Protocol::Meshtastic fallback=|| view! {
                            <p class="hint">"A Meshtastic node is not lent to the server: plug it into the camp's laptop instead (--radio-protocol meshtastic)."</p>
                        }>
                            <label class="check">
                                <input type="checkbox" data-testid="radio-lend" prop:checked=move || radio().lending
                                    prop:disabled=move || state.connection.get() != Connection::Online
                                    on:change=move |event| client.radio_lend(event_target_checked(&event))/>
                                " Lend this radio to the server (its phones then reach the mesh through it)"
                            </label>
                        </Show>
                        <p class="hint" data-testid="radio-lend-detail">{move || radio().lend_detail.unwrap_or_default()}</p>
                        <button class="danger" data-testid="radio-disconnect" on:click=move |_| client.radio_disconnect()>"Disconnect"</button>
                    })
                } else {
                    EitherOf3::C(view! {
                        <p class="hint">"Plug a LoRa radio into this device's USB port and connect it: messages then reach other camps over the radio even with no server here."</p>
                        <p data-testid="radio-state">{move || radio().status}</p>
                        <label>"Protocol "
                            <select data-testid="radio-protocol" on:change=move |event| {
                                if let Ok(chosen) = event_target_value(&event).parse() {
                                    protocol.set(chosen);
                                }
                            }>
                                {Protocol::ALL.map(|p| view! {
                                    <option value=p.name() selected=p == Protocol::default()>{p.label()}</option>
                                })}
                            </select>
                        </label>
                        <label>"Speed (baud) "
                            <input inputmode="numeric" placeholder=baud_hint data-testid="radio-baud"
                                prop:value=baud on:input=move |event| baud.set(event_target_value(&event))/>
                        </label>
                        <Show when=move || !is_meshtastic()>
                            <label>"RNode frequency (MHz; leave empty for other radios) "
                                <input inputmode="decimal" placeholder="868.1" data-testid="radio-frequency"
                                    prop:value=frequency on:input=move |event| frequency.set(event_target_value(&event))/>
                            </label>
                        </Show>
                        <Show when=is_meshtastic>
                            <label>"Meshtastic channel (name or 0–7; empty: the node's primary) "
                                <input autocomplete="off" autocapitalize="none" spellcheck="false" placeholder="FieldMesh"
                                    data-testid="radio-channel" prop:value=channel
                                    on:input=move |event| channel.set(event_target_value(&event))/>
                            </label>
                            <p class="hint">"FieldMesh's sealed frames travel on this channel of your Meshtastic node; every camp's node needs it, with the same name and key. The node floods them by itself. Its region and preset stay as set in the Meshtastic app."</p>
                        </Show>
                        <Show when=is_rnode>
                            <div class="rnode" data-testid="radio-rnode">
                                <Choice label="Bandwidth " testid="radio-bandwidth" value=bandwidth
                                    options=BANDWIDTHS_HZ.map(|hz| (hz, format!("{} kHz", f64::from(hz) / 1000.0))).to_vec()/>
                                <Choice label="Spreading factor " testid="radio-spreading" value=spreading
                                    options=(7u8..=12).map(|sf| (sf, format!("SF{sf}"))).collect()/>
                                <Choice label="Coding rate " testid="radio-coding" value=coding
                                    options=(5u8..=8).map(|cr| (cr, format!("4/{cr}"))).collect()/>
                                <label>"Power (dBm) "
                                    <input inputmode="numeric" data-testid="radio-power"
                                        prop:value=power on:input=move |event| power.set(event_target_value(&event))/>
                                </label>
                                <p class="hint">"Every camp's RNode must use the same frequency, bandwidth, spreading factor and coding rate. A higher spreading factor reaches further but carries less."</p>
                            </div>
                        </Show>
                        <label>"Mesh network key (12 words) "
                            <textarea class="words" rows="2" autocomplete="off" autocapitalize="none" spellcheck="false"
                                placeholder="the 12 words from a camp's operator" data-testid="radio-network-key"
                                prop:disabled=move || open_mesh.get()
                                prop:value=words on:input=move |event| mesh_words.set(Some(event_target_value(&event)))></textarea>
                        </label>
                        <p class="hint">{move || if state.web_radio.with(|r| r.camp_key_words.is_some()) && mesh_words.get().is_none() {
                            "Filled in from your camp's server."
                        } else {
                            "Every camp of one mesh uses the same key; frames without it are ignored."
                        }}</p>
                        <label class="check">
                            <input type="checkbox" data-testid="radio-open-mesh" prop:checked=move || open_mesh.get()
                                on:change=move |event| open_mesh.set(event_target_checked(&event))/>
                            " Use the open mesh instead (reaches any FieldMesh camp, but strangers' frames get in too)"
                        </label>
                        <p class="error" role="alert">{move || error.get()}</p>
                        <button class="primary" data-testid="radio-connect" on:click=connect>"Connect a radio"</button>
                    })
                }}
                {move || state.web_radio.with(|r| r.camp_key_words.clone()).map(|camp_words| view! {
                    <details class="mesh-key" prop:open=move || show_key.get()
                        on:toggle=move |event| show_key.set(event_target::<leptos::web_sys::HtmlDetailsElement>(&event).open())>
                        <summary data-testid="radio-show-key">"Give the mesh network key to another camp"</summary>
                        <p class="hint">"Read these words out, or let their operator scan the code. Whoever has them can send on your mesh."</p>
                        <p class="words" data-testid="radio-key-words"><code>{camp_words.clone()}</code></p>
                        <Show when=move || show_key.get()>
                            <div class="qr" data-testid="radio-key-qr" inner_html={let w = camp_words.clone(); move || qr_svg(&w)}></div>
                        </Show>
                    </details>
                })}
                <button class="ghost small" data-testid="radio-close" on:click=move |_| open.set(false)>"Close"</button>
            </div>
        </Show>
    }
}

/// Everyone in the room with their safety codes; compare a code with the person's own phone
/// and mark them verified.
#[component]
pub(super) fn Roster(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    view! {
        <Show when=move || open.get()>
            <div class="sheet roster" role="dialog" aria-label="People in this room" data-testid="roster">
                <h3>"People here"</h3>
                <p class="hint">
                    "Your safety code: " <b data-testid="own-code">{move || state.own_code.get()}</b>
                    <br/>
                    "Ask each person to read their code from their own phone. If it matches, mark them verified."
                </p>
                <ul class="people">
                    <For
                        each=move || state.roster.get()
                        key=|entry| (entry.id.clone(), entry.verified, entry.keys_changed)
                        children=move |entry| {
                            let id = entry.id.clone();
                            view! {
                                <li class:changed=entry.keys_changed data-testid="roster-entry">
                                    <span class="who">
                                        <b data-testid="roster-name">{entry.name.clone()}</b>
                                        {entry.you.then_some(" (you)")}
                                        {entry.verified.then_some(view! { <span class="verified" data-testid="verified">" ✓ verified"</span> })}
                                        {entry.keys_changed.then_some(view! { <span class="warn">" ⚠ new keys"</span> })}
                                    </span>
                                    <code data-testid="roster-code">{entry.code.clone()}</code>
                                    {(!entry.you && !entry.verified).then(|| {
                                        let id = id.clone();
                                        view! {
                                            <button class="ghost small" data-testid="mark-verified" on:click=move |_| client.verify(&id)>
                                                "Codes match: mark verified"
                                            </button>
                                        }
                                    })}
                                    {(!entry.you).then(|| view! {
                                        <button class="ghost small" data-testid="message-privately" on:click=move |_| {
                                            open.set(false);
                                            client.open_direct(&id);
                                        }>
                                            "Message privately"
                                        </button>
                                    })}
                                </li>
                            }
                        }
                    />
                </ul>
                <button class="primary" data-testid="roster-close" on:click=move |_| open.set(false)>"Done"</button>
            </div>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_are_svg_without_the_text() {
        let svg = qr_svg("https://x/#room=<script>");
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(!svg.contains("<script>"));
    }
}

/// A labelled list of numbered choices (the RNode's settings), bound to `value`.
#[component]
fn Choice<T>(
    label: &'static str,
    testid: &'static str,
    value: RwSignal<T>,
    options: Vec<(T, String)>,
) -> impl IntoView
where
    T: Copy + PartialEq + std::fmt::Display + std::str::FromStr + Send + Sync + 'static,
{
    view! {
        <label>{label}
            <select data-testid=testid on:change=move |event| {
                if let Ok(chosen) = event_target_value(&event).parse() { value.set(chosen); }
            }>
                {options.into_iter().map(|(option, text)| view! {
                    <option value=option.to_string() selected=move || value.get() == option>{text}</option>
                }).collect_view()}
            </select>
        </label>
    }
}

/// "Export this room": what this device holds of the room, saved as a file.
#[component]
pub(super) fn ExportSheet(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let export = move |html: bool| {
        open.set(false);
        client.export_room(html);
    };
    view! {
        <Show when=move || open.get()>
            <div class="sheet" role="dialog" aria-label="Export this room" data-testid="export-sheet"
                on:keydown=move |event: leptos::ev::KeyboardEvent| if event.key() == "Escape" { open.set(false) }>
                <h3>"Export this room"</h3>
                <p class="hint">
                    "Saves every message this phone holds of this room as a file, for a report or \
                     a handover: names, times, text, places, file names and who you verified. It \
                     is made here, with this phone's keys: anyone you give the file to can read it."
                </p>
                <div class="sheet-column">
                    <button class="primary" data-testid="export-html" on:click=move |_| export(true)>"Transcript to read or print (HTML)"</button>
                    <button class="primary" data-testid="export-jsonl" on:click=move |_| export(false)>"Data for tools (JSON Lines)"</button>
                    <button class="ghost" data-testid="export-close" on:click=move |_| open.set(false)>"Cancel"</button>
                </div>
            </div>
        </Show>
    }
}
