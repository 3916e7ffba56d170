use careline_attach::{Kind, content_disposition, sanitize_filename};

#[test]
fn directories_are_stripped() {
    assert_eq!(
        sanitize_filename("../../etc/passwd", Kind::Text),
        "passwd.txt"
    );
    assert_eq!(
        sanitize_filename("C:\\Users\\x\\rash.jpg", Kind::Jpeg),
        "rash.jpg"
    );
    assert_eq!(
        sanitize_filename("/tmp/scans/", Kind::Pdf),
        "attachment.pdf"
    );
    assert_eq!(
        sanitize_filename("..\\..\\informe.pdf", Kind::Pdf),
        "informe.pdf"
    );
}

#[test]
fn bidi_override_cannot_disguise_the_extension() {
    // Displays as "photoexe.jpg" in a naive renderer; it is not a JPEG name.
    let name = sanitize_filename("photo\u{202E}gpj.exe", Kind::Jpeg);
    assert_eq!(name, "photogpj.exe.jpg");
    let isolates = sanitize_filename("a\u{2066}b\u{2069}c\u{200F}.pdf", Kind::Pdf);
    assert_eq!(isolates, "abc.pdf");
}

#[test]
fn the_extension_matches_the_content() {
    assert_eq!(
        sanitize_filename("IMG_0042.JPEG", Kind::Jpeg),
        "IMG_0042.JPEG"
    );
    assert_eq!(
        sanitize_filename("IMG_0042.HEIC", Kind::Heic),
        "IMG_0042.HEIC"
    );
    assert_eq!(
        sanitize_filename("carta alta.pdf", Kind::Pdf),
        "carta alta.pdf"
    );
    assert_eq!(
        sanitize_filename("carta alta.docx", Kind::Pdf),
        "carta alta.docx.pdf"
    );
    assert_eq!(sanitize_filename("notas", Kind::Text), "notas.txt");
    assert_eq!(sanitize_filename("tension.csv", Kind::Text), "tension.csv");
}

#[test]
fn controls_whitespace_and_dots_are_cleaned() {
    assert_eq!(
        sanitize_filename("a\u{0}b\u{7}c\r\n.txt", Kind::Text),
        "abc.txt"
    );
    assert_eq!(
        sanitize_filename("   my    leg\t\u{A0}photo .JPG ", Kind::Jpeg),
        "my leg photo.JPG"
    );
    assert_eq!(sanitize_filename("...hidden.pdf", Kind::Pdf), "hidden.pdf");
    assert_eq!(sanitize_filename("report.pdf...", Kind::Pdf), "report.pdf");
    assert_eq!(
        sanitize_filename("informe<1>:final?*|\".pdf", Kind::Pdf),
        "informe_1__final____.pdf"
    );
}

#[test]
fn nothing_left_gives_a_default_name() {
    for name in ["", "   ", "...", "\u{202E}", "/", "\\\\server\\share\\"] {
        assert_eq!(
            sanitize_filename(name, Kind::Png),
            "attachment.png",
            "{name:?}"
        );
    }
}

#[test]
fn windows_device_names_are_defused() {
    assert_eq!(sanitize_filename("CON.txt", Kind::Text), "_CON.txt");
    assert_eq!(sanitize_filename("nul", Kind::Pdf), "_nul.pdf");
    assert_eq!(
        sanitize_filename("com1.informe.pdf", Kind::Pdf),
        "_com1.informe.pdf"
    );
    assert_eq!(sanitize_filename("console.txt", Kind::Text), "console.txt");
}

#[test]
fn long_names_are_cut_to_120_bytes_keeping_the_extension() {
    let long = format!("a{}.pdf", "ñ".repeat(200));
    let name = sanitize_filename(&long, Kind::Pdf);
    assert!(name.len() <= 120, "{} bytes", name.len());
    assert!(name.ends_with("ñ.pdf"));
    assert_eq!(name.len(), 119, "cut on a character boundary");

    let spaces = format!("{}x.jpg", "a ".repeat(100));
    let name = sanitize_filename(&spaces, Kind::Jpeg);
    assert!(name.len() <= 120);
    assert!(
        !name.contains(" .jpg"),
        "no space left before the extension"
    );
}

#[test]
fn content_disposition_escapes_both_forms() {
    assert_eq!(
        content_disposition("informe médico \"final\".pdf"),
        "attachment; filename=\"informe medico final.pdf\"; filename*=UTF-8''informe%20m%C3%A9dico%20%22final%22.pdf"
    );
    assert_eq!(
        content_disposition("a\\b%20c.txt"),
        "attachment; filename=\"ab20c.txt\"; filename*=UTF-8''a%5Cb%2520c.txt"
    );
    assert_eq!(
        content_disposition("写真.jpg"),
        "attachment; filename=\"__.jpg\"; filename*=UTF-8''%E5%86%99%E7%9C%9F.jpg"
    );
    assert_eq!(
        content_disposition("\"\""),
        "attachment; filename=\"attachment\"; filename*=UTF-8''%22%22"
    );
}
