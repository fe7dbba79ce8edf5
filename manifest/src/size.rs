//! Sizes: an integer number of bytes, or a string with a binary suffix
//! (`K`, `M`, `G`, `T`, optionally followed by `B` or `iB`; case-insensitive).

/// Parse a size string such as "512M", "4 GiB", "65536".
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "\"{s}\" is not a size; write a number of bytes with an optional K, M, G or T suffix, e.g. \"512M\""
        ));
    }
    let suffix = suffix.trim().to_ascii_lowercase();
    let shift = match suffix.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "\"{s}\" has an unknown size suffix; use K, M, G or T (also KiB, MiB, ...), e.g. \"512M\""
            ))
        }
    };
    let n: u64 = num.parse().map_err(|_| format!("\"{s}\" is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("\"{s}\" is too large (at most 2^64-1 bytes)"))
}

/// The shortest exact spelling of a size ("2G", "8M", "12345").
pub(crate) fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4 GiB"), Ok(4 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size(" 2G "), Ok(2 << 30));
        assert_eq!(parse_size("100B"), Ok(100));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5G").unwrap_err().contains("suffix"));
        assert!(parse_size("2X").unwrap_err().contains("suffix"));
        assert!(parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("17000000T").unwrap_err().contains("too large"));
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(8 << 20), "8M");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(4097), "4097");
        for n in [0, 1, 4096, 3 << 40, u64::MAX, (1 << 63) + (1 << 10)] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }
}
