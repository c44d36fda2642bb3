//! The delivery path: a delivery's lifecycle, its retries and pace, what
//! it sends, what an attempt keeps, and the sweeps that rescue and retire
//! deliveries.

pub mod attempt_budget;
pub mod captured_headers;
pub mod envelope;
pub mod lifecycle;
pub mod move_pace;
pub mod rate_limit;
pub mod recent_pages;
pub mod rescue;
pub mod retention;
pub mod retry;
