//! The frame decoder fed arbitrary bytes: it never panics or hangs, and
//! whatever it accepts encodes to a frame that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use partnerplan_sync::Message;
use partnerplan_sync::message::DEFAULT_MAX_FRAME_BYTES;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data, DEFAULT_MAX_FRAME_BYTES) {
        let again = Message::decode(&message.encode(), usize::MAX)
            .expect("what the decoder accepted encodes to a frame it accepts");
        assert_eq!(again, message, "a message survives encoding and decoding");
    }
});
