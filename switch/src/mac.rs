//! 48-bit IEEE 802 MAC addresses.
//!
//! The two low-order bits of the first octet carry meaning (IEEE 802-2014
//! §8.2): bit 0 is the *Individual/Group* (I/G) bit — set for multicast and
//! broadcast destinations — and bit 1 is the *Universal/Local* (U/L) bit —
//! set for locally administered addresses such as the ones Docker and weft
//! generate for containers.

use std::fmt;
use std::str::FromStr;

/// A 48-bit IEEE 802 MAC address, stored in transmission (network) order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The all-ones broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zero address `00:00:00:00:00:00`, never valid as a source.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Returns the six octets of the address.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// `true` for the broadcast address `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// `true` when the I/G bit is set: a group address. This includes the
    /// broadcast address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// `true` for the all-zero address.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// `true` when the I/G bit is clear: an individual address. Note that
    /// the all-zero address is (formally) unicast; use [`MacAddr::is_zero`]
    /// to reject it.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// `true` when the U/L bit is set: the address was assigned locally
    /// rather than from an IEEE-registered OUI.
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// A unicast, locally administered address (first octet 0x02) whose last
    /// 5 octets are `bytes`.
    pub fn local_from_bytes(bytes: [u8; 5]) -> MacAddr {
        let [a, b, c, d, e] = bytes;
        MacAddr([0x02, a, b, c, d, e])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

impl fmt::Display for MacAddr {
    /// Formats as six lowercase, colon-separated hex octets:
    /// `02:42:ac:11:00:02`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The error returned when a string is not a MAC address.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid MAC address {input:?}: expected six hex octets like 02:42:ac:11:00:02")]
pub struct MacParseError {
    input: String,
}

impl MacParseError {
    /// The rejected input, verbatim.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Parses six two-digit hex octets separated by `:` or `-` (one
    /// separator style per address), case-insensitively:
    /// `02:42:AC:11:00:02`, `02-42-ac-11-00-02`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).ok_or_else(|| MacParseError {
            input: s.to_owned(),
        })
    }
}

fn parse(s: &str) -> Option<MacAddr> {
    let bytes = s.as_bytes();
    // "xx:xx:xx:xx:xx:xx" is exactly 17 bytes.
    if bytes.len() != 17 {
        return None;
    }
    let sep = bytes[2];
    if sep != b':' && sep != b'-' {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, octet) in out.iter_mut().enumerate() {
        let at = i * 3;
        if i > 0 && bytes[at - 1] != sep {
            return None;
        }
        *octet = (hex(bytes[at])? << 4) | hex(bytes[at + 1])?;
    }
    Some(MacAddr(out))
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classification() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        let mcast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast());
        assert!(MacAddr::ZERO.is_zero() && MacAddr::ZERO.is_unicast());
        let docker = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert!(docker.is_unicast() && docker.is_locally_administered());
        assert!(!docker.is_multicast() && !docker.is_zero());
        let global = MacAddr([0x00, 0x1b, 0x21, 0x01, 0x02, 0x03]);
        assert!(!global.is_locally_administered());
    }

    #[test]
    fn local_from_bytes_is_local_unicast() {
        let mac = MacAddr::local_from_bytes([0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(mac, MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]));
        assert!(mac.is_unicast() && mac.is_locally_administered());
    }

    #[test]
    fn display_is_lowercase_colon_separated() {
        let mac = MacAddr([0x02, 0x42, 0xAC, 0x11, 0x00, 0x0F]);
        assert_eq!(mac.to_string(), "02:42:ac:11:00:0f");
    }

    #[test]
    fn parse_accepts_both_separators_and_cases() {
        let want = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0xff]);
        assert_eq!("02:42:ac:11:00:ff".parse(), Ok(want));
        assert_eq!("02:42:AC:11:00:FF".parse(), Ok(want));
        assert_eq!("02-42-aC-11-00-Ff".parse(), Ok(want));
    }

    #[test]
    fn parse_rejects_malformed_input() {
        for bad in [
            "",
            "zz",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:0g",
            "02:42-ac:11:00:02",
            "2:42:ac:11:00:02:",
            "02.42.ac.11.00.02",
            "0242ac110002",
            " 02:42:ac:11:00:02",
            "02:42:ac:11:00:０",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(err.input(), bad);
        }
    }

    #[test]
    fn parse_error_message_names_input_and_format() {
        let err = "zz".parse::<MacAddr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid MAC address "zz": expected six hex octets like 02:42:ac:11:00:02"#
        );
    }

    /// An independent model of the accepted syntax: six two-digit hex octets (either case)
    /// separated by five of the same separator, `:` or `-`, and nothing else.
    fn reference_parse(s: &str) -> Option<MacAddr> {
        [':', '-'].iter().find_map(|&sep| {
            let parts: Vec<&str> = s.split(sep).collect();
            if parts.len() != 6
                || !parts
                    .iter()
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return None;
            }
            let mut octets = [0u8; 6];
            for (o, p) in octets.iter_mut().zip(&parts) {
                *o = u8::from_str_radix(p, 16).ok()?;
            }
            Some(MacAddr(octets))
        })
    }

    /// Strings near the accepted syntax, so that both outcomes of `parse` are common:
    /// arbitrary strings, MAC-shaped strings with mixed separators and cases, MAC-shaped
    /// strings over a wider alphabet, and valid addresses with some separator (`:`, `-` or
    /// any other character), with one character replaced, or with a few characters before or
    /// after them.
    fn mac_like() -> impl Strategy<Value = String> {
        use proptest::sample::select;
        // Characters next to the accepted ones: just past 'f'/'F' and '9', before 'a'/'A',
        // and other separators.
        let near = || select(&['g', 'G', ':', '@', '`', '/', ';', '.', ' ', '_', '-'][..]);
        let hex = || select("0123456789abcdefABCDEF".chars().collect::<Vec<_>>());
        prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}",
            "[0-9a-fA-FgG:. -]{15,19}",
            (
                any::<[u8; 6]>(),
                prop_oneof![3 => near(), 1 => any::<char>()]
            )
                .prop_map(|(o, sep)| MacAddr(o).to_string().replace(':', &sep.to_string())),
            (any::<[u8; 6]>(), 0..17usize, prop_oneof![hex(), near()]).prop_map(|(o, at, c)| {
                let mut text: Vec<char> = MacAddr(o).to_string().chars().collect();
                text[at] = c;
                text.into_iter().collect()
            }),
            (any::<[u8; 6]>(), "[0-9a-f: -]{0,2}", "[0-9a-f: -]{0,2}")
                .prop_map(|(o, before, after)| format!("{before}{}{after}", MacAddr(o))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn display_parse_round_trip(octets in any::<[u8; 6]>()) {
            let mac = MacAddr(octets);
            let text = mac.to_string();
            prop_assert_eq!(text.parse::<MacAddr>(), Ok(mac));
            prop_assert_eq!(text.replace(':', "-").to_uppercase().parse::<MacAddr>(), Ok(mac));
        }

        /// Display is the canonical form, and parsing takes any case and either separator:
        /// each hex digit of the displayed text upper- or lower-cased at random.
        #[test]
        fn display_is_canonical_and_parse_ignores_case_and_separator(
            octets in any::<[u8; 6]>(),
            upper in any::<[bool; 12]>(),
            dash in any::<bool>(),
        ) {
            let mac = MacAddr(octets);
            let text = mac.to_string();
            prop_assert_eq!(text.len(), 17);
            prop_assert!(
                text.bytes().enumerate().all(|(i, b)| if i % 3 == 2 {
                    b == b':'
                } else {
                    matches!(b, b'0'..=b'9' | b'a'..=b'f')
                }),
                "not lowercase colon-separated: {:?}", text
            );
            let mut digit = 0;
            let varied: String = text
                .chars()
                .map(|c| match c {
                    ':' if dash => '-',
                    ':' => ':',
                    c => {
                        digit += 1;
                        if upper[digit - 1] { c.to_ascii_uppercase() } else { c }
                    }
                })
                .collect();
            prop_assert_eq!(varied.parse::<MacAddr>(), Ok(mac), "{:?}", varied);
        }
    }

    proptest! {
        // Cheap, and the strategy is wide: more cases so that rare near-misses come up.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Any string: `parse` accepts exactly what the reference model accepts, with the
        /// same octets; an accepted string is the Display text up to case and separator and
        /// its Display re-parses to the same address; a rejected one is kept verbatim in the
        /// error; and the outcome does not depend on the case of the input.
        #[test]
        fn parse_agrees_with_the_reference_model(s in mac_like()) {
            let got = s.parse::<MacAddr>();
            prop_assert_eq!(got.as_ref().ok().copied(), reference_parse(&s), "{:?}", s);
            match &got {
                Ok(mac) => {
                    let text = mac.to_string();
                    prop_assert_eq!(&text, &s.to_ascii_lowercase().replace('-', ":"));
                    prop_assert_eq!(text.parse::<MacAddr>(), Ok(*mac));
                }
                Err(e) => prop_assert_eq!(e.input(), s.as_str()),
            }
            prop_assert_eq!(s.to_ascii_uppercase().parse::<MacAddr>().ok(), got.as_ref().ok().copied());
            prop_assert_eq!(s.to_ascii_lowercase().parse::<MacAddr>().ok(), got.ok());
        }
    }
}
