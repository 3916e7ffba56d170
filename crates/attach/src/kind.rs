use std::fmt;

/// The file types careline accepts as attachments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// JPEG photo.
    Jpeg,
    /// PNG image (screenshots, scans).
    Png,
    /// HEIC/HEIF photo, as taken by iPhones and many Android phones.
    Heic,
    /// WebP image.
    Webp,
    /// PDF document (discharge letters, reports).
    Pdf,
    /// Plain UTF-8 text.
    Text,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 6] = [
        Kind::Jpeg,
        Kind::Png,
        Kind::Heic,
        Kind::Webp,
        Kind::Pdf,
        Kind::Text,
    ];

    /// The media type to send in a `Content-Type` header. Text carries an
    /// explicit charset, since sniffing verified the content is UTF-8.
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Heic => "image/heic",
            Kind::Webp => "image/webp",
            Kind::Pdf => "application/pdf",
            Kind::Text => "text/plain; charset=utf-8",
        }
    }

    /// The canonical file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Heic => "heic",
            Kind::Webp => "webp",
            Kind::Pdf => "pdf",
            Kind::Text => "txt",
        }
    }

    /// Extensions (lower case, without the dot) a file of this kind may keep
    /// in its display name. Anything else gets [`Kind::extension`] appended.
    pub fn accepted_extensions(self) -> &'static [&'static str] {
        match self {
            Kind::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            Kind::Png => &["png"],
            Kind::Heic => &["heic", "heif", "hif"],
            Kind::Webp => &["webp"],
            Kind::Pdf => &["pdf"],
            Kind::Text => &["txt", "text", "csv", "tsv", "md", "log"],
        }
    }

    /// Whether this is an image (and so may carry EXIF/GPS metadata).
    pub fn is_image(self) -> bool {
        matches!(self, Kind::Jpeg | Kind::Png | Kind::Heic | Kind::Webp)
    }

    /// A short phrase for messages: "a JPEG image", "a PDF document", ...
    pub fn description(self) -> &'static str {
        match self {
            Kind::Jpeg => "a JPEG image",
            Kind::Png => "a PNG image",
            Kind::Heic => "a HEIC image",
            Kind::Webp => "a WebP image",
            Kind::Pdf => "a PDF document",
            Kind::Text => "a plain-text file",
        }
    }

    /// Maps a media type, as found in a `Content-Type` header, to a kind.
    ///
    /// Case-insensitive; parameters (`; charset=utf-8`) and surrounding
    /// whitespace are ignored. Common aliases are accepted: `image/jpg`,
    /// `image/pjpeg`, `image/x-png`, `image/heif`, `image/heic-sequence`,
    /// `image/heif-sequence`, `application/x-pdf`.
    pub fn from_mime(s: &str) -> Option<Kind> {
        let essence = essence(s);
        let kind = match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Kind::Jpeg,
            "image/png" | "image/x-png" => Kind::Png,
            "image/heic" | "image/heif" | "image/heic-sequence" | "image/heif-sequence" => {
                Kind::Heic
            }
            "image/webp" => Kind::Webp,
            "application/pdf" | "application/x-pdf" => Kind::Pdf,
            "text/plain" => Kind::Text,
            _ => return None,
        };
        Some(kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The `type/subtype` part of a media type, trimmed and lower-cased.
pub(crate) fn essence(s: &str) -> String {
    let main = s.split(';').next().unwrap_or_default();
    main.trim().to_ascii_lowercase()
}
