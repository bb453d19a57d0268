//! Serde helpers for `f64` state that must come back bit for bit: the
//! value travels as its IEEE-754 bit pattern (`u64`), which every format
//! carries exactly, where a decimal text form may lose the last bit on the
//! way back. Used for accumulated state (moving averages), never for
//! settings a host writes by hand. Reading refuses NaN and infinities.

use serde::{Deserialize, Deserializer, Serializer};

fn finite<E: serde::de::Error>(bits: u64) -> Result<f64, E> {
    let value = f64::from_bits(bits);
    if value.is_finite() {
        Ok(value)
    } else {
        Err(E::custom("a stored number is not finite"))
    }
}

/// `Option<f64>` as `Option<u64>` bits. Use with
/// `#[serde(with = "crate::serde_bits::option")]`.
pub(crate) mod option {
    use super::*;

    /// Writes the bit pattern.
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_some(&value.to_bits()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads the bit pattern back.
    ///
    /// # Errors
    ///
    /// A pattern that is NaN or infinite.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        Option::<u64>::deserialize(deserializer)?
            .map(finite)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super::option")]
        value: Option<f64>,
    }

    #[test]
    fn every_finite_value_comes_back_exactly() {
        for value in [0.1 + 0.2, 1e-310, f64::MAX, -0.0, 123_456_789.123_456_78] {
            let holder = Holder { value: Some(value) };
            let json = serde_json::to_string(&holder).unwrap();
            let back: Holder = serde_json::from_str(&json).unwrap();
            assert_eq!(back.value.map(f64::to_bits), Some(value.to_bits()));
        }
        let nan = format!(r#"{{"value":{}}}"#, f64::NAN.to_bits());
        assert!(serde_json::from_str::<Holder>(&nan).is_err());
        let none: Holder = serde_json::from_str(r#"{"value":null}"#).unwrap();
        assert_eq!(none.value, None);
    }
}
