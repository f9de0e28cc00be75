//! The `--tokens` list parser: arbitrary text gives ids or a clear `Err`, and what it accepts
//! survives a round trip through its canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor::tokenizer::parse_token_ids;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ids) = parse_token_ids(s) {
        assert!(!ids.is_empty());
        let canonical = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        assert_eq!(parse_token_ids(&canonical).unwrap(), ids);
    }
});
