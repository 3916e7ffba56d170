//! Just enough TIFF/EXIF parsing to tell whether a block records a location
//! and how the photo is oriented.

/// The EXIF tag whose value is the offset of the GPS directory.
const GPS_IFD_POINTER: u16 = 0x8825;
/// The orientation tag (values 1 to 8).
const ORIENTATION: u16 = 0x0112;
/// TIFF field type SHORT (16-bit unsigned).
const SHORT: u16 = 3;

/// A TIFF structure: the header and what follows, in one byte order.
struct Tiff<'a> {
    data: &'a [u8],
    little: bool,
}

impl<'a> Tiff<'a> {
    /// `data` may start with the `Exif\0\0` identifier or directly with the
    /// TIFF header (`II*\0` or `MM\0*`).
    fn new(data: &'a [u8]) -> Option<Self> {
        let data = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
        let little = match data.get(..4)? {
            b"II*\0" => true,
            b"MM\0*" => false,
            _ => return None,
        };
        Some(Tiff { data, little })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let bytes: [u8; 2] = self.data.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    }

    /// Offsets of the 12-byte entries of the first image directory (IFD0).
    fn ifd0_entries(&self) -> Option<impl Iterator<Item = usize>> {
        let ifd0 = usize::try_from(self.u32_at(4)?).ok()?;
        let count = usize::from(self.u16_at(ifd0)?);
        let first = ifd0.checked_add(2)?;
        Some((0..count).map_while(move |i| first.checked_add(i.checked_mul(12)?)))
    }
}

/// Whether an EXIF block points to a GPS directory from IFD0, which is
/// where the EXIF standard puts that pointer. Unreadable data counts as no.
pub(crate) fn has_gps_pointer(data: &[u8]) -> bool {
    let Some(tiff) = Tiff::new(data) else {
        return false;
    };
    let Some(mut entries) = tiff.ifd0_entries() else {
        return false;
    };
    entries.any(|entry| tiff.u16_at(entry) == Some(GPS_IFD_POINTER))
}

/// The orientation recorded in IFD0, when it is a valid value other than
/// 1 (upright).
pub(crate) fn orientation(data: &[u8]) -> Option<u16> {
    let tiff = Tiff::new(data)?;
    let entry = tiff
        .ifd0_entries()?
        .find(|&entry| tiff.u16_at(entry) == Some(ORIENTATION))?;
    if tiff.u16_at(entry + 2)? != SHORT || tiff.u32_at(entry + 4)? != 1 {
        return None;
    }
    let value = tiff.u16_at(entry + 8)?;
    (2..=8).contains(&value).then_some(value)
}

/// The body of a JPEG APP1 segment holding a fresh EXIF block with nothing
/// but the orientation: `Exif\0\0`, a big-endian TIFF header and an IFD0
/// with one entry.
pub(crate) fn orientation_only(value: u16) -> Vec<u8> {
    let mut body = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&ORIENTATION.to_be_bytes());
    body.extend_from_slice(&SHORT.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&value.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    // No next directory.
    body.extend_from_slice(&0u32.to_be_bytes());
    body
}
