//! Names that end up in file paths, interface names and Kubernetes objects.

/// Lowercase letters, digits and inner dashes, 1 to 32 characters. Rejects anything that
/// could escape a directory (`..`, `/`) or break an interface or object name.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= 32 && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-') && b[0] != b'-' && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for ok in ["a", "main", "worker-1", "east"] {
            assert!(super::is_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a/b", "..", "../etc", "a b", "é", &"x".repeat(33)] {
            assert!(!super::is_name(bad), "{bad}");
        }
    }
}
