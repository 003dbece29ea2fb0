//! The mesh network key on this server: from the operator, or made once and kept in the data
//! folder, and shown to the operator (never logged) to give to the other camps.

use std::path::Path;

use mesh::radio::NetworkKey;

use crate::config::Config;
use crate::error::ServerError;

/// The file in the data folder that keeps the key this server made.
pub const KEY_FILE: &str = "radio-network-key";
/// What stands for the open mesh's key where words are expected.
pub const OPEN: &str = "open";

/// Reads a key as the operator writes it: 12 words, or "open".
pub fn parse(text: &str) -> Result<NetworkKey, ServerError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case(OPEN) {
        return Ok(NetworkKey::open_mesh());
    }
    NetworkKey::from_words(text)
        .map_err(|error| ServerError::Refused(format!("the radio network key: {error}")))
}

/// The key this server uses: the flag's, the file's, or the one kept in the data folder
/// (made now when this server carries radio frames and has none). `None` when it carries no
/// radio frames and was given no key.
pub fn load(config: &Config, data_dir: &Path) -> Result<Option<NetworkKey>, ServerError> {
    if let Some(words) = &config.radio_network_key {
        return parse(words).map(Some);
    }
    if let Some(file) = &config.radio_network_key_file {
        let text = std::fs::read_to_string(file).map_err(|source| ServerError::Io {
            context: format!("cannot read the radio network key from {}", file.display()),
            source,
        })?;
        return parse(text.lines().next().unwrap_or_default()).map(Some);
    }
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse(&text).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServerError::Io {
                context: format!("cannot read {}", path.display()),
                source,
            })
        }
    }
    if !config.uses_radio() && !config.show_radio_key {
        return Ok(None);
    }
    let mut bytes = [0u8; mesh::radio::network::NETWORK_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| {
        ServerError::Refused(format!("no randomness for a radio network key: {error}"))
    })?;
    let key = NetworkKey::from_bytes(bytes);
    std::fs::create_dir_all(data_dir).map_err(|source| ServerError::Io {
        context: format!("cannot create {}", data_dir.display()),
        source,
    })?;
    crate::tls::write_private(&path, &format!("{}\n", key.to_words()))?;
    tracing::info!(
        fingerprint = %key.fingerprint(),
        "made a new radio network key; give it to the other camps (fieldmesh --show-radio-key)"
    );
    Ok(Some(key))
}

/// The key for the operator's screen: its words, a QR code of them, and what to do.
pub fn show(key: &NetworkKey) -> String {
    if key.is_open_mesh() {
        return "This camp uses the open mesh: any FieldMesh camp hears it, and so can anyone \
                else with a radio. Set a key with --radio-network-key to keep strangers' \
                frames out.\n"
            .into();
    }
    let words = key.to_words();
    let qr = crate::serve::terminal_qr(&words).unwrap_or_default();
    format!(
        "Radio network key (fingerprint {}):\n\n    {words}\n\n{qr}\nGive these 12 words to every \
         camp of your mesh (read them out, or let them scan the code): they start FieldMesh \
         with --radio-network-key-file holding them. Phones that entered the join code get it \
         from this server.\n",
        key.fingerprint()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("fieldmesh").chain(args.iter().copied()))
    }

    #[test]
    fn a_radio_server_makes_its_key_once_and_keeps_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // No radio, no key: none is made.
        assert_eq!(load(&config(&[]), &data).unwrap(), None);
        assert!(!data.join(KEY_FILE).exists());
        let radio = config(&["--radio", "/dev/null"]);
        let made = load(&radio, &data).unwrap().unwrap();
        assert!(!made.is_open_mesh());
        assert_eq!(load(&radio, &data).unwrap(), Some(made.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The flag wins, and "open" is the open mesh.
        let words = NetworkKey::from_bytes([3; 16]).to_words();
        let given = load(&config(&["--radio-network-key", &words]), &data).unwrap();
        assert_eq!(given, Some(NetworkKey::from_bytes([3; 16])));
        let open = load(&config(&["--radio-network-key", "OPEN"]), &data).unwrap();
        assert!(open.unwrap().is_open_mesh());
        // A mistyped key stops the server with a reason, never falls back to another key.
        let error = load(&config(&["--radio-network-key", "apple banana"]), &data).unwrap_err();
        assert!(error.to_string().contains("12 words"), "{error}");
        // The shown form holds the words and a QR code, and the fingerprint.
        let shown = show(&made);
        assert!(shown.contains(&made.to_words()));
        assert!(shown.contains(&made.fingerprint()));
        assert!(shown.contains('█') || shown.contains('▀'));
    }
}
