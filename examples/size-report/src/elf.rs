//! Just enough of a 32-bit little-endian ELF file: section headers,
//! section bytes, and function symbols. Bad bytes give an error, never a
//! panic: every read is checked.
//!
//! ```text
//! ELF header:  0x20 e_shoff u32 | 0x2E e_shentsize u16 | 0x30 e_shnum u16 | 0x32 e_shstrndx u16
//! section:     0 name u32 | 4 type u32 | 8 flags u32 | 12 addr u32 | 16 offset u32 | 20 size u32 | 24 link u32
//! symbol:      0 name u32 | 4 value u32 | 8 size u32 | 12 info u8 | 13 other u8 | 14 shndx u16
//! ```

/// A section: its name, address, size and where its bytes are in the file.
#[derive(Debug, Clone)]
pub struct Section {
    /// Its name, such as `.text`.
    pub name: String,
    /// `SHT_*`: 8 (`SHT_NOBITS`) for `.bss`, which has no bytes in the file.
    pub kind: u32,
    /// Where it is loaded.
    pub address: u32,
    /// Its size in memory.
    pub size_bytes: u32,
    offset: u32,
    link: u32,
}

/// A symbol of the symbol table.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Its (mangled) name.
    pub name: String,
    /// Its address; odd for a Thumb function.
    pub value: u32,
    /// Its size in bytes (0 for labels such as the `$t`/`$d` mapping
    /// symbols that mark code and data in `.text`).
    pub size_bytes: u32,
    /// `STT_*`: 2 for a function.
    pub kind: u8,
}

/// `SHT_NOBITS`: a section with no bytes in the file.
pub const SHT_NOBITS: u32 = 8;
/// `SHT_SYMTAB`.
const SHT_SYMTAB: u32 = 2;
/// `STT_FUNC`.
pub const STT_FUNC: u8 = 2;

/// A parsed ELF file.
pub struct Elf {
    bytes: Vec<u8>,
    /// Every section, in header order.
    pub sections: Vec<Section>,
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    let field = bytes.get(at..at + 2).ok_or("truncated ELF")?;
    Ok(u16::from_le_bytes([field[0], field[1]]))
}

/// The little-endian `u32` at `at`.
pub fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    let field = bytes.get(at..at + 4).ok_or("truncated ELF")?;
    Ok(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

/// The NUL-terminated string at `at`.
fn string_at(bytes: &[u8], at: usize) -> Result<String, String> {
    let rest = bytes.get(at..).ok_or("string outside its table")?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or("unterminated string")?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

impl Elf {
    /// Parses the section headers of `bytes`.
    ///
    /// # Errors
    ///
    /// When the file is not a 32-bit little-endian ELF or a header points
    /// outside it.
    pub fn parse(bytes: Vec<u8>) -> Result<Elf, String> {
        if bytes.get(..6) != Some(&[0x7F, b'E', b'L', b'F', 1, 1][..]) {
            return Err("not a 32-bit little-endian ELF file".into());
        }
        let header_offset = u32_at(&bytes, 0x20)? as usize;
        let header_len = usize::from(u16_at(&bytes, 0x2E)?);
        let count = usize::from(u16_at(&bytes, 0x30)?);
        let names_index = usize::from(u16_at(&bytes, 0x32)?);
        if header_len < 40 {
            return Err("section headers too short".into());
        }
        let mut raw = Vec::with_capacity(count);
        for index in 0..count {
            let at = header_offset + index * header_len;
            raw.push((
                u32_at(&bytes, at)?,
                Section {
                    name: String::new(),
                    kind: u32_at(&bytes, at + 4)?,
                    address: u32_at(&bytes, at + 12)?,
                    offset: u32_at(&bytes, at + 16)?,
                    size_bytes: u32_at(&bytes, at + 20)?,
                    link: u32_at(&bytes, at + 24)?,
                },
            ));
        }
        let names_offset = raw
            .get(names_index)
            .ok_or("no section name table")?
            .1
            .offset as usize;
        let mut sections = Vec::with_capacity(count);
        for (name_offset, mut section) in raw {
            section.name = string_at(&bytes, names_offset + name_offset as usize)?;
            sections.push(section);
        }
        Ok(Elf { bytes, sections })
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The bytes of `section` in the file (none for `.bss`).
    ///
    /// # Errors
    ///
    /// When its header points outside the file.
    pub fn data(&self, section: &Section) -> Result<&[u8], String> {
        if section.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        let start = section.offset as usize;
        self.bytes
            .get(start..start + section.size_bytes as usize)
            .ok_or_else(|| format!("section {} outside the file", section.name))
    }

    /// Every symbol of the symbol table (empty when the file is stripped).
    ///
    /// # Errors
    ///
    /// When the table or its strings point outside the file.
    pub fn symbols(&self) -> Result<Vec<Symbol>, String> {
        let Some(table) = self.sections.iter().find(|s| s.kind == SHT_SYMTAB) else {
            return Ok(Vec::new());
        };
        let names = self
            .sections
            .get(table.link as usize)
            .ok_or("symbol table without strings")?;
        let names_offset = names.offset as usize;
        let entries = self.data(table)?;
        let mut symbols = Vec::with_capacity(entries.len() / 16);
        for entry in entries.chunks_exact(16) {
            symbols.push(Symbol {
                name: string_at(&self.bytes, names_offset + u32_at(entry, 0)? as usize)?,
                value: u32_at(entry, 4)?,
                size_bytes: u32_at(entry, 8)?,
                kind: entry[12] & 0xF,
            });
        }
        Ok(symbols)
    }
}

/// Makes a legacy-mangled Rust name (`_ZN...E`) readable, without its
/// hash, and shortens a v0-mangled one (`_R...`, as the precompiled
/// `compiler_builtins` has) to its path; other names come back as they
/// are.
pub fn demangle(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("_R") {
        return demangle_v0_path(rest);
    }
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    // Each part is its decimal length and its bytes, up to the final 'E'.
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&n| n > 0) {
        let Ok(len) = rest[..digits].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(digits..digits + len) else {
            break;
        };
        parts.push(part.to_string());
        rest = &rest[digits + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    let joined = parts.join("::");
    let mut out = joined.replace("..", "::");
    for (code, text) in [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$u20$", " "),
        ("$C$", ","),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$SP$", "@"),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u3b$", ";"),
        ("$u7e$", "~"),
    ] {
        out = out.replace(code, text);
    }
    out.trim_start_matches('_').to_string()
}

/// The identifiers of a v0 symbol's path, joined by `::`: crate
/// disambiguators (`Cs<base62>_`) and namespace tags are skipped. Enough
/// for a plain path such as `compiler_builtins::mem::memcpy`; generic
/// arguments come out flattened.
fn demangle_v0_path(mut rest: &str) -> String {
    let mut parts = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("Cs") {
            rest = after.split_once('_').map_or("", |(_, tail)| tail);
            continue;
        }
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            rest = &rest[1..];
            continue;
        }
        let len: usize = rest[..digits].parse().unwrap_or(usize::MAX);
        // An identifier that starts with a digit or `_` has a `_` first.
        let after = rest[digits..].strip_prefix('_').unwrap_or(&rest[digits..]);
        let Some(part) = after.get(..len) else {
            break;
        };
        parts.push(part);
        rest = &after[len..];
    }
    parts.join("::")
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn names_read_as_paths() {
        assert_eq!(
            demangle("_ZN6segwal3wal16Wal$LT$S$C$B$GT$4open17h0123456789abcdefE"),
            "segwal::wal::Wal<S,B>::open"
        );
        assert_eq!(
            demangle("_RNvNtCs7NhdfSRABLd_17compiler_builtins3mem6memcpy"),
            "compiler_builtins::mem::memcpy"
        );
        assert_eq!(demangle("Reset"), "Reset");
    }
}
