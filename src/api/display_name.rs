//! The names people give tenants and API keys: free text, on one line.

use crate::core::input::domain::{check_line, FieldError};

/// The most characters a `name` holds.
pub const MAX_NAME: usize = 256;

/// A `name`, trimmed: 1 to [`MAX_NAME`] characters on one line.
pub fn checked_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    check_line("name", name)?;
    Ok(name.to_owned())
}
