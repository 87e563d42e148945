//! weft-vtep on hostile underlay datagrams: `VxlanHeader::decode` and `decode_strict` (RFC
//! 7348 §5), the header's encode round trip, `source_port_for_inner` (the inner frame's flow
//! hash) and `Vni`'s text form.
//!
//! Input: `[lo_hi, lo_lo, hi_hi, hi_lo, datagram...]`: a source port range, then the UDP
//! payload of a datagram from the underlay (the VXLAN header and its inner frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_vtep::{
    source_port_for_inner, Vni, VxlanError, VxlanHeader, SOURCE_PORT_RANGE, VXLAN_FLAG_VNI_VALID,
    VXLAN_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    let Some((range, packet)) = data.split_first_chunk::<4>() else {
        return;
    };
    let lo = u16::from_be_bytes([range[0], range[1]]);
    let hi = u16::from_be_bytes([range[2], range[3]]);

    let loose = VxlanHeader::decode(packet);
    let strict = VxlanHeader::decode_strict(packet);
    match &loose {
        Ok((header, inner)) => {
            assert!(header.vni.get() <= Vni::MAX);
            assert!(inner.len() >= 14, "a {}-byte inner frame", inner.len());
            assert_eq!(
                *inner,
                &packet[VXLAN_HEADER_LEN..],
                "inner frame not the rest"
            );
            assert_ne!(
                packet[0] & VXLAN_FLAG_VNI_VALID,
                0,
                "decoded without the I flag"
            );
            let bytes = header.to_bytes();
            assert_eq!(bytes[4..7], packet[4..7], "VNI changed in the round trip");
            match &strict {
                Ok((h, i)) => {
                    assert_eq!(h, header);
                    assert_eq!(i, inner);
                    assert_eq!(
                        packet[..VXLAN_HEADER_LEN],
                        bytes,
                        "strict took a non-canonical header"
                    );
                }
                Err(VxlanError::ReservedBitsSet { .. }) => {
                    assert_ne!(
                        packet[..VXLAN_HEADER_LEN],
                        bytes,
                        "strict refused a canonical header"
                    );
                }
                Err(e) => panic!("strict refused what decode took: {e:?}"),
            }
            flow_hash(inner, lo, hi);
        }
        Err(e) => {
            assert!(strict.is_err(), "strict took what decode refused ({e:?})");
            match e {
                VxlanError::Truncated { len } => assert!(*len < VXLAN_HEADER_LEN),
                VxlanError::MissingVniFlag { flags } => assert_eq!(flags & VXLAN_FLAG_VNI_VALID, 0),
                VxlanError::InnerFrameTruncated { len } => assert!(*len < 14),
                other => panic!("decode gave {other:?}"),
            }
        }
    }
    // The hash never panics on anything, even what does not decode.
    flow_hash(packet, lo, hi);

    // Encoding into a buffer of any length, and decoding it back.
    let vni = Vni::new(u32::from_be_bytes([0, range[1], range[2], range[3]])).unwrap();
    let mut buf = packet.to_vec();
    let before = buf.clone();
    match VxlanHeader::new(vni).encode(&mut buf) {
        Ok(()) => {
            assert!(before.len() >= VXLAN_HEADER_LEN);
            assert_eq!(
                buf[VXLAN_HEADER_LEN..],
                before[VXLAN_HEADER_LEN..],
                "encode wrote past the header"
            );
            buf.resize(buf.len().max(VXLAN_HEADER_LEN + 14), 0);
            let (h, _) = VxlanHeader::decode_strict(&buf).expect("our own header refused");
            assert_eq!(h.vni, vni);
        }
        Err(e) => {
            assert_eq!(e, VxlanError::BufferTooSmall { len: before.len() });
            assert_eq!(buf, before, "a failed encode wrote");
        }
    }

    // The VNI's text form.
    if let Ok(text) = std::str::from_utf8(packet) {
        if let Ok(v) = text.parse::<Vni>() {
            assert!(v.get() <= Vni::MAX);
            assert_eq!(v.to_string().parse::<Vni>().unwrap(), v);
        }
    }
});

fn flow_hash(frame: &[u8], lo: u16, hi: u16) {
    let port = source_port_for_inner(frame, lo..=hi);
    if lo >= hi {
        assert_eq!(port, lo);
    } else {
        assert!((lo..=hi).contains(&port), "{port} outside {lo}..={hi}");
    }
    assert_eq!(
        source_port_for_inner(frame, lo..=hi),
        port,
        "the hash is not deterministic"
    );
    let rfc = source_port_for_inner(frame, SOURCE_PORT_RANGE);
    assert!(SOURCE_PORT_RANGE.contains(&rfc));
}
