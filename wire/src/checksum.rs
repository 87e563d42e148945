//! The Internet checksum (RFC 1071), shared by the gateway's replies, the VXLAN tunnel's
//! software segmentation and the receive offload.
//!
//! [`ones_sum`] adds 8 octets at a time with end-around carry. That is the same sum as
//! adding big-endian 16-bit words one by one: 2^64 - 1 is a multiple of 2^16 - 1, so the
//! one's complement sum of 64-bit words folds to the one's complement sum of their 16-bit
//! parts (RFC 1071 §2(C), "parallel summation"), and the sum may be taken in either byte
//! order and swapped at the end (§2(B), "byte order independence"). The segmentation of a
//! 64 KiB superframe sums every octet of it once, so this runs once per forwarded byte.

/// Adds `b` to `a` with end-around carry.
#[inline]
fn add_carry(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + u64::from(carry)
}

/// Folds a one's complement sum to 16 bits (not inverted).
#[inline]
pub fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// The one's complement sum of `data` taken as big-endian 16-bit words (an odd final octet
/// padded with a zero octet), added to `initial` (an earlier result, for a checksum over
/// several parts such as a pseudo-header and a segment). Every part but the last must have
/// an even length. The result is folded to 16 bits, so results may be added freely before a
/// final [`fold`].
pub fn ones_sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let word: [u8; 8] = chunk.try_into().expect("chunks_exact(8) yields 8 octets");
        acc = add_carry(acc, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        acc = add_carry(acc, u64::from_le_bytes(tail));
    }
    // Read little-endian, every 16-bit word is byte-swapped; swapping the folded sum undoes it.
    let big_endian = fold(acc).swap_bytes();
    u64::from(fold(u64::from(big_endian) + u64::from(fold(initial))))
}

/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement
/// sum of `data` taken as big-endian 16-bit words, an odd final octet padded with a zero
/// octet.
///
/// Computing it over data that already contains a correct checksum field yields `0`
/// (RFC 1071 §1: the folded sum is all ones), which is how received headers are verified.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(ones_sum(data, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 written out word by word, independently of the 8-octet version.
    fn reference(data: &[u8], initial: u16) -> u16 {
        let mut sum = initial;
        for pair in data.chunks(2) {
            let word = u16::from(pair[0]) << 8 | u16::from(pair.get(1).copied().unwrap_or(0));
            let (s, carry) = sum.overflowing_add(word);
            sum = s + u16::from(carry);
        }
        sum
    }

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_sum(&data, 0)), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn a_correct_checksum_verifies_to_zero() {
        let mut header = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let sum = internet_checksum(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(internet_checksum(&header), 0);
    }

    #[test]
    fn all_ones_and_carries() {
        let data = [0xffu8; 1500];
        assert_eq!(fold(ones_sum(&data, 0)), reference(&data, 0));
        assert_eq!(fold(ones_sum(&data, 0xffff)), reference(&data, 0xffff));
        assert_eq!(fold(ones_sum(&[], 0)), 0);
    }

    proptest! {
        #[test]
        fn matches_word_by_word(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                initial in any::<u16>()) {
            prop_assert_eq!(fold(ones_sum(&data, u64::from(initial))), reference(&data, initial));
        }

        #[test]
        fn parts_add_up(data in proptest::collection::vec(any::<u8>(), 0..3000),
                        cut in any::<usize>()) {
            let cut = (cut % (data.len() + 1)) & !1;
            let whole = fold(ones_sum(&data, 0));
            let parts = fold(ones_sum(&data[cut..], ones_sum(&data[..cut], 0)));
            let added = fold(ones_sum(&data[..cut], 0) + ones_sum(&data[cut..], 0));
            prop_assert_eq!(whole, parts);
            prop_assert_eq!(whole, added);
        }
    }
}
