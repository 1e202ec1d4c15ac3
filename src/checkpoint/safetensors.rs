//! A strict reader and a writer for the safetensors format: an 8-byte little-endian header
//! length, a JSON header `{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}`,
//! then the tensors' bytes. The reader checks every size and offset with overflow-checked
//! arithmetic and requires the data section to be covered exactly, so that no input can make
//! it read out of bounds or allocate more than the file's size.
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;

/// Largest header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    I64,
    U64,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            _ => 8,
        }
    }
    fn parse(s: &str) -> Option<Dtype> {
        [Dtype::F32, Dtype::F64, Dtype::I64, Dtype::U64].into_iter().find(|d| d.name() == s)
    }
}

/// One tensor to write.
pub struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// A parsed file: metadata, and each tensor's dtype, shape and byte range in `bytes`.
pub struct File {
    pub meta: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, (Dtype, Vec<usize>, Range<usize>)>,
    pub bytes: Vec<u8>,
}

impl File {
    pub fn data(&self, name: &str) -> Option<&[u8]> {
        self.tensors.get(name).map(|(_, _, r)| &self.bytes[r.clone()])
    }
}

/// Serialises entries (in name order) and metadata.
pub fn encode(entries: &[Entry], meta: &BTreeMap<String, String>) -> Vec<u8> {
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = Map::new();
    header.insert(
        "__metadata__".into(),
        Value::Object(meta.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
    );
    let mut offset = 0usize;
    for e in &order {
        let mut t = Map::new();
        t.insert("dtype".into(), Value::String(e.dtype.name().into()));
        t.insert("shape".into(), Value::Array(e.shape.iter().map(|&d| Value::from(d as u64)).collect()));
        t.insert(
            "data_offsets".into(),
            Value::Array(vec![Value::from(offset as u64), Value::from((offset + e.data.len()) as u64)]),
        );
        header.insert(e.name.clone(), Value::Object(t));
        offset += e.data.len();
    }
    let mut h = Value::Object(header).to_string().into_bytes();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for e in &order {
        out.extend_from_slice(&e.data);
    }
    out
}

/// Parses and validates a whole file. Errors say what is wrong, for SANCE_STATUS_CORRUPT.
pub fn decode(bytes: Vec<u8>) -> Result<File, String> {
    if bytes.len() < 8 {
        return Err(format!("file is {} bytes long, too short for a safetensors header", bytes.len()));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    if n > MAX_HEADER || n > (bytes.len() - 8) as u64 {
        return Err(format!(
            "header length {n} exceeds the file ({} bytes): truncated or not safetensors",
            bytes.len()
        ));
    }
    let header_end = 8 + n as usize;
    let text = std::str::from_utf8(&bytes[8..header_end]).map_err(|_| "header is not UTF-8".to_string())?;
    let header: Value =
        serde_json::from_str(text.trim_end()).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let obj = header.as_object().ok_or("header is not a JSON object")?;
    let data_len = bytes.len() - header_end;
    let mut meta = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    let mut ranges = Vec::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            let m = v.as_object().ok_or("__metadata__ is not an object")?;
            for (k, v) in m {
                meta.insert(
                    k.clone(),
                    v.as_str().ok_or(format!("metadata {k:?} is not a string"))?.to_string(),
                );
            }
            continue;
        }
        let t = v.as_object().ok_or(format!("tensor {name}: entry is not an object"))?;
        let dtype = t.get("dtype").and_then(Value::as_str).ok_or(format!("tensor {name}: no dtype"))?;
        let dtype = Dtype::parse(dtype).ok_or(format!("tensor {name}: unsupported dtype {dtype}"))?;
        let shape = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or(format!("tensor {name}: no shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or(format!("tensor {name}: shape is not a list of sizes"))?;
        let offs = t
            .get("data_offsets")
            .and_then(Value::as_array)
            .ok_or(format!("tensor {name}: no data_offsets"))?;
        let (a, b) = match offs.as_slice() {
            [a, b] => (a.as_u64(), b.as_u64()),
            _ => (None, None),
        };
        let (a, b) = (
            a.ok_or(format!("tensor {name}: bad data_offsets"))?,
            b.ok_or(format!("tensor {name}: bad data_offsets"))?,
        );
        if a > b || b > data_len as u64 {
            return Err(format!(
                "tensor {name}: data_offsets [{a}, {b}] outside the data ({data_len} bytes)"
            ));
        }
        let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let nbytes = numel.and_then(|n| n.checked_mul(dtype.size()));
        if nbytes != Some((b - a) as usize) {
            return Err(format!(
                "tensor {name}: shape {shape:?} of {} does not match its {} bytes",
                dtype.name(),
                b - a
            ));
        }
        let r = header_end + a as usize..header_end + b as usize;
        ranges.push((a as usize, b as usize));
        tensors.insert(name.clone(), (dtype, shape, r));
    }
    // The tensors must tile the data section exactly: no gaps, overlaps or trailing bytes.
    ranges.sort_unstable();
    let mut end = 0;
    for (a, b) in ranges {
        if a != end {
            return Err(format!("tensor data is not contiguous at byte {a} (expected {end})"));
        }
        end = b;
    }
    if end != data_len {
        return Err(format!(
            "data section has {data_len} bytes but the tensors cover {end}: truncated or padded"
        ));
    }
    Ok(File { meta, tensors, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let entries = vec![
            Entry { name: "b".into(), dtype: Dtype::F32, shape: vec![2], data: vec![1, 2, 3, 4, 5, 6, 7, 8] },
            Entry { name: "a".into(), dtype: Dtype::U64, shape: vec![], data: 7u64.to_le_bytes().to_vec() },
        ];
        let meta: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let bytes = encode(&entries, &meta);
        let f = decode(bytes.clone()).unwrap();
        assert_eq!(f.meta, meta);
        assert_eq!(f.data("b").unwrap(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(f.tensors["a"].1, Vec::<usize>::new());
        for cut in 0..bytes.len() {
            assert!(decode(bytes[..cut].to_vec()).is_err(), "truncated at {cut} accepted");
        }
    }
}
