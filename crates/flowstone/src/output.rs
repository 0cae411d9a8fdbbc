//! [`Output`]: the value an asset produced, typed at the edges and erased in between.
//!
//! Assets return any `T: Serialize + DeserializeOwned + Send + Sync + 'static`. Inside FlowStone
//! the value travels as an `Output`, which holds either the live value behind an `Arc` (what the
//! memory IO manager keeps, so the hot path never serializes) or its JSON encoding (what came back
//! from a file or a database row). Reading it typed downcasts when the type matches and decodes
//! otherwise, so a value written by one process reads the same in another.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

type AnyValue = dyn Any + Send + Sync;
type EncodeFn = fn(&AnyValue) -> Result<Vec<u8>>;

/// The output of a materialization.
#[derive(Clone)]
pub struct Output(Repr);

#[derive(Clone)]
enum Repr {
    /// The live value and how to encode it.
    Live {
        value: Arc<AnyValue>,
        encode: EncodeFn,
        type_name: &'static str,
    },
    /// The value's JSON encoding.
    Encoded(Arc<[u8]>),
}

fn encode_as<T: Serialize + 'static>(value: &AnyValue) -> Result<Vec<u8>> {
    match value.downcast_ref::<T>() {
        Some(value) => Ok(serde_json::to_vec(value)?),
        None => Err(Error::io(
            "output encoder was paired with a value of another type",
        )),
    }
}

impl Output {
    /// Wraps a live value.
    pub fn new<T>(value: T) -> Self
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Output(Repr::Live {
            value: Arc::new(value),
            encode: encode_as::<T>,
            type_name: std::any::type_name::<T>(),
        })
    }

    /// Wraps a value's JSON encoding (as read back from a file or a database row).
    pub fn from_json_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Output(Repr::Encoded(bytes.into()))
    }

    /// The value as `Arc<T>`: no copy when it is the live value of type `T`, decoded otherwise.
    pub fn get<T>(&self) -> Result<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Repr::Live { value, .. } = &self.0
            && let Ok(typed) = Arc::clone(value).downcast::<T>()
        {
            return Ok(typed);
        }
        self.decode::<T>().map(Arc::new)
    }

    /// The value as an owned `T`: moved out when this is its only holder, decoded otherwise.
    pub fn value<T>(self) -> Result<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        match self.0 {
            Repr::Live {
                value,
                encode,
                type_name,
            } if value.is::<T>() => match Arc::downcast::<T>(value) {
                Ok(typed) => match Arc::try_unwrap(typed) {
                    Ok(owned) => Ok(owned),
                    Err(shared) => Output(Repr::Live {
                        value: shared,
                        encode,
                        type_name,
                    })
                    .decode::<T>(),
                },
                Err(value) => Output(Repr::Live {
                    value,
                    encode,
                    type_name,
                })
                .decode::<T>(),
            },
            repr => Output(repr).decode::<T>(),
        }
    }

    fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        let bytes = self.to_json_bytes()?;
        serde_json::from_slice(&bytes).map_err(|err| {
            Error::io(format!(
                "stored output ({}) cannot be read as {}: {err}",
                self.type_name(),
                std::any::type_name::<T>()
            ))
        })
    }

    /// The JSON encoding of the value.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        match &self.0 {
            Repr::Live { value, encode, .. } => encode(value.as_ref()),
            Repr::Encoded(bytes) => Ok(bytes.to_vec()),
        }
    }

    /// The value as a `serde_json::Value`, for display and scripts.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.to_json_bytes()?)?)
    }

    /// The Rust type of the live value, or `"json"` for an encoded one.
    pub fn type_name(&self) -> &'static str {
        match &self.0 {
            Repr::Live { type_name, .. } => type_name,
            Repr::Encoded(_) => "json",
        }
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Live { type_name, .. } => write!(f, "Output<{type_name}>"),
            Repr::Encoded(bytes) => write!(f, "Output<json, {} bytes>", bytes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_value_reads_back_without_copy_and_by_json() {
        let out = Output::new(vec![1u64, 2, 3]);
        let arc = out.get::<Vec<u64>>().unwrap();
        assert_eq!(*arc, vec![1, 2, 3]);
        // Another serde-compatible type decodes through JSON.
        assert_eq!(out.get::<Vec<i32>>().unwrap().as_slice(), &[1, 2, 3]);
        // Shared: owned read re-encodes; unique: moved out.
        assert_eq!(out.clone().value::<Vec<u64>>().unwrap(), vec![1, 2, 3]);
        drop(arc);
        assert_eq!(out.value::<Vec<u64>>().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn encoded_value_decodes_and_names_types_on_mismatch() {
        let out = Output::from_json_bytes(b"[1,2]".to_vec());
        assert_eq!(out.clone().value::<Vec<u8>>().unwrap(), vec![1, 2]);
        let err = out.value::<String>().unwrap_err();
        assert!(err.to_string().contains("String"), "{err}");
    }
}
