//! SanceConfig ↔ JSON (checkpoint metadata, the data-parallel fingerprint), by serde's derive
//! (src/abi/config.rs): enums as their C values, the seed as a string (JSON numbers are
//! doubles in most readers), unknown fields refused. Errors name the field, e.g. "missing
//! field `noise_ratio`".
use crate::abi::config::SanceConfig;

pub fn to_json(c: &SanceConfig) -> String {
    serde_json::to_string(c).expect("a config always serialises")
}

pub fn from_json(s: &str) -> Result<SanceConfig, String> {
    serde_json::from_str(s).map_err(|e| format!("the stored config is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use crate::abi::config::SanceConfig;

    #[test]
    fn round_trips_bit_exactly() {
        let mut c =
            SanceConfig { learning_rate: 3.0e-4, seed: u64::MAX - 5, device: -1, ..Default::default() };
        c.langevin.noise_std = (2.0f32 * 0.0123).sqrt();
        assert_eq!(super::from_json(&super::to_json(&c)).unwrap(), c);
    }

    #[test]
    fn names_the_bad_field() {
        let good = super::to_json(&SanceConfig::default());
        let missing = good.replace("\"noise_ratio\":", "\"noise_ratiox\":");
        let e = super::from_json(&missing).unwrap_err();
        assert!(e.contains("noise_ratio"), "{e}");
        let bad_enum = good.replace("\"arch\":0", "\"arch\":7");
        let e = super::from_json(&bad_enum).unwrap_err();
        assert!(e.contains("arch") && e.contains('7'), "{e}");
        let e = super::from_json(&good.replace("\"seed\":\"0\"", "\"seed\":0")).unwrap_err();
        assert!(e.contains("seed"), "{e}");
    }
}
