//! Message bodies as a reader opens them (text, and files with their descriptions): decoding
//! never panics, and what decodes encodes to a body that decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::TextBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = TextBody::decode(data) {
        let again = body.encode().expect("a decoded body fits when encoded again");
        assert_eq!(TextBody::decode(&again).expect("its encoding decodes"), body);
        for attachment in &body.attachments {
            let _ = attachment.file.open(0, &[]);
        }
    }
});
