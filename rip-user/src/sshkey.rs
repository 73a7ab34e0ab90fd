//! The backup user's SSH public key: strict validation of the key file and
//! the one restricted `authorized_keys` line built from it.

use std::path::Path;

use anyhow::{bail, Context};

/// Key types sshd accepts that are still considered sound (no `ssh-dss`).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Where Debian's rsync package installs rrsync (bookworm and later).
pub const RRSYNC: &str = "/usr/bin/rrsync";

/// A validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Key type, e.g. `ssh-ed25519`.
    pub kind: String,
    /// The base64 blob.
    pub blob: String,
    /// The comment, if any.
    pub comment: Option<String>,
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decode standard base64 with padding; `None` when malformed.
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | b64_value(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

/// Whether `text` looks like a private key: a PEM/OpenSSH block such as
/// `-----BEGIN OPENSSH PRIVATE KEY-----` (also RSA, EC, DSA, ENCRYPTED), or
/// a PuTTY key file.
fn is_private_key(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| {
        (l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----"))
            || l.starts_with("PuTTY-User-Key-File-")
    })
}

impl PublicKey {
    /// Parse the text of a public key file: exactly one key line
    /// (`TYPE BASE64 [COMMENT]`), no options, no control characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        if is_private_key(text) {
            return Err(
                "is a private key, not a public one; pass the .pub file (and keep the private key off this machine)"
                    .into(),
            );
        }
        if let Some(c) = text
            .chars()
            .find(|&c| c != '\n' && (c.is_control() || c == '\u{7f}'))
        {
            return Err(format!("contains the control character {c:?}"));
        }
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let line = match lines.as_slice() {
            [one] => *one,
            [] => return Err("holds no key".into()),
            _ => {
                return Err(format!(
                    "holds {} lines; give exactly one public key",
                    lines.len()
                ))
            }
        };
        let mut parts = line.splitn(3, ' ');
        let kind = parts.next().unwrap_or_default();
        if !KEY_TYPES.contains(&kind) {
            return Err(format!(
                "starts with {kind:?}, not a key type ({}); options are not accepted",
                KEY_TYPES.join(", ")
            ));
        }
        let blob = parts.next().unwrap_or_default();
        let decoded = b64_decode(blob).ok_or("the key data is not valid base64")?;
        // The blob starts with the key type as an SSH string.
        let n = decoded
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("the key data is too short")?;
        if decoded.get(4..4 + n) != Some(kind.as_bytes()) {
            return Err(format!("the key data does not hold a {kind} key"));
        }
        let comment = parts.next().map(str::trim).filter(|c| !c.is_empty());
        Ok(Self {
            kind: kind.to_owned(),
            blob: blob.to_owned(),
            comment: comment.map(str::to_owned),
        })
    }

    /// Read and validate the key file at `path` (on this machine).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(path).with_context(|| format!("cannot stat {path:?}"))?;
        if !meta.is_file() || meta.len() > 16 * 1024 {
            bail!("{path:?} is not a public key file (not a regular file, or larger than 16 KiB)");
        }
        let text = std::fs::read(path).with_context(|| format!("cannot read {path:?}"))?;
        let text = String::from_utf8(text)
            .map_err(|_| anyhow::anyhow!("public key {path:?} is not UTF-8 text"))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("public key {path:?} {e}"))
    }

    /// The `authorized_keys` line: the key may only run a read-only rrsync
    /// below `dir`; `restrict` turns off forwarding, pty, X11 and rc.
    pub fn authorized_line(&self, dir: &str) -> String {
        let mut line = format!(
            "restrict,command=\"{RRSYNC} -ro {dir}\" {} {}",
            self.kind, self.blob
        );
        if let Some(c) = &self.comment {
            line.push(' ');
            line.push_str(c);
        }
        line.push('\n');
        line
    }
}

/// Check a directory given for the forced command: absolute, and nothing
/// that the `command="..."` option or rrsync's word splitting would misread.
pub fn check_restrict_dir(dir: &str) -> Result<(), String> {
    if !dir.starts_with('/') || dir.contains("/../") || dir.ends_with("/..") {
        return Err(format!("{dir:?} must be an absolute path without '..'"));
    }
    if let Some(c) = dir
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"\\'$`".contains(*c))
    {
        return Err(format!(
            "{dir:?} contains {c:?}, which a forced command cannot carry"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImtor211e0BGf/XjabJqaDRgm3uEHf5Z+6Kmctn9PXf ops@example.com\n";

    #[test]
    fn accepts_one_key_and_builds_a_restricted_line() {
        let k = PublicKey::parse(ED).unwrap();

        assert_eq!(
            k.authorized_line("/home"),
            format!("restrict,command=\"/usr/bin/rrsync -ro /home\" {}", ED)
        );
    }

    #[test]
    fn rejects_options_two_keys_controls_and_bad_blobs() {
        let with_opts = format!("command=\"sh\" {ED}");
        let two = format!("{ED}{ED}");
        let ctrl = ED.replace("ops@", "ops\r@");
        let wrong_type = ED.replace("ssh-ed25519 ", "ssh-rsa ");

        for bad in [
            with_opts.as_str(),
            &two,
            &ctrl,
            &wrong_type,
            "ssh-ed25519 !!!!\n",
            "",
            "ssh-dss AAAA\n",
        ] {
            assert!(PublicKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn private_key_passed_as_backup_key_is_named() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";
        let rsa = pem.replace("OPENSSH", "RSA");

        for text in [pem, rsa.as_str()] {
            let e = PublicKey::parse(text).unwrap_err();
            assert!(e.contains("private key") && e.contains(".pub"), "{e}");
        }
        assert!(!is_private_key(ED));
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(b64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(b64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert!(b64_decode("a=Gk").is_none());
    }

    #[test]
    fn restrict_dir_rules() {
        assert!(check_restrict_dir("/home").is_ok());
        assert!(check_restrict_dir("/home/x y").is_err());
        assert!(check_restrict_dir("home").is_err());
        assert!(check_restrict_dir("/a\"b").is_err());
    }
}
